using System.Buffers;
using DBSync.Mapping;
using Npgsql;

namespace DBSync.Protocol;

/// <summary>
/// Reads one row of a snapshot query for generated code, with the same value decoders as the stream: each column's
/// value, in binary (PostgreSQL's send format, as in a binary tuple) or text format, is copied into a reused buffer and
/// read as a <see cref="TupleValue"/>. The query selects the entity's columns in <see cref="SyncTableInfo.Columns"/> order, so an
/// ordinal is an entity column index.
/// </summary>
public ref struct SnapshotRowReader : IRowValues
{
    private readonly NpgsqlDataReader _reader;
    private readonly SnapshotColumns _columns;
    private int _ordinal;

    internal SnapshotRowReader(NpgsqlDataReader reader, SnapshotColumns columns)
    {
        _reader = reader;
        _columns = columns;
    }

    /// <summary>Moves to the next column of the row, in entity column order. The value is valid until the next call.</summary>
    public bool TryReadNext(out TupleValue value)
    {
        var table = _columns.Table;
        if (_ordinal >= table.Columns.Length)
        {
            value = default;
            return false;
        }

        var ordinal = _ordinal++;
        if (_reader.IsDBNull(ordinal))
        {
            value = new TupleValue((byte)'n', default, table, ordinal, _columns.Types[ordinal]);
            return true;
        }
        // GetBytes reads a column's raw bytes whatever its type; without a buffer it returns the length.
        var length = checked((int)_reader.GetBytes(ordinal, 0, null, 0, 0));
        var buffer = _columns.Buffer(length);
        _reader.GetBytes(ordinal, 0, buffer, 0, length);
        value = new TupleValue(_columns.Format, buffer.AsSpan(0, length), table, ordinal, _columns.Types[ordinal]);
        return true;
    }
}

/// <summary>The entity columns of one snapshot query: how each decodes (checked against the properties once per query,
/// as a Relation message is in the stream), and a pooled buffer for the values.</summary>
internal sealed class SnapshotColumns : IDisposable
{
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(4096);

    private SnapshotColumns(SyncTableInfo table, PgColumnType[] types, bool text)
    {
        Table = table;
        Types = types;
        Format = text ? (byte)'t' : (byte)'b';
    }

    public SyncTableInfo Table { get; }

    /// <summary>'b' for binary results (Npgsql's default), 't' for text (<see cref="DBSyncOptions.TextFormat"/>).</summary>
    public byte Format { get; }

    public PgColumnType[] Types { get; }

    /// <exception cref="SchemaMismatchException">A column has a type its property cannot hold.</exception>
    public static SnapshotColumns Create(NpgsqlDataReader reader, SyncTableInfo table, PgTypeCatalog types, bool text)
    {
        var resolved = new PgColumnType[table.Columns.Length];
        for (var i = 0; i < resolved.Length; i++)
            resolved[i] = ColumnBinding.Resolve(table, table.Columns[i], reader.GetDataTypeOID(i), types);
        return new SnapshotColumns(table, resolved, text);
    }

    public byte[] Buffer(int length)
    {
        if (_buffer.Length < length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(length);
        }
        return _buffer;
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}
