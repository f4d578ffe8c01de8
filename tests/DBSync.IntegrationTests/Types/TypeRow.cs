using System.Net;
using System.Text.Json;

namespace DBSync.IntegrationTests.Types;

public enum Mood
{
    Happy,
    Sad,
    [PgLabel("very happy")] VeryHappy,
}

/// <summary>One column of every type DBSync maps (some types twice, for their other C# mappings), all nullable, and a
/// generated column that no property maps. Shared with the generator tests, whose snapshot pins its generated code.</summary>
[SyncTable("type_round_trip")]
public partial class TypeRow
{
    public const string CreateSql = """
        CREATE EXTENSION IF NOT EXISTS citext;
        CREATE TYPE mood AS ENUM ('happy', 'sad', 'very happy');
        CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
        CREATE TABLE type_round_trip (
            id int PRIMARY KEY,
            int2 smallint, int4 integer, int8 bigint, float4 real, float8 double precision,
            numeric numeric, numeric_text numeric, money money, bool boolean,
            text text, varchar varchar(20), bpchar char(3), citext citext, name name,
            bytea bytea, bytea_memory bytea, uuid uuid,
            date date, date_exact date, time time, time_span time, timetz timetz,
            timestamp timestamp, timestamp_exact timestamp,
            timestamptz timestamptz, timestamptz_utc timestamptz, timestamptz_exact timestamptz,
            interval interval, interval_exact interval,
            json json, json_text jsonb, jsonb jsonb, jsonb_element jsonb,
            mood mood, mood_text mood, inet inet, cidr cidr, inet_exact inet, posint posint,
            int4_array int[], int4_matrix int[], int4_cube int[], int4_strict int[],
            text_array text[], varchar_array varchar[], citext_array citext[], mood_array mood[],
            numeric_array numeric[], money_array money[], float4_array real[], float8_array float8[],
            int2_array int2[], int8_array int8[], bool_array bool[],
            date_array date[], time_array time[], timetz_array timetz[], timestamp_array timestamp[], timestamptz_array timestamptz[],
            interval_array interval[], uuid_array uuid[], bytea_array bytea[], jsonb_array jsonb[],
            inet_array inet[], cidr_array cidr[], posint_array posint[],
            doubled int GENERATED ALWAYS AS (id * 2) STORED
        );
        """;

    [PrimaryKey] public int Id { get; set; }

    public short? Int2 { get; set; }
    public int? Int4 { get; set; }
    public long? Int8 { get; set; }
    public float? Float4 { get; set; }
    public double? Float8 { get; set; }
    public decimal? Numeric { get; set; }
    public string? NumericText { get; set; }
    public decimal? Money { get; set; }
    public bool? Bool { get; set; }

    public string? Text { get; set; }
    public string? Varchar { get; set; }
    public string? Bpchar { get; set; }
    public string? Citext { get; set; }
    public string? Name { get; set; }
    public byte[]? Bytea { get; set; }
    public ReadOnlyMemory<byte>? ByteaMemory { get; set; }
    public Guid? Uuid { get; set; }

    public DateOnly? Date { get; set; }
    public PgDate? DateExact { get; set; }
    public TimeOnly? Time { get; set; }
    public TimeSpan? TimeSpan { get; set; }
    public PgTimeTz? Timetz { get; set; }
    public DateTime? Timestamp { get; set; }
    public PgTimestamp? TimestampExact { get; set; }
    public DateTimeOffset? Timestamptz { get; set; }
    public DateTime? TimestamptzUtc { get; set; }
    public PgTimestamp? TimestamptzExact { get; set; }
    public TimeSpan? Interval { get; set; }
    public PgInterval? IntervalExact { get; set; }

    public string? Json { get; set; }
    public string? JsonText { get; set; }
    public JsonDocument? Jsonb { get; set; }
    public JsonElement? JsonbElement { get; set; }
    public Mood? Mood { get; set; }
    public string? MoodText { get; set; }
    public IPAddress? Inet { get; set; }
    public IPNetwork? Cidr { get; set; }
    public PgInet? InetExact { get; set; }
    public int? Posint { get; set; }

    public int?[]? Int4Array { get; set; }
    public int?[,]? Int4Matrix { get; set; }
    public int[,,]? Int4Cube { get; set; }
    public int[]? Int4Strict { get; set; }
    public string?[]? TextArray { get; set; }
    public string?[]? VarcharArray { get; set; }
    public string?[]? CitextArray { get; set; }
    public Mood?[]? MoodArray { get; set; }
    public decimal?[]? NumericArray { get; set; }
    public decimal?[]? MoneyArray { get; set; }
    public float?[]? Float4Array { get; set; }
    public double?[]? Float8Array { get; set; }
    public short?[]? Int2Array { get; set; }
    public long?[]? Int8Array { get; set; }
    public bool?[]? BoolArray { get; set; }
    public DateOnly?[]? DateArray { get; set; }
    public TimeOnly?[]? TimeArray { get; set; }
    public PgTimeTz?[]? TimetzArray { get; set; }
    public DateTime?[]? TimestampArray { get; set; }
    public DateTimeOffset?[]? TimestamptzArray { get; set; }
    public TimeSpan?[]? IntervalArray { get; set; }
    public Guid?[]? UuidArray { get; set; }
    public byte[]?[]? ByteaArray { get; set; }
    public JsonElement?[]? JsonbArray { get; set; }
    public IPAddress?[]? InetArray { get; set; }
    public IPNetwork?[]? CidrArray { get; set; }
    public int?[]? PosintArray { get; set; }
}
