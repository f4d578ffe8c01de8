using DBSync;

namespace DBSync.Sample;

// Beyond the seed schema: a partitioned table, one partition per month. DBSync publishes it via its root, so every
// change arrives as a change of reservation whichever partition holds the row, and an UPDATE that moves a row to
// another month arrives as a Delete and an Insert.

/// <summary>A table booked at a restaurant for a day (range-partitioned by day; the key includes the partition key, as
/// PostgreSQL requires).</summary>
[SyncTable("reservation")]
public partial class Reservation
{
    public const string CreateSql = """
        CREATE TABLE reservation (
            id int NOT NULL,
            day date NOT NULL,
            restaurant_id varchar(255) NOT NULL,
            guests int NOT NULL,
            note text,
            PRIMARY KEY (id, day)
        ) PARTITION BY RANGE (day);
        CREATE TABLE reservation_2026_10 PARTITION OF reservation FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
        CREATE TABLE reservation_2026_11 PARTITION OF reservation FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
        CREATE TABLE reservation_2026_12 PARTITION OF reservation FOR VALUES FROM ('2026-12-01') TO ('2027-01-01');
        """;

    [PrimaryKey(Order = 0)] public int Id { get; set; }

    [PrimaryKey(Order = 1)] public DateOnly Day { get; set; }

    public string RestaurantId { get; set; } = "";

    public int Guests { get; set; }

    public string? Note { get; set; }
}
