using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

namespace DBSync.IntegrationTests;

/// <summary><see cref="DBSyncOptions.SnapshotOnStart"/>: a consumer that keeps its state in memory (a cache) starts empty
/// on every run, so every run snapshots every registered table from its first chunk.</summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Snapshots")]
public sealed class SnapshotOnStartTests(PostgresFixture fixture)
{
    [Fact]
    public async Task EveryRun_RebuildsAFreshInMemoryConsumer_AndASnapshotLeftUnfinishedStartsOver()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("""
            INSERT INTO users (first_name, user_name, email) SELECT 'u', 'u' || g, 'u' || g || '@x' FROM generate_series(1, 25) g;
            INSERT INTO restaurant (id, name, rating) SELECT 'r-' || lpad(g::text, 3, '0'), 'R' || g, g % 5 FROM generate_series(1, 100) g;
            """);

        // First run: its cache is built from the snapshot; the run stops in the middle of the restaurants.
        var stalled = new TaskCompletionSource();
        var first = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            client.On<User>(c => recorder.Add(c));
            client.On<Restaurant>(async (c, ct) =>
            {
                recorder.Add(c);
                if (c.Kind == ChangeKind.Read && c.New!.Id == "r-045")
                {
                    stalled.TrySetResult();
                    await Task.Delay(Timeout.Infinite, ct);
                }
            });
            client.On<Visit>(c => recorder.Add(c));
        }, configure: o =>
        {
            o.SnapshotOnStart = true;
            o.SnapshotChunkSize = 10;
        });
        await stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await first.StopAsync();
        Assert.Equal(25, first.Recorder.Of<User>().Count(c => c.Kind == ChangeKind.Read));

        // Changes while nothing runs.
        await db.ExecuteAsync("""
            UPDATE restaurant SET rating = 42 WHERE id IN ('r-010', 'r-090');
            DELETE FROM restaurant WHERE id = 'r-020';
            DELETE FROM users WHERE id = 3;
            INSERT INTO restaurant (id, name) VALUES ('r-200', 'new');
            """);

        // Second run: a fresh cache. Every table is snapshotted from its first chunk, the unfinished one included.
        var cache = new Replica();
        await using var second = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            cache.Register(client);
            StreamRun.RegisterSeedTables(client, recorder);
        }, configure: o =>
        {
            o.SnapshotOnStart = true;
            o.SnapshotChunkSize = 10;
        });
        await second.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "every table's snapshot");
        await SnapshotTests.WaitForStreamToCatchUpAsync(db, cache, second);
        await cache.AssertEqualsSourceAsync(db.ConnectionString);

        var started = second.Recorder.Progress.OfType<SnapshotTableStarted>().ToList();
        Assert.Equal(["public.restaurant", "public.users", "public.visit"], started.Select(s => s.Table).Order());
        Assert.All(started, s => Assert.False(s.Resumed, $"{s.Table} resumed instead of starting over"));
        Assert.Equal(100, second.Recorder.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read));
        Assert.Equal(24, second.Recorder.Of<User>().Count(c => c.Kind == ChangeKind.Read));
    }
}
