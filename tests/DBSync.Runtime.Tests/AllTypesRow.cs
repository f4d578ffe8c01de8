namespace DBSync.Runtime.Tests;

// Shared with benchmarks/DBSync.Benchmarks, which links this file.

public enum Feeling
{
    Happy,
    Sad,
}

/// <summary>The fixed-size columns of the recorded all_types table, as a struct: decoding it allocates nothing.</summary>
[SyncTable("all_types")]
public partial record struct AllTypesRow
{
    [PrimaryKey] public long Id { get; init; }

    public bool? Flag { get; init; }

    public short? Small { get; init; }

    public long? Big { get; init; }

    public Guid? Uid { get; init; }

    public DateTime? Stamp { get; init; }

    public DateTimeOffset? StampTz { get; init; }

    public decimal? Amount { get; init; }

    [Column("feeling")] public Feeling? Mood { get; init; }

    public float? F4 { get; init; }

    public double? F8 { get; init; }

    public DateOnly? Day { get; init; }

    public PgDate? DayExact { get; init; }

    public TimeOnly? At { get; init; }

    public PgTimeTz? AtTz { get; init; }

    public TimeSpan? Span { get; init; }

    public PgInterval? SpanExact { get; init; }

    public PgTimestamp? StampExact { get; init; }

    public decimal? Cash { get; init; }
}
