namespace DBSync.Protocol;

/// <summary>Object ids of the built-in PostgreSQL types DBSync decodes (from pg_type.dat; stable across versions).</summary>
internal static class PgTypeOids
{
    public const uint Bool = 16;
    public const uint Name = 19;
    public const uint Int8 = 20;
    public const uint Int2 = 21;
    public const uint Int4 = 23;
    public const uint Text = 25;
    public const uint BpChar = 1042;
    public const uint Varchar = 1043;
    public const uint Date = 1082;
    public const uint Timestamp = 1114;
    public const uint TimestampTz = 1184;
    public const uint Numeric = 1700;
    public const uint Uuid = 2950;
    public const uint TextArray = 1009;
    public const uint BpCharArray = 1014;
    public const uint VarcharArray = 1015;

    /// <summary>The SQL name of a built-in type, or null when the oid is not one DBSync knows.</summary>
    public static string? NameOf(uint oid) => oid switch
    {
        Bool => "boolean",
        Name => "name",
        Int8 => "bigint",
        Int2 => "smallint",
        Int4 => "integer",
        Text => "text",
        BpChar => "character",
        Varchar => "character varying",
        Date => "date",
        Timestamp => "timestamp without time zone",
        TimestampTz => "timestamp with time zone",
        Numeric => "numeric",
        Uuid => "uuid",
        TextArray => "text[]",
        BpCharArray => "character[]",
        VarcharArray => "character varying[]",
        _ => null,
    };

    /// <summary>Whether values of PostgreSQL type <paramref name="oid"/> can be decoded into <paramref name="type"/> without loss.</summary>
    public static bool IsCompatible(SyncColumnType type, uint oid) => type switch
    {
        SyncColumnType.Boolean => oid == Bool,
        SyncColumnType.Int16 => oid == Int2,
        SyncColumnType.Int32 => oid is Int2 or Int4,
        SyncColumnType.Int64 => oid is Int2 or Int4 or Int8,
        SyncColumnType.Decimal => oid is Numeric or Int2 or Int4 or Int8,
        SyncColumnType.String => oid is Text or Varchar or BpChar or Name,
        SyncColumnType.DateOnly => oid == Date,
        SyncColumnType.DateTime => oid is Timestamp or TimestampTz,
        SyncColumnType.DateTimeOffset => oid == TimestampTz,
        SyncColumnType.Guid => oid == Uuid,
        SyncColumnType.StringArray => oid is TextArray or VarcharArray or BpCharArray,
        _ => false,
    };
}
