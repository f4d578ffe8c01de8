using DBSync.Protocol;

namespace DBSync;

/// <summary>
/// Implemented by the DBSync source generator for every <see cref="SyncTableAttribute"/> type. The members are static so
/// the runtime reaches generated code without reflection or virtual dispatch; user code rarely calls them directly.
/// </summary>
/// <typeparam name="TSelf">The entity type.</typeparam>
public interface ISyncTable<TSelf> where TSelf : ISyncTable<TSelf>
{
    /// <summary>The mapped table and its columns.</summary>
    static abstract SyncTableInfo TableInfo { get; }

    /// <summary>Builds an entity from a pgoutput TupleData section. The reader yields only mapped, present values;
    /// unchanged TOAST columns are recorded on the reader instead.</summary>
    static abstract TSelf DecodeTuple(ref TupleReader tuple);

    /// <summary>Builds an entity from a snapshot row whose columns are selected in <see cref="SyncTableInfo.Columns"/> order.</summary>
    static abstract TSelf ReadRow(ref SnapshotRowReader row);

    /// <summary>Builds an entity from any source of column values (a message read back from a broker, for one): the same
    /// generated decoding as <see cref="DecodeTuple"/> and <see cref="ReadRow"/>, specialized for
    /// <typeparamref name="TReader"/>.</summary>
    static abstract TSelf ReadValues<TReader>(ref TReader values) where TReader : IRowValues, allows ref struct;

    /// <summary>Whether two entities have the same primary key.</summary>
    static abstract bool KeyEquals(TSelf x, TSelf y);

    /// <summary>A hash code of the primary key, consistent with <see cref="KeyEquals"/>.</summary>
    static abstract int GetKeyHashCode(TSelf value);

    /// <summary>A new entity with the values of <paramref name="target"/>, but for the columns in <paramref name="columns"/>
    /// (indexes into <see cref="SyncTableInfo.Columns"/>), which come from <paramref name="source"/>. Neither argument is
    /// changed. The snapshot uses it to complete a row whose update left unchanged TOAST values out.</summary>
    static abstract TSelf WithColumns(TSelf target, TSelf source, ColumnSet columns);

    /// <summary>Hands the values of <paramref name="row"/> to <paramref name="writer"/>, one call per column in
    /// <see cref="SyncTableInfo.Columns"/> order. The applier writes rows into a target database with it.</summary>
    static abstract void WriteRow<TWriter>(TSelf row, ref TWriter writer) where TWriter : IRowWriter, allows ref struct;
}

/// <summary>An <see cref="IEqualityComparer{T}"/> that compares entities by primary key only.</summary>
/// <typeparam name="T">The entity type.</typeparam>
public sealed class KeyComparer<T> : IEqualityComparer<T> where T : ISyncTable<T>
{
    /// <summary>The shared instance.</summary>
    public static KeyComparer<T> Instance { get; } = new();

    private KeyComparer()
    {
    }

    /// <inheritdoc />
    public bool Equals(T? x, T? y) => x is null ? y is null : y is not null && T.KeyEquals(x, y);

    /// <inheritdoc />
    public int GetHashCode(T obj) => T.GetKeyHashCode(obj);
}
