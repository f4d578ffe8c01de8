namespace DBSync;

/// <summary>The CLR shape of a mapped property (of each element, for an array property), as the generator classified it.
/// Decides which PostgreSQL types the column may have and how its values are decoded. The name is also the suffix of the
/// <see cref="Protocol.TupleValue"/> method that reads it (<c>ReadInt32</c>, <c>ReadString</c>, ...).</summary>
public enum SyncColumnType
{
    /// <summary><see cref="bool"/>, from <c>boolean</c>.</summary>
    Boolean,
    /// <summary><see cref="short"/>, from <c>smallint</c>.</summary>
    Int16,
    /// <summary><see cref="int"/>, from <c>integer</c> or <c>smallint</c>.</summary>
    Int32,
    /// <summary><see cref="long"/>, from <c>bigint</c>, <c>integer</c> or <c>smallint</c>.</summary>
    Int64,
    /// <summary><see cref="float"/>, from <c>real</c> (NaN and infinities included).</summary>
    Single,
    /// <summary><see cref="double"/>, from <c>double precision</c> or <c>real</c> (NaN and infinities included).</summary>
    Double,
    /// <summary><see cref="decimal"/>, from <c>numeric</c>, <c>money</c> or an integer type; NaN, infinities and values outside
    /// decimal's range are an error.</summary>
    Decimal,
    /// <summary><see cref="string"/>, from <c>text</c>, <c>varchar</c>, <c>char</c>, <c>name</c>, <c>citext</c>, an enum (its label),
    /// <c>json</c>, <c>jsonb</c> or <c>numeric</c> (its exact text, NaN and infinities included).</summary>
    String,
    /// <summary><see cref="System.DateOnly"/>, from <c>date</c> (years 1 to 9999; infinities are an error).</summary>
    DateOnly,
    /// <summary><see cref="System.TimeOnly"/>, from <c>time</c> (24:00:00 is an error: map it to <see cref="System.TimeSpan"/>).</summary>
    TimeOnly,
    /// <summary><see cref="System.DateTime"/>, from <c>timestamp</c> (Kind Unspecified) or <c>timestamptz</c> (Kind Utc).</summary>
    DateTime,
    /// <summary><see cref="System.DateTimeOffset"/> (offset zero), from <c>timestamptz</c>.</summary>
    DateTimeOffset,
    /// <summary><see cref="System.TimeSpan"/>, from <c>interval</c> without months (a day is 24 hours) or <c>time</c>.</summary>
    TimeSpan,
    /// <summary><see cref="System.Guid"/>, from <c>uuid</c>.</summary>
    Guid,
    /// <summary><c>byte[]</c>, from <c>bytea</c>.</summary>
    Bytes,
    /// <summary><c>ReadOnlyMemory&lt;byte&gt;</c>, from <c>bytea</c>.</summary>
    ByteMemory,
    /// <summary><see cref="System.Text.Json.JsonDocument"/>, from <c>json</c> or <c>jsonb</c>.</summary>
    JsonDocument,
    /// <summary><see cref="System.Text.Json.JsonElement"/>, from <c>json</c> or <c>jsonb</c>.</summary>
    JsonElement,
    /// <summary>A C# enum, from a PostgreSQL enum (or labels in <c>text</c> or <c>varchar</c>), by label
    /// (<see cref="PgLabelAttribute"/>, or the member name in snake_case).</summary>
    Enum,
    /// <summary><see cref="System.Net.IPAddress"/>, from <c>inet</c> or <c>cidr</c> holding a single address (a full-length mask).</summary>
    IPAddress,
    /// <summary><see cref="System.Net.IPNetwork"/>, from <c>cidr</c> or <c>inet</c> (no bits set right of the mask).</summary>
    IPNetwork,
    /// <summary><see cref="DBSync.PgDate"/>, from <c>date</c>: every date and both infinities, exactly.</summary>
    PgDate,
    /// <summary><see cref="DBSync.PgTimestamp"/>, from <c>timestamp</c> or <c>timestamptz</c>: every instant and both infinities, exactly.</summary>
    PgTimestamp,
    /// <summary><see cref="DBSync.PgTimeTz"/>, from <c>timetz</c>.</summary>
    PgTimeTz,
    /// <summary><see cref="DBSync.PgInterval"/>, from <c>interval</c>: months, days and microseconds, exactly.</summary>
    PgInterval,
    /// <summary><see cref="DBSync.PgInet"/>, from <c>inet</c> or <c>cidr</c>: the address and its mask length, exactly.</summary>
    PgInet,
}
