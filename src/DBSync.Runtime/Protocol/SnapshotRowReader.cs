using Npgsql;

namespace DBSync.Protocol;

/// <summary>
/// Reads one row of a snapshot query for generated code. The query selects the entity's columns in
/// <see cref="SyncTableInfo.Columns"/> order, so an ordinal is an entity column index.
/// </summary>
public readonly ref struct SnapshotRowReader
{
    private readonly NpgsqlDataReader _reader;
    private readonly SyncTableInfo _table;

    internal SnapshotRowReader(NpgsqlDataReader reader, SyncTableInfo table)
    {
        _reader = reader;
        _table = table;
    }

    /// <summary>Whether the column at <paramref name="ordinal"/> is SQL NULL.</summary>
    public bool IsNull(int ordinal) => _reader.IsDBNull(ordinal);

    /// <summary>Reads a boolean.</summary>
    public bool ReadBoolean(int ordinal) => Read<bool>(ordinal);

    /// <summary>Reads a smallint.</summary>
    public short ReadInt16(int ordinal) => Read<short>(ordinal);

    /// <summary>Reads an integer.</summary>
    public int ReadInt32(int ordinal) => Read<int>(ordinal);

    /// <summary>Reads a bigint.</summary>
    public long ReadInt64(int ordinal) => Read<long>(ordinal);

    /// <summary>Reads a numeric.</summary>
    public decimal ReadDecimal(int ordinal) => Read<decimal>(ordinal);

    /// <summary>Reads a string.</summary>
    public string ReadString(int ordinal) => Read<string>(ordinal);

    /// <summary>Reads a date.</summary>
    public DateOnly ReadDateOnly(int ordinal) => Read<DateOnly>(ordinal);

    /// <summary>Reads a timestamp or timestamptz.</summary>
    public DateTime ReadDateTime(int ordinal) => Read<DateTime>(ordinal);

    /// <summary>Reads a timestamptz.</summary>
    public DateTimeOffset ReadDateTimeOffset(int ordinal) => Read<DateTimeOffset>(ordinal);

    /// <summary>Reads a uuid.</summary>
    public Guid ReadGuid(int ordinal) => Read<Guid>(ordinal);

    /// <summary>Reads a text[].</summary>
    public string[] ReadStringArray(int ordinal) => Read<string[]>(ordinal);

    private T Read<T>(int ordinal)
    {
        if (_reader.IsDBNull(ordinal))
        {
            var column = _table.Columns[ordinal];
            throw new DecodeException(
                $"Column \"{column.Name}\" of {_table.DisplayName} is NULL, but property {_table.EntityType.Name}.{column.PropertyName} " +
                $"is {column.ClrTypeName}, which cannot hold NULL. Make the property nullable or add a NOT NULL constraint.");
        }

        return _reader.GetFieldValue<T>(ordinal);
    }
}
