using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using DBSync.Mapping;

namespace DBSync.Protocol;

/// <summary>
/// Reads the values of one pgoutput TupleData section for generated decoders. Yields only values that fill a mapped
/// property; unmapped columns are skipped, unchanged TOAST values are recorded in <see cref="UnchangedToast"/>, and for a
/// key-only old tuple every non-key column is skipped. Allocates nothing.
/// </summary>
public ref struct TupleReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly ColumnBinding _binding;
    private readonly bool _keyOnly;
    private readonly int _count;
    private int _position;
    private int _column;
    private ColumnSet _unchanged;

    internal TupleReader(ReadOnlySpan<byte> tuple, ColumnBinding binding, bool keyOnly)
    {
        // The parser has measured the section, so its lengths are known to be in bounds.
        _data = tuple;
        _binding = binding;
        _keyOnly = keyOnly;
        _count = BinaryPrimitives.ReadInt16BigEndian(tuple);
        _position = 2;
        if (_count != binding.ColumnCount)
        {
            throw new ProtocolException(
                $"A tuple of {binding.Table.DisplayName} has {_count} columns but its Relation message described {binding.ColumnCount}.");
        }
    }

    /// <summary>Columns of the entity whose value was an unchanged TOAST value ('u').</summary>
    public readonly ColumnSet UnchangedToast => _unchanged;

    /// <summary>Moves to the next value that fills a property.</summary>
    public bool TryReadNext(out TupleValue value)
    {
        while (_column < _count)
        {
            var column = _column++;
            var kind = _data[_position++];
            ReadOnlySpan<byte> bytes = default;
            if (kind is (byte)'t' or (byte)'b')
            {
                var length = BinaryPrimitives.ReadInt32BigEndian(_data[_position..]);
                bytes = _data.Slice(_position + 4, length);
                _position += 4 + length;
            }

            var target = _binding.TargetOf(column);
            if (target < 0 || (_keyOnly && !_binding.Table.Columns[target].IsKey))
                continue;
            if (kind == (byte)'u')
            {
                _unchanged = _unchanged.Add(target);
                continue;
            }

            value = new TupleValue(kind, bytes, _binding, column, target);
            return true;
        }

        value = default;
        return false;
    }
}

