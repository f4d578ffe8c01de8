using System.Buffers.Binary;
using DBSync.Mapping;

namespace DBSync.Protocol;

/// <summary>
/// One value for a property: a column of a pgoutput tuple in text ('t') or binary ('b') format, a column of a snapshot
/// row (binary), an element of an array, or NULL ('n'). The <c>Read</c> methods decode it exactly or throw a
/// <see cref="DecodeException"/> that names the table, column, value and fix; nothing is rounded or defaulted.
/// </summary>
public readonly ref struct TupleValue
{
    private const int MaxZoneSeconds = (15 * 60 * 60) + (59 * 60) + 59;

    private readonly byte _kind;
    private readonly ReadOnlySpan<byte> _data;
    private readonly SyncTableInfo _table;
    private readonly PgColumnType _type;
    private readonly int _element;

    internal TupleValue(byte kind, ReadOnlySpan<byte> data, SyncTableInfo table, int target, PgColumnType type, int element = -1)
    {
        _kind = kind;
        _data = data;
        _table = table;
        _type = type;
        _element = element;
        Target = target;
    }

    /// <summary>The entity column (index into <see cref="SyncTableInfo.Columns"/>) this value fills.</summary>
    public int Target { get; }

    /// <summary>Whether the value is SQL NULL.</summary>
    public bool IsNull => _kind == (byte)'n';

    internal bool IsBinary => _kind == (byte)'b';

    /// <summary>The PostgreSQL scalar type of the value (of each element, for an array).</summary>
    internal uint Scalar => _type.Scalar;

    internal ReadOnlySpan<byte> Data => _data;

    /// <summary>An element of this array value: NULL, or bytes in this value's format.</summary>
    internal TupleValue Element(bool isNull, ReadOnlySpan<byte> data, int index) => new(isNull ? (byte)'n' : _kind, data, _table, Target, _type, index);

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
        return Scalar == PgTypeOids.Int2 ? BinaryPrimitives.ReadInt16BigEndian(Fixed(2)) : BinaryPrimitives.ReadInt32BigEndian(Fixed(4));
    }

    /// <summary>Reads a bigint (or a narrower integer).</summary>
    public long ReadInt64()
    {
        RequireValue();
        return IsBinary ? ReadBinaryInteger() : PgTextValues.ParseInteger<long>(_data, this);
    }

    /// <summary>Reads a real, NaN and infinities included.</summary>
    public float ReadSingle()
    {
        RequireValue();
        return IsBinary ? BinaryPrimitives.ReadSingleBigEndian(Fixed(4)) : PgTextValues.ParseFloat<float>(_data, this);
    }

    /// <summary>Reads a double precision or real, NaN and infinities included.</summary>
    public double ReadDouble()
    {
        RequireValue();
        if (Scalar == PgTypeOids.Float4)
            return ReadSingle(); // widened from the float itself: text "1.1" of a real is 1.1f, not 1.1d
        return IsBinary ? BinaryPrimitives.ReadDoubleBigEndian(Fixed(8)) : PgTextValues.ParseFloat<double>(_data, this);
    }

    /// <summary>Reads a numeric, money or integer as decimal; NaN, infinities and values decimal cannot hold exactly are an error.</summary>
    public decimal ReadDecimal()
    {
        RequireValue();
        return Scalar switch
        {
            PgTypeOids.Money => IsBinary ? PgBinaryValues.ReadMoney(BinaryPrimitives.ReadInt64BigEndian(Fixed(8))) : PgTextValues.ParseMoney(_data, this),
            PgTypeOids.Numeric => IsBinary ? PgBinaryValues.ReadNumeric(_data, this) : PgTextValues.ParseDecimal(_data, this),
            _ => IsBinary ? ReadBinaryInteger() : PgTextValues.ParseInteger<long>(_data, this),
        };
    }

    /// <summary>Reads text, varchar, char, name or citext; an enum's label; json or jsonb text; or a numeric's exact text.</summary>
    public string ReadString()
    {
        RequireValue();
        if (IsBinary)
        {
            if (Scalar == PgTypeOids.Numeric)
                return PgBinaryValues.NumericText(_data, this);
            if (Scalar == PgTypeOids.Jsonb)
                return PgTextValues.Utf8(PgBinaryValues.JsonbText(_data, this), this);
        }
        return PgTextValues.Utf8(_data, this);
    }

    /// <summary>Reads a date; infinities and dates outside years 1 to 9999 are an error (map the column to <see cref="PgDate"/>).</summary>
    public DateOnly ReadDateOnly()
    {
        var date = ReadPgDate();
        if (!date.TryGetDateOnly(out var value))
            Fail($"is {date}, which DateOnly cannot hold (years 1 to 9999, no infinities). Map the column to DBSync.PgDate, which holds every date and ±infinity, or keep such values out of it");
        return value;
    }

    /// <summary>Reads a date exactly, ±infinity included.</summary>
    public PgDate ReadPgDate()
    {
        RequireValue();
        return IsBinary ? new PgDate(BinaryPrimitives.ReadInt32BigEndian(Fixed(4))) : PgTextValues.ParseDate(_data, this);
    }

    /// <summary>Reads a time of day; 24:00:00 is an error (map the column to <see cref="TimeSpan"/>).</summary>
    public TimeOnly ReadTimeOnly()
    {
        var microseconds = ReadTimeMicroseconds();
        if (microseconds >= PgCalendar.MicrosecondsPerDay)
            Fail("is 24:00:00, which TimeOnly cannot hold. Map the column to TimeSpan, which can");
        return new TimeOnly(microseconds * TimeSpan.TicksPerMicrosecond);
    }

    /// <summary>Reads a timetz: the time of day and its UTC offset.</summary>
    public PgTimeTz ReadPgTimeTz()
    {
        RequireValue();
        if (!IsBinary)
            return PgTextValues.ParseTimeTz(_data, this);
        var data = Fixed(12);
        // timetz_send: the time in microseconds, then the zone in seconds west of Greenwich (PostgreSQL keeps it within
        // ±15:59:59).
        var zone = BinaryPrimitives.ReadInt32BigEndian(data[8..]);
        if (zone is < -MaxZoneSeconds or > MaxZoneSeconds)
            Fail($"has a zone of {zone} seconds, outside PostgreSQL's ±15:59:59");
        return new PgTimeTz(TimeSpan.FromMicroseconds(TimeOfDay(BinaryPrimitives.ReadInt64BigEndian(data))), TimeSpan.FromSeconds(-zone));
    }

    /// <summary>Reads a timestamp (Kind Unspecified) or timestamptz (Kind Utc); infinities and years outside 1 to 9999
    /// are an error (map the column to <see cref="PgTimestamp"/>).</summary>
    public DateTime ReadDateTime()
    {
        var timestamp = ReadPgTimestamp();
        if (!timestamp.TryGetDateTime(out var value))
            Fail($"is {timestamp}, which DateTime cannot hold (years 1 to 9999, no infinities). Map the column to DBSync.PgTimestamp, which holds every value and ±infinity, or keep such values out of it");
        return value;
    }

    /// <summary>Reads a timestamptz with offset zero; the same limits as <see cref="ReadDateTime"/>.</summary>
    public DateTimeOffset ReadDateTimeOffset() => new(ReadDateTime(), TimeSpan.Zero);

    /// <summary>Reads a timestamp or timestamptz exactly, ±infinity included.</summary>
    public PgTimestamp ReadPgTimestamp()
    {
        RequireValue();
        var kind = Scalar == PgTypeOids.TimestampTz ? DateTimeKind.Utc : DateTimeKind.Unspecified;
        return IsBinary ? new PgTimestamp(BinaryPrimitives.ReadInt64BigEndian(Fixed(8)), kind) : PgTextValues.ParseTimestamp(_data, kind, this);
    }

    /// <summary>Reads an interval without months (a day as 24 hours), or a time of day (24:00:00 included).</summary>
    public TimeSpan ReadTimeSpan()
    {
        if (Scalar == PgTypeOids.Time)
            return TimeSpan.FromMicroseconds(ReadTimeMicroseconds());
        var interval = ReadPgInterval();
        if (!interval.TryGetTimeSpan(out var value))
        {
            Fail($"is {interval}, which TimeSpan cannot hold exactly ({(interval.Months != 0 ? "a month has no fixed length" : "out of range")}). " +
                 "Map the column to DBSync.PgInterval, which keeps months, days and microseconds apart");
        }
        return value;
    }

    /// <summary>Reads an interval exactly: months, days and microseconds.</summary>
    public PgInterval ReadPgInterval()
    {
        RequireValue();
        if (!IsBinary)
            return PgTextValues.ParseInterval(_data, this);
        var data = Fixed(16);
        // interval_send: the time in microseconds, then days, then months.
        return new PgInterval(BinaryPrimitives.ReadInt32BigEndian(data[12..]), BinaryPrimitives.ReadInt32BigEndian(data[8..]), BinaryPrimitives.ReadInt64BigEndian(data));
    }

    /// <summary>Reads a uuid.</summary>
    public Guid ReadGuid()
    {
        RequireValue();
        return IsBinary ? new Guid(Fixed(16), bigEndian: true) : PgTextValues.ParseGuid(_data, this);
    }

    /// <summary>Reads a bytea.</summary>
    public byte[] ReadBytes()
    {
        RequireValue();
        return IsBinary ? _data.ToArray() : PgTextValues.ParseBytea(_data, this);
    }

    /// <summary>Reads a bytea (the memory of a new array).</summary>
    public ReadOnlyMemory<byte> ReadByteMemory() => ReadBytes();

    /// <summary>Reads json or jsonb into a document of its own (dispose it when done).</summary>
    public System.Text.Json.JsonDocument ReadJsonDocument() => ParseJson(static (ref System.Text.Json.Utf8JsonReader reader) => System.Text.Json.JsonDocument.ParseValue(ref reader));

    /// <summary>Reads json or jsonb into an element that owns a copy of it.</summary>
    public System.Text.Json.JsonElement ReadJsonElement() => ParseJson(static (ref System.Text.Json.Utf8JsonReader reader) => System.Text.Json.JsonElement.ParseValue(ref reader));

    private delegate T JsonParser<out T>(ref System.Text.Json.Utf8JsonReader reader);

    /// <summary>Parses json, or jsonb after its version byte; the parsers copy the text, which lives only as long as the frame.</summary>
    private T ParseJson<T>(JsonParser<T> parse)
    {
        RequireValue();
        var reader = new System.Text.Json.Utf8JsonReader(IsBinary && Scalar == PgTypeOids.Jsonb ? PgBinaryValues.JsonbText(_data, this) : _data);
        try
        {
            return parse(ref reader);
        }
        catch (System.Text.Json.JsonException e)
        {
            Fail("is not valid JSON", e);
            return default;
        }
    }

    /// <summary>Reads an enum label as the member of <typeparamref name="TEnum"/> that has it.</summary>
    public TEnum ReadEnum<TEnum>(PgEnumLabels<TEnum> labels) where TEnum : struct, Enum
    {
        ArgumentNullException.ThrowIfNull(labels);
        RequireValue();
        if (!labels.TryGet(_data, out var value))
        {
            Fail($"'{PgTextValues.Printable(_data)}' is not a label of {labels.EnumName} (labels: {string.Join(", ", labels.Labels)}). " +
                 $"Add a member for it, with [PgLabel(\"{PgTextValues.Printable(_data)}\")] when its name differs");
        }
        return value;
    }

    /// <summary>Reads an inet or cidr holding a single address (a full-length mask).</summary>
    public System.Net.IPAddress ReadIPAddress()
    {
        var (address, bits) = ReadInet();
        if (bits != address.GetAddressBytes().Length * 8)
            Fail($"is {address}/{bits}, a network, which IPAddress cannot hold. Map the column to System.Net.IPNetwork, or to DBSync.PgInet");
        return address;
    }

    /// <summary>Reads a cidr, or an inet without bits set right of its mask.</summary>
    public System.Net.IPNetwork ReadIPNetwork()
    {
        var (address, bits) = ReadInet();
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var length);
        for (var bit = bits; bit < length * 8; bit++)
        {
            if ((bytes[bit / 8] & (0x80 >> (bit % 8))) != 0)
                Fail($"is {address}/{bits}, an address with bits set right of its mask, which IPNetwork cannot hold. Map the column to DBSync.PgInet, which holds the address and its mask length");
        }
        return new System.Net.IPNetwork(address, bits);
    }

    /// <summary>Reads an inet or cidr exactly: the address and its mask length.</summary>
    public PgInet ReadPgInet()
    {
        var (address, bits) = ReadInet();
        return new PgInet(address, bits);
    }

    /// <summary>Reads a one-dimensional array (an empty one of any dimensions too); <typeparamref name="TReader"/> reads
    /// each element, NULL elements included.</summary>
    public T[] ReadArray<T, TReader>() where TReader : IElementReader<T>
    {
        RequireValue();
        return PgArrays.Read<T[], T, TReader>(this, 1);
    }

    /// <summary>Reads an array of <paramref name="rank"/> dimensions (two or more) into <typeparamref name="TArray"/>
    /// (<c>T[,]</c>, <c>T[,,]</c>, ...); <typeparamref name="TReader"/> reads each element, NULL elements included.</summary>
    public TArray ReadArray<TArray, T, TReader>(int rank) where TArray : class where TReader : IElementReader<T>
    {
        RequireValue();
        return PgArrays.Read<TArray, T, TReader>(this, rank);
    }

    private (System.Net.IPAddress Address, int Bits) ReadInet()
    {
        RequireValue();
        return IsBinary ? PgBinaryValues.ReadInet(_data, this) : PgTextValues.ParseInet(_data, this);
    }

    private long ReadTimeMicroseconds()
    {
        RequireValue();
        return IsBinary ? TimeOfDay(BinaryPrimitives.ReadInt64BigEndian(Fixed(8))) : PgTextValues.ParseTime(_data, this);
    }

    /// <summary>A binary time of day, checked: 00:00:00 to 24:00:00, as PostgreSQL's time and timetz hold.</summary>
    private long TimeOfDay(long microseconds)
    {
        if (microseconds is < 0 or > PgCalendar.MicrosecondsPerDay)
            Fail($"is {microseconds} microseconds, not a time of day (0 to 24:00:00)");
        return microseconds;
    }

    private long ReadBinaryInteger() => Scalar switch
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
        if (_kind != (byte)'n')
            return;
        var column = _table.Columns[Target];
        if (_element >= 0)
        {
            throw new DecodeException(
                $"Element {_element + 1} of the array in column \"{column.Name}\" of {_table.DisplayName} is NULL, but property " +
                $"{_table.EntityType.Name}.{column.PropertyName} is {column.ClrTypeName}, whose elements cannot be NULL. " +
                "Make the element type nullable (int?[], string?[]), or keep NULLs out of the array.");
        }
        throw new DecodeException(
            $"Column \"{column.Name}\" of {_table.DisplayName} is NULL, but property {_table.EntityType.Name}.{column.PropertyName} " +
            $"is {column.ClrTypeName}, which cannot hold NULL. Make the property nullable, or add a NOT NULL constraint to the column.");
    }

    /// <summary>Throws a <see cref="DecodeException"/> naming the table, column, both types and <paramref name="problem"/>.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    internal void Fail(string problem, Exception? inner = null)
    {
        var column = _table.Columns[Target];
        var what = _element >= 0 ? $"Element {_element + 1} of the array in column" : "Value of column";
        throw new DecodeException(
            $"{what} \"{column.Name}\" of {_table.DisplayName} ({_type.Name}, {(IsBinary ? "binary" : "text")} format) " +
            $"{problem}; property {_table.EntityType.Name}.{column.PropertyName} is {column.ClrTypeName}.", inner);
    }
}
