using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using NpgsqlTypes;

namespace DBSync.IntegrationTests;

[Collection(PostgresCollection.Name)]
[Trait("Category", "Integration")]
public sealed class SchemaChangeTests(PostgresFixture fixture)
{
    [Fact]
    public async Task AddColumnAndDropOfUnmappedColumn_MidStream_KeepStreaming()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await db.ExecuteAsync("INSERT INTO Restaurant (id, name, rating) VALUES ('before', 'b', 1)");
        await db.ExecuteAsync("ALTER TABLE Restaurant ADD COLUMN opened_on date DEFAULT '2020-01-01'");
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name, rating, opened_on) VALUES ('added', 'a', 2, '2021-05-05')");
        await db.ExecuteAsync("ALTER TABLE Restaurant DROP COLUMN opened_on");
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name, rating) VALUES ('dropped', 'd', 3)");
        await db.ExecuteAsync("UPDATE Restaurant SET rating = rating * 10");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 6, "6 restaurant changes");

        var changes = run.Recorder.Of<Restaurant>();
        Assert.Equal([("before", 1), ("added", 2), ("dropped", 3)], changes.Take(3).Select(c => (c.New!.Id, c.New.Rating!.Value)));
        Assert.Equal([10, 20, 30], changes.Skip(3).Select(c => c.New!.Rating!.Value).Order());
        Assert.False(run.Run.IsCompleted);
    }

    [Fact]
    public async Task DroppedMappedColumn_StopsStreamWithErrorNamingTableAndColumn_AndConfirmsNothingPastIt()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('ok', 'n')");
        await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the first transaction");
        var beforeDrop = NpgsqlLogSequenceNumber.Parse(await db.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text"));

        await db.ExecuteAsync("ALTER TABLE Restaurant DROP COLUMN description");
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('after', 'n')");

        var error = await Assert.ThrowsAsync<SchemaMismatchException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(("public.restaurant", "description", (string?)null, "string?"), (error.Table, error.Column, error.PgType, error.ClrType));
        Assert.Contains("Restaurant.Description", error.Message, StringComparison.Ordinal);
        Assert.Contains("[SyncIgnore]", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(run.Recorder.Of<Restaurant>(), c => c.New!.Id == "after");

        var confirmed = NpgsqlLogSequenceNumber.Parse(await db.ScalarAsync<string>("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'dbsync_test'"));
        Assert.True(confirmed <= beforeDrop, $"confirmed {confirmed} must not pass the failed transaction (WAL was at {beforeDrop} before it)");
    }

    [Fact]
    public async Task IncompatibleTypeChange_StopsStreamWithErrorNamingBothTypes()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await db.ExecuteAsync("ALTER TABLE Restaurant ALTER COLUMN rating TYPE text");
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name, rating) VALUES ('r', 'n', 'five stars')");

        var error = await Assert.ThrowsAsync<SchemaMismatchException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(("public.restaurant", "rating", "text", "int?"), (error.Table, error.Column, error.PgType, error.ClrType));
        Assert.Contains("PostgreSQL type text", error.Message, StringComparison.Ordinal);
        Assert.Contains("Restaurant.Rating (int?)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WideningTypeChange_ThatThePropertyHolds_KeepsStreaming()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await db.ExecuteAsync("ALTER TABLE Restaurant ALTER COLUMN rating TYPE smallint");
        await db.ExecuteAsync("ALTER TABLE Visit ALTER COLUMN amount_spent TYPE numeric(20, 4)");
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name, rating) VALUES ('r', 'n', 7)");
        await db.ExecuteAsync("INSERT INTO Users (first_name, user_name, email) VALUES ('a', 'a', 'a'); INSERT INTO Visit VALUES (1, 'r', 12.3456, NULL)");
        await run.WaitUntilAsync(r => r.Of<Visit>().Count == 1, "the visit");

        Assert.Equal(7, run.Recorder.Of<Restaurant>().Single().New!.Rating);
        Assert.Equal(12.3456m, run.Recorder.Of<Visit>().Single().New!.AmountSpent);
    }
}
