using System.Text.Json;
using DBSync;

namespace DBSync.Sample;

// Beyond the seed schema: a table with the richer PostgreSQL types (an enum and an array of it, money, interval, time,
// jsonb, bytea, a two-dimensional array, a timestamptz that may be 'infinity'), created by the sample itself.

/// <summary>How hot a dish is: the PostgreSQL enum <c>spice</c> (labels are the snake_case member names unless [PgLabel] says otherwise).</summary>
public enum Spice
{
    Mild,
    Medium,
    Hot,
    [PgLabel("extra hot")] ExtraHot,
}

/// <summary>A dish on a restaurant's menu.</summary>
[SyncTable("dish")]
public partial class Dish
{
    public const string CreateSql = """
        CREATE TYPE spice AS ENUM ('mild', 'medium', 'hot', 'extra hot');
        CREATE TABLE dish (
            id int PRIMARY KEY,
            restaurant_id varchar(255) NOT NULL REFERENCES restaurant(id),
            name text NOT NULL,
            spice spice NOT NULL,
            price money NOT NULL,
            calories double precision,
            prep_time interval,
            served_from time,
            nutrition jsonb,
            spice_options spice[],
            stock_by_day_and_shift int[][],
            photo bytea,
            available_until timestamptz NOT NULL DEFAULT 'infinity'
        );
        """;

    [PrimaryKey] public int Id { get; set; }

    public string RestaurantId { get; set; } = "";

    public string Name { get; set; } = "";

    public Spice Spice { get; set; }

    public decimal Price { get; set; }

    public double? Calories { get; set; }

    public TimeSpan? PrepTime { get; set; }

    public TimeOnly? ServedFrom { get; set; }

    public JsonElement? Nutrition { get; set; }

    public Spice?[]? SpiceOptions { get; set; }

    public int?[,]? StockByDayAndShift { get; set; }

    public byte[]? Photo { get; set; }

    /// <summary>PgTimestamp, because 'infinity' (no end) is a value DateTimeOffset cannot hold.</summary>
    public PgTimestamp AvailableUntil { get; set; }
}
