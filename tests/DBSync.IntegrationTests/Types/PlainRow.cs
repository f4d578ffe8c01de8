namespace DBSync.IntegrationTests.Types;

/// <summary>Only the types whose values the applier writes into COPY by hand (BinaryCopyBuffer): integers, floats,
/// booleans, strings into text, varchar and char, uuid, bytea; nullable and not.</summary>
[SyncTable("plain_types")]
public partial class PlainRow
{
    public const string CreateSql = """
        CREATE TABLE plain_types (
            id int PRIMARY KEY, int2 smallint NOT NULL, int4 integer, int8 bigint NOT NULL, float4 real, float8 double precision NOT NULL,
            bool boolean, flag boolean NOT NULL, text text, varchar varchar(20) NOT NULL, bpchar char(3), uuid uuid, uuid_set uuid NOT NULL,
            bytea bytea, bytea_memory bytea);
        """;

    [PrimaryKey] public int Id { get; set; }
    public short Int2 { get; set; }
    public int? Int4 { get; set; }
    public long Int8 { get; set; }
    public float? Float4 { get; set; }
    public double Float8 { get; set; }
    public bool? Bool { get; set; }
    public bool Flag { get; set; }
    public string? Text { get; set; }
    public string Varchar { get; set; } = "";
    public string? Bpchar { get; set; }
    public Guid? Uuid { get; set; }
    public Guid UuidSet { get; set; }
    public byte[]? Bytea { get; set; }
    public ReadOnlyMemory<byte>? ByteaMemory { get; set; }
}
