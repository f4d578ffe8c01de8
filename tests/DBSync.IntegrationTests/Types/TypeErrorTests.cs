using DBSync.IntegrationTests.Infrastructure;

namespace DBSync.IntegrationTests.Types;

/// <summary>Properties that cannot hold NULL, NaN, infinities, 24:00, months or a second dimension.</summary>
[SyncTable("strict_row")]
public partial class StrictRow
{
    public const string CreateSql = """
        CREATE TABLE strict_row (id int PRIMARY KEY, amount numeric, day date, at time, span interval, stamp timestamp,
                                 numbers int[], count int, label text)
        """;

    public const string GoodValues = "1.5, '2024-01-01', '12:00', '1 day', '2024-01-01 00:00', '{1,2}', 1, 'x'";

    [PrimaryKey] public int Id { get; set; }
    public decimal Amount { get; set; }
    public DateOnly Day { get; set; }
    public TimeOnly At { get; set; }
    public TimeSpan Span { get; set; }
    public DateTime Stamp { get; set; }
    public int[] Numbers { get; set; } = [];
    public int Count { get; set; }
    public string Label { get; set; } = "";
}

public enum TwoMoods
{
    Happy,
    Sad,
}

[SyncTable("mood_row")]
public partial class MoodRow
{
    [PrimaryKey] public int Id { get; set; }
    public TwoMoods Mood { get; set; }
}

[SyncTable("generated_row")]
public partial class GeneratedRow
{
    [PrimaryKey] public int Id { get; set; }
    public int Doubled { get; set; }
}

[SyncTable("float_row")]
public partial class FloatRow
{
    [PrimaryKey] public int Id { get; set; }
    public double Amount { get; set; }
}

/// <summary>
/// A value its property cannot hold is an error that names table, column, value and fix, in the stream (binary and
/// text tuples) and in snapshots alike; a column that cannot be mapped at all is refused at startup.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Types")]
public sealed class TypeErrorTests(PostgresFixture fixture)
{
    public static TheoryData<bool, string, string, string[]> Cases()
    {
        var cases = new TheoryData<bool, string, string, string[]>();
        foreach (var text in new[] { false, true })
        {
            cases.Add(text, "amount", "'NaN'", ["\"amount\" of public.strict_row", "is NaN, which decimal cannot hold", "Map the column to string"]);
            cases.Add(text, "amount", "'1e40'", ["is 10000000000000000000000000000000000000000, outside the range or precision of decimal", "Map the column to string"]);
            cases.Add(text, "day", "'infinity'", ["\"day\" of public.strict_row", "is infinity, which DateOnly cannot hold", "DBSync.PgDate"]);
            cases.Add(text, "stamp", "'10000-01-01 00:00'", ["is 10000-01-01 00:00:00, which DateTime cannot hold", "DBSync.PgTimestamp"]);
            cases.Add(text, "at", "'24:00'", ["is 24:00:00, which TimeOnly cannot hold", "Map the column to TimeSpan"]);
            cases.Add(text, "span", "'1 mon 2 days'", ["is P1M2D, which TimeSpan cannot hold exactly (a month has no fixed length)", "DBSync.PgInterval"]);
            cases.Add(text, "numbers", "'{{1,2},{3,4}}'", ["is a 2-dimensional array, which a 1-dimensional property cannot hold", "Declare the property with [,]"]);
            cases.Add(text, "numbers", "'{1,NULL}'", ["Element 2 of the array in column \"numbers\" of public.strict_row is NULL", "property StrictRow.Numbers is int[]", "int?[]"]);
            cases.Add(text, "count", "NULL", ["Column \"count\" of public.strict_row is NULL, but property StrictRow.Count is int", "Make the property nullable"]);
            cases.Add(text, "label", "NULL", ["Column \"label\" of public.strict_row is NULL, but property StrictRow.Label is string", "Make the property nullable"]);
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task UnrepresentableValue_FailsSnapshotAndStream_NamingTableColumnValueAndFix(bool textFormat, string column, string value, string[] expected)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync(StrictRow.CreateSql);
        await db.ExecuteAsync($"INSERT INTO strict_row VALUES (1, {StrictRow.GoodValues}); UPDATE strict_row SET {column} = {value} WHERE id = 1");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<StrictRow>(c => recorder.Add(c)),
            configure: o => o.TextFormat = textFormat);

        var snapshotError = await Assert.ThrowsAsync<DecodeException>(() => run.Client.SnapshotAsync<StrictRow>().WaitAsync(TimeSpan.FromSeconds(60)));
        AssertNames(snapshotError, textFormat ? "text format" : "binary format", expected);
        Assert.Empty(run.Recorder.Of<StrictRow>());

        // The stream goes on after a failed snapshot; the same value arriving through it stops it.
        await db.ExecuteAsync($"INSERT INTO strict_row VALUES (2, {StrictRow.GoodValues}); UPDATE strict_row SET {column} = {value} WHERE id = 2");
        var streamError = await Assert.ThrowsAsync<DecodeException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(60)));
        AssertNames(streamError, textFormat ? "text format" : "binary format", expected);
        Assert.Single(run.Recorder.Of<StrictRow>()); // the insert with good values; nothing of the update
    }

    private static void AssertNames(DecodeException error, string format, string[] expected)
    {
        foreach (var part in expected)
            Assert.Contains(part, error.Message, StringComparison.Ordinal);
        if (!error.Message.Contains("is NULL", StringComparison.Ordinal))
            Assert.Contains(format, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public Task EnumMissingALabel_IsRefusedAtStartup_NamingTheLabels()
        => AssertRefusedAtStartupAsync<MoodRow>("CREATE TYPE mood AS ENUM ('happy', 'sad', 'angry', 'bored'); CREATE TABLE mood_row (id int PRIMARY KEY, mood mood NOT NULL)",
            "Enum mood of column \"mood\" of public.mood_row has label(s) 'angry', 'bored' that TwoMoods (property MoodRow.Mood) has no member for",
            "[PgLabel(\"...\")]");

    [Fact]
    public Task GeneratedColumnMapped_IsRefusedAtStartup_WithTheFix()
        => AssertRefusedAtStartupAsync<GeneratedRow>("CREATE TABLE generated_row (id int PRIMARY KEY, doubled int GENERATED ALWAYS AS (id * 2) STORED)",
            "Column \"doubled\" of public.generated_row (property GeneratedRow.Doubled) is a generated column", "Mark the property [SyncIgnore]");

    [Fact]
    public Task PropertyOfAnotherType_IsRefusedAtStartup_ListingTheTypesThatFit()
        => AssertRefusedAtStartupAsync<FloatRow>("CREATE TABLE float_row (id int PRIMARY KEY, amount numeric NOT NULL)",
            "Column \"amount\" of public.float_row has PostgreSQL type numeric, which property FloatRow.Amount (double) cannot hold",
            "Properties that can hold it: decimal, string");

    private async Task AssertRefusedAtStartupAsync<T>(string createSql, params string[] expected) where T : ISyncTable<T>
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync(createSql);

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<T>(c => recorder.Add(c))));
        foreach (var part in expected)
            Assert.Contains(part, error.Message, StringComparison.Ordinal);
    }
}
