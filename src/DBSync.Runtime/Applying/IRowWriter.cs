namespace DBSync;

/// <summary>
/// Receives the mapped values of one entity, column by column (indexes into <see cref="SyncTableInfo.Columns"/>), as the
/// generated <see cref="ISyncTable{TSelf}.WriteRow"/> hands them out. The applier implements it for statement parameters
/// and for binary <c>COPY</c>; generated code calls it once per column with the property's own type, so a writer that is
/// a struct gets code of its own for each type, without boxing.
/// </summary>
public interface IRowWriter
{
    /// <summary>Writes the value of the column at <paramref name="column"/>.</summary>
    /// <typeparam name="T">The property's type, as declared (nullable value types included).</typeparam>
    void Write<T>(int column, T value);
}
