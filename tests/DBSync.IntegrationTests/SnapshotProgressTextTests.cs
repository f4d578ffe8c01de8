using DBSync.IntegrationTests.Infrastructure;

namespace DBSync.IntegrationTests;

/// <summary>
/// Progress notifications printed as they are (a handler's <c>Console.WriteLine(p)</c>): keys by their values, for an
/// integer key, a text key and a composite key with a quote in it, never the name of a list type.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Snapshots")]
public sealed class SnapshotProgressTextTests(PostgresFixture fixture)
{
    [Fact]
    public async Task ProgressNotifications_PrintKeysAsValues()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("""
            INSERT INTO users (id, first_name, user_name, email) VALUES (1, 'a', 'a', 'a'), (2, 'b', 'b', 'b'), (3, 'c', 'c', 'c');
            INSERT INTO restaurant (id, name) VALUES ('r-1', 'one'), ('r-2', 'two'), ('it''s', 'quoted');
            INSERT INTO visit (user_id, restaurant_id, amount_spent) VALUES (1, 'r-1', 1), (1, 'r-2', 2), (2, 'r-1', 3), (3, 'it''s', 4);
            """);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o => (o.SnapshotChunkSize, o.SnapshotParallelism) = (2, 1)); // chunks in key order

        await run.Client.SnapshotAsync([SnapshotTable.Of<DBSync.Sample.User>(), SnapshotTable.Of<DBSync.Sample.Visit>()]);
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the snapshots to complete");

        var printed = run.Recorder.Progress.Select(p => p.ToString()).ToList();
        Assert.Contains("SnapshotTableStarted { Table = public.users, MaxKey = 3, Resumed = False, LastKey = null }", printed);
        Assert.Contains("SnapshotChunkCompleted { Table = public.users, Chunk = 1, RowsRead = 2, RowsEmitted = 2, LastKey = 2, Attempts = 1 }", printed);
        Assert.Contains("SnapshotTableStarted { Table = public.visit, MaxKey = (3, 'it''s'), Resumed = False, LastKey = null }", printed);
        Assert.Contains("SnapshotChunkCompleted { Table = public.visit, Chunk = 1, RowsRead = 2, RowsEmitted = 2, LastKey = (1, 'r-2'), Attempts = 1 }", printed);
        Assert.Contains("SnapshotChunkCompleted { Table = public.visit, Chunk = 2, RowsRead = 2, RowsEmitted = 2, LastKey = (3, 'it''s'), Attempts = 1 }", printed);
        Assert.All(printed, p => Assert.DoesNotContain("System.", p, StringComparison.Ordinal));

        // A text key alone: quoted, as a SQL literal.
        await run.Client.SnapshotAsync<DBSync.Sample.Restaurant>();
        var restaurant = run.Recorder.Progress.OfType<SnapshotTableStarted>().Single(p => p.Table == "public.restaurant");
        Assert.Equal("SnapshotTableStarted { Table = public.restaurant, MaxKey = 'r-2', Resumed = False, LastKey = null }", restaurant.ToString());
    }
}
