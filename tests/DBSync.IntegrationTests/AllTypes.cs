namespace DBSync.IntegrationTests;

/// <summary>One column of every type the stream decodes, plain and nullable.</summary>
[SyncTable("public.all_types")]
public partial class AllTypes
{
    public const string CreateSql = """
        CREATE TABLE all_types (
            id bigint PRIMARY KEY,
            small smallint NOT NULL, small_n smallint,
            num int NOT NULL, num_n int,
            big bigint NOT NULL, big_n bigint,
            flag boolean NOT NULL, flag_n boolean,
            label text NOT NULL, label_n varchar(20),
            amount numeric NOT NULL, amount_n numeric(12,4),
            day date NOT NULL, day_n date,
            stamp timestamp NOT NULL, stamp_n timestamp,
            stamp_tz timestamptz NOT NULL, stamp_tz_n timestamptz,
            uid uuid NOT NULL, uid_n uuid,
            tags text[] NOT NULL, tags_n text[]
        )
        """;

    [PrimaryKey]
    public long Id { get; set; }

    public short Small { get; set; }

    public short? SmallN { get; set; }

    public int Num { get; set; }

    public int? NumN { get; set; }

    public long Big { get; set; }

    public long? BigN { get; set; }

    public bool Flag { get; set; }

    public bool? FlagN { get; set; }

    public string Label { get; set; } = "";

    public string? LabelN { get; set; }

    public decimal Amount { get; set; }

    public decimal? AmountN { get; set; }

    public DateOnly Day { get; set; }

    public DateOnly? DayN { get; set; }

    public DateTime Stamp { get; set; }

    public DateTime? StampN { get; set; }

    [Column("stamp_tz")]
    public DateTimeOffset StampTz { get; set; }

    [Column("stamp_tz_n")]
    public DateTimeOffset? StampTzN { get; set; }

    public Guid Uid { get; set; }

    public Guid? UidN { get; set; }

    public string?[] Tags { get; set; } = [];

    public string?[]? TagsN { get; set; }

    [SyncIgnore]
    public string Computed => $"{Id}:{Label}";
}
