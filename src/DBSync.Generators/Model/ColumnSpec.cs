namespace DBSync.Generators.Model;

/// <summary>One mapped property. <see cref="ColumnType"/> is the name of a DBSync.SyncColumnType member, which is also
/// the suffix of the runtime's reader methods (ReadInt32, ReadString, ...).</summary>
internal sealed record ColumnSpec(
    string PropertyName,
    string ColumnName,
    string ColumnType,
    string TypeDisplay,
    bool IsNullable,
    int KeyOrder);
