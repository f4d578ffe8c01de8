namespace DBSync.Protocol;

/// <summary>Object ids of the built-in PostgreSQL types DBSync decodes (from pg_type.dat; stable across versions).</summary>
internal static class PgTypeOids
{
    public const uint Bool = 16;
    public const uint Bytea = 17;
    public const uint Name = 19;
    public const uint Int8 = 20;
    public const uint Int2 = 21;
    public const uint Int4 = 23;
    public const uint Text = 25;
    public const uint Json = 114;
    public const uint Cidr = 650;
    public const uint Float4 = 700;
    public const uint Float8 = 701;
    public const uint Money = 790;
    public const uint Inet = 869;
    public const uint BpChar = 1042;
    public const uint Varchar = 1043;
    public const uint Date = 1082;
    public const uint Time = 1083;
    public const uint Timestamp = 1114;
    public const uint TimestampTz = 1184;
    public const uint Interval = 1186;
    public const uint TimeTz = 1266;
    public const uint Numeric = 1700;
    public const uint Uuid = 2950;

    /// <summary>The pseudo-type of every enum; DBSync resolves each enum column to it (their formats are all the label).</summary>
    public const uint AnyEnum = 3500;
    public const uint Jsonb = 3802;

    public const uint TextArray = 1009;
    public const uint BpCharArray = 1014;
    public const uint VarcharArray = 1015;

    /// <summary>Built-in scalar types and their SQL names, in oid order.</summary>
    private static readonly (uint Oid, string Name)[] s_scalars =
    [
        (Bool, "boolean"), (Bytea, "bytea"), (Name, "name"), (Int8, "bigint"), (Int2, "smallint"), (Int4, "integer"),
        (Text, "text"), (Json, "json"), (Cidr, "cidr"), (Float4, "real"), (Float8, "double precision"), (Money, "money"),
        (Inet, "inet"), (BpChar, "character"), (Varchar, "character varying"), (Date, "date"), (Time, "time without time zone"),
        (Timestamp, "timestamp without time zone"), (TimestampTz, "timestamp with time zone"), (Interval, "interval"),
        (TimeTz, "time with time zone"), (Numeric, "numeric"), (Uuid, "uuid"), (AnyEnum, "anyenum"), (Jsonb, "jsonb"),
    ];

    /// <summary>Built-in array types and their element types.</summary>
    private static readonly (uint Array, uint Element)[] s_arrays =
    [
        (199, Json), (651, Cidr), (791, Money), (1000, Bool), (1001, Bytea), (1003, Name), (1005, Int2), (1007, Int4),
        (TextArray, Text), (BpCharArray, BpChar), (VarcharArray, Varchar), (1016, Int8), (1021, Float4), (1022, Float8),
        (1041, Inet), (1115, Timestamp), (1182, Date), (1183, Time), (1185, TimestampTz), (1187, Interval), (1231, Numeric),
        (1270, TimeTz), (2951, Uuid), (3807, Jsonb),
    ];

    /// <summary>The SQL name of a built-in scalar type, or null when the oid is not one DBSync knows.</summary>
    public static string? ScalarName(uint oid)
    {
        foreach (var (scalar, name) in s_scalars)
        {
            if (scalar == oid)
                return name;
        }
        return null;
    }

    /// <summary>The element type of a built-in array type, or 0.</summary>
    public static uint ElementOf(uint arrayOid)
    {
        foreach (var (array, element) in s_arrays)
        {
            if (array == arrayOid)
                return element;
        }
        return 0;
    }

    /// <summary>The array type of a built-in element type, or 0 (for tests and messages).</summary>
    public static uint ArrayOf(uint elementOid)
    {
        foreach (var (array, element) in s_arrays)
        {
            if (element == elementOid)
                return array;
        }
        return 0;
    }

    /// <summary>How a built-in type decodes, or null when it is not one DBSync knows.</summary>
    public static PgColumnType? Resolve(uint oid)
    {
        if (ScalarName(oid) is { } name)
            return new PgColumnType(oid, false, name);
        var element = ElementOf(oid);
        return element == 0 ? null : new PgColumnType(element, true, ScalarName(element) + "[]");
    }

    /// <summary>Whether values of PostgreSQL scalar type <paramref name="oid"/> decode into <paramref name="type"/> without loss.</summary>
    public static bool IsCompatible(SyncColumnType type, uint oid) => type switch
    {
        SyncColumnType.Boolean => oid == Bool,
        SyncColumnType.Int16 => oid == Int2,
        SyncColumnType.Int32 => oid is Int2 or Int4,
        SyncColumnType.Int64 => oid is Int2 or Int4 or Int8,
        SyncColumnType.Single => oid == Float4,
        SyncColumnType.Double => oid is Float4 or Float8,
        SyncColumnType.Decimal => oid is Numeric or Int2 or Int4 or Int8 or Money,
        SyncColumnType.String => oid is Text or Varchar or BpChar or Name or AnyEnum or Json or Jsonb or Numeric,
        SyncColumnType.DateOnly or SyncColumnType.PgDate => oid == Date,
        SyncColumnType.TimeOnly => oid == Time,
        SyncColumnType.PgTimeTz => oid == TimeTz,
        SyncColumnType.DateTime or SyncColumnType.PgTimestamp => oid is Timestamp or TimestampTz,
        SyncColumnType.DateTimeOffset => oid == TimestampTz,
        SyncColumnType.TimeSpan => oid is Interval or Time,
        SyncColumnType.PgInterval => oid == Interval,
        SyncColumnType.Guid => oid == Uuid,
        SyncColumnType.Bytes or SyncColumnType.ByteMemory => oid == Bytea,
        SyncColumnType.JsonDocument or SyncColumnType.JsonElement => oid is Json or Jsonb,
        SyncColumnType.Enum => oid is AnyEnum or Text or Varchar, // labels stored as text decode the same way
        SyncColumnType.IPAddress or SyncColumnType.IPNetwork or SyncColumnType.PgInet => oid is Inet or Cidr,
        _ => false,
    };
}

/// <summary>
/// How a column's values decode: a built-in scalar type (a domain resolved to its base type, citext to text, every enum
/// to <see cref="PgTypeOids.AnyEnum"/>), or a one- or multi-dimensional array of one. <see cref="Name"/> is the type as
/// the user wrote it, for messages.
/// </summary>
internal readonly record struct PgColumnType(uint Scalar, bool IsArray, string Name);