/// <summary>One column value of a tuple, in text ('t') or binary ('b') format, or NULL ('n').</summary>
public readonly ref struct TupleValue
{
    private readonly byte _kind;
    private readonly ReadOnlySpan<byte> _data;
    private readonly ColumnBinding _binding;
    private readonly int _column;

    internal TupleValue(byte kind, ReadOnlySpan<byte> data, ColumnBinding binding, int column, int target)
    {
        _kind = kind;
        _data = data;
        _binding = binding;
        _column = column;
        Target = target;
    }

    /// <summary>The entity column (index into <see cref="SyncTableInfo.Columns"/>) this value fills.</summary>
    public int Target { get; }

    /// <summary>Whether the value is SQL NULL.</summary>
    public bool IsNull => _kind == (byte)'n';

    private bool IsBinary => _kind == (byte)'b';

    private uint TypeOid => _binding.TypeOidOf(_column);

    /// <summary>Reads a boolean.</summary>
    public bool ReadBoolean()
    {
        RequireValue();
        return IsBinary ? Fixed(1)[0] != 0 : PgTextValues.ParseBoolean(_data, this);
    }

    /// <summary>Reads a smallint.</summary>
    public short ReadInt16()
    {
        RequireValue();
        return IsBinary ? BinaryPrimitives.ReadInt16BigEndian(Fixed(2)) : PgTextValues.ParseInteger<short>(_data, this);
    }

    /// <summary>Reads an integer (smallint or integer).</summary>
    public int ReadInt32()
    {
        RequireValue();
        if (!IsBinary)
            return PgTextValues.ParseInteger<int>(_data, this);
        return TypeOid == PgTypeOids.Int2 ? BinaryPrimitives.ReadInt16BigEndian(Fixed(2)) : BinaryPrimitives.ReadInt32BigEndian(Fixed(4));
    }

    /// <summary>Reads a bigint (or a narrower integer).</summary>
    public long ReadInt64()
    {
        RequireValue();
        return IsBinary ? ReadBinaryInteger() : PgTextValues.ParseInteger<long>(_data, this);
    }

    /// <summary>Reads a numeric (or an integer).</summary>
    public decimal ReadDecimal()
    {
        RequireValue();
        if (!IsBinary)
            return PgTextValues.ParseDecimal(_data, this);
        return TypeOid == PgTypeOids.Numeric ? PgBinaryValues.ReadNumeric(_data, this) : ReadBinaryInteger();
    }

    /// <summary>Reads text, varchar, char or name.</summary>
    public string ReadString()
    {
        RequireValue();
        return PgTextValues.Utf8(_data, this);
    }

    /// <summary>Reads a date.</summary>
    public DateOnly ReadDateOnly()
    {
        RequireValue();
        return IsBinary ? PgBinaryValues.ReadDate(BinaryPrimitives.ReadInt32BigEndian(Fixed(4)), this) : PgTextValues.ParseDate(_data, this);
    }

    /// <summary>Reads a timestamp (Kind Unspecified) or timestamptz (Kind Utc).</summary>
    public DateTime ReadDateTime()
    {
        RequireValue();
        var kind = TypeOid == PgTypeOids.TimestampTz ? DateTimeKind.Utc : DateTimeKind.Unspecified;
        return IsBinary
            ? PgBinaryValues.ReadTimestamp(BinaryPrimitives.ReadInt64BigEndian(Fixed(8)), kind, this)
            : PgTextValues.ParseTimestamp(_data, kind, this);
    }

    /// <summary>Reads a timestamptz with offset zero.</summary>
    public DateTimeOffset ReadDateTimeOffset() => new(ReadDateTime(), TimeSpan.Zero);

    /// <summary>Reads a uuid.</summary>
    public Guid ReadGuid()
    {
        RequireValue();
        return IsBinary ? new Guid(Fixed(16), bigEndian: true) : PgTextValues.ParseGuid(_data, this);
    }

    /// <summary>Reads a one-dimensional text[] (NULL elements are null).</summary>
    public string[] ReadStringArray()
    {
        RequireValue();
        return IsBinary ? PgBinaryValues.ReadStringArray(_data, this) : PgTextValues.ParseStringArray(_data, this);
    }

    private long ReadBinaryInteger() => TypeOid switch
    {
        PgTypeOids.Int2 => BinaryPrimitives.ReadInt16BigEndian(Fixed(2)),
        PgTypeOids.Int4 => BinaryPrimitives.ReadInt32BigEndian(Fixed(4)),
        _ => BinaryPrimitives.ReadInt64BigEndian(Fixed(8)),
    };

    private ReadOnlySpan<byte> Fixed(int length)
    {
        if (_data.Length != length)
            Fail($"has {_data.Length} bytes where the binary format has {length}");
        return _data;
    }

    private void RequireValue()
    {
        if (_kind == (byte)'n')
        {
            var column = _binding.Table.Columns[Target];
            throw new DecodeException(
                $"Column \"{column.Name}\" of {_binding.Table.DisplayName} is NULL, but property {_binding.Table.EntityType.Name}.{column.PropertyName} " +
                $"is {column.ClrTypeName}, which cannot hold NULL. Make the property nullable, or add a NOT NULL constraint to the column.");
        }
    }

    /// <summary>Throws a <see cref="DecodeException"/> naming the table, column, both types and <paramref name="problem"/>.</summary>
    [DoesNotReturn]
    internal void Fail(string problem, Exception? inner = null)
    {
        var column = _binding.Table.Columns[Target];
        throw new DecodeException(
            $"Value of column \"{column.Name}\" of {_binding.Table.DisplayName} ({ColumnBinding.TypeName(TypeOid, null)}, {(IsBinary ? "binary" : "text")} format) " +
            $"{problem}; property {_binding.Table.EntityType.Name}.{column.PropertyName} is {column.ClrTypeName}.", inner);
    }
}
