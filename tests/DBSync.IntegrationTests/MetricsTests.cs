using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using static DBSync.DBSyncDiagnostics.Metrics;
using Tags = DBSync.DBSyncDiagnostics.Tags;

namespace DBSync.IntegrationTests;

/// <summary>
/// DBSync's meter, observed with a <see cref="System.Diagnostics.Metrics.MeterListener"/> while a client streams from a
/// real server: changes by table and kind and transactions equal what was written, handlers are timed, the lag gauges
/// follow a handler that holds a transaction and return to zero when the stream is idle, snapshots report rows, chunks,
/// progress and their queue, and a lost connection counts as a reconnect.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Ecosystem")]
public sealed class MetricsTests(PostgresFixture fixture)
{
    private const string Slot = "dbsync_test";

    [Fact]
    public void Instruments_HaveTheDocumentedNamesUnitsAndDescriptions()
    {
        // The instruments exist once DBSync's telemetry is first used; run alone, this test comes first.
        System.Runtime.CompilerServices.RuntimeHelpers.RunClassConstructor(typeof(DBSync.Diagnostics.Telemetry).TypeHandle);
        // The runtime's own instruments (DBSync.Nats adds dbsync.jetstream.* on the same meter once it is used: JetStreamTests).
        var instruments = MetricsCapture.Published().Where(i => !i.Name.StartsWith("dbsync.jetstream.", StringComparison.Ordinal)).ToDictionary(i => i.Name);
        var expected = new Dictionary<string, string>
        {
            [Changes] = "{change}", [Transactions] = "{transaction}", [ReceivedBytes] = "By", [ReplicationLag] = "By", [ReplicationDelay] = "s",
            [Reconnects] = "{reconnect}", [HandlerDuration] = "s", [SnapshotRows] = "{row}", [SnapshotChunks] = "{chunk}", [DBSyncDiagnostics.Metrics.SnapshotProgress] = "1",
            [SnapshotTables] = "{table}", [Active] = "1",
        };
        Assert.Equal(expected.Keys.Order(), instruments.Keys.Order());
        Assert.All(expected, e => Assert.Equal(e.Value, instruments[e.Key].Unit));
        Assert.All(instruments.Values, i => Assert.False(string.IsNullOrWhiteSpace(i.Description), $"{i.Name} has no description"));
    }

    [Fact]
    public async Task ChangesAndTransactions_AreCountedByTableAndKind_AndHandlersAreTimed()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        using var metrics = new MetricsCapture(Slot);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, slot: Slot);

        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-1', 'a'), ('r-2', 'b'), ('r-3', 'c')");
        await db.ExecuteAsync("UPDATE Restaurant SET rating = 4 WHERE id IN ('r-1', 'r-2')");
        await db.ExecuteAsync("DELETE FROM Restaurant WHERE id = 'r-3'");
        await db.ExecuteAsync("BEGIN; INSERT INTO Users (id, first_name, user_name, email) VALUES (1, 'u', 'u', 'u@example.com'); INSERT INTO Visit (user_id, restaurant_id, amount_spent) VALUES (1, 'r-1', 1.50); COMMIT");
        await db.ExecuteAsync("TRUNCATE Visit");
        await run.WaitUntilAsync(r => r.Transactions.Count == 5, "the five transactions");

        (string Table, string Kind, int Count)[] written =
        [
            ("public.restaurant", "insert", 3), ("public.restaurant", "update", 2), ("public.restaurant", "delete", 1),
            ("public.users", "insert", 1), ("public.visit", "insert", 1), ("public.visit", "truncate", 1),
        ];
        foreach (var (table, kind, count) in written)
            Assert.True(count == metrics.Sum(Changes, (Tags.Table, table), (Tags.ChangeKind, kind)), $"{kind} {table}: {metrics.Describe(Changes)}");
        Assert.Equal(9, metrics.Sum(Changes));
        Assert.Equal(5, metrics.Sum(Transactions));
        Assert.True(metrics.Sum(ReceivedBytes) > 0, "no bytes received were counted");

        // One duration per change (its table's handlers) and per transaction (the transaction handlers).
        Assert.Equal(6, metrics.Count(HandlerDuration, (Tags.HandlerType, "change"), (Tags.Table, "public.restaurant")));
        Assert.Equal(9, metrics.Count(HandlerDuration, (Tags.HandlerType, "change")));
        Assert.Equal(5, metrics.Count(HandlerDuration, (Tags.HandlerType, "transaction")));
        Assert.True(metrics.Sum(HandlerDuration) > 0);
        await run.StopAsync();
    }

    [Fact]
    public async Task LagAndDelay_GrowWhileAHandlerHoldsATransaction_AndReturnToZeroWhenIdle()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        using var metrics = new MetricsCapture(Slot);
        using var release = new SemaphoreSlim(0);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, slot: Slot,
            configure: o =>
            {
                o.IdleConfirmInterval = TimeSpan.FromMilliseconds(200);
                o.StatusInterval = TimeSpan.FromMilliseconds(200); // how often the server's WAL end is read for the lag
            },
            register: (client, recorder) => client.On<Restaurant>(async (change, cancellationToken) =>
            {
                entered.TrySetResult();
                await release.WaitAsync(cancellationToken);
                recorder.Add(change);
            }));

        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-held', 'held')");
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(700); // a timer may fire a few milliseconds early: keep a margin over the 0.5 s asserted
        metrics.Observe();
        var delay = metrics.Last(ReplicationDelay);
        var lag = metrics.Last(ReplicationLag);
        Assert.True(delay >= 0.5, $"delay {delay} s while a handler held a transaction committed at least 0.5 s ago");
        Assert.True(lag > 0, $"lag {lag} bytes while the transaction was not confirmed");

        release.Release();
        await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the held transaction");
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            metrics.Observe();
            if (metrics.Last(ReplicationDelay) == 0 && metrics.Last(ReplicationLag) == 0)
                break;
            Assert.True(DateTime.UtcNow < deadline, $"once idle, delay stayed {metrics.Last(ReplicationDelay)} s and lag {metrics.Last(ReplicationLag)} bytes");
            await Task.Delay(100);
        }
        await run.StopAsync();
    }

    [Fact]
    public async Task Snapshot_ReportsRowsChunksProgressAndItsQueue()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) SELECT 'r-' || i, 'n' FROM generate_series(1, 4) i; ANALYZE Restaurant");
        using var metrics = new MetricsCapture(Slot);
        var during = new List<(double? Progress, double? Tables)>();
        void Observe()
        {
            metrics.Observe();
            lock (during)
                during.Add((metrics.Last(DBSyncDiagnostics.Metrics.SnapshotProgress, (Tags.Table, "public.restaurant")), metrics.Last(SnapshotTables)));
        }
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(progress =>
            {
                if (progress is SnapshotChunkCompleted)
                    Observe();
            });
        }, slot: Slot, configure: o => (o.SnapshotChunkSize, o.SnapshotParallelism) = (2, 1)); // two chunks, one after the other
        AfterChunkReadSql.Install(run.Client, (_, _, _) =>
        {
            Observe();
            return Task.CompletedTask;
        });

        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(4, metrics.Sum(SnapshotRows, (Tags.Table, "public.restaurant")));
        Assert.Equal(2, metrics.Sum(SnapshotChunks, (Tags.Table, "public.restaurant")));
        Assert.Equal(4, metrics.Sum(Changes, (Tags.Table, "public.restaurant"), (Tags.ChangeKind, "read")));
        // Observed after each chunk was read and after each was delivered. The second chunk is read while the stream
        // delivers the first, so no row is done at either read; then 2 of 4, then all 4.
        Assert.Equal(new (double?, double?)[] { (0, 1), (0, 1), (0.5, 1), (1, 1) }, during);
        metrics.Observe();
        Assert.Equal(0, metrics.Last(SnapshotTables));
        await run.StopAsync();
    }

    [Fact]
    public async Task LostConnection_CountsAReconnect()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        using var metrics = new MetricsCapture(Slot);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, slot: Slot, configure: o => o.ReconnectDelay = TimeSpan.FromMilliseconds(100));

        Assert.True(await db.ScalarAsync<bool>(ReliabilityTests.TerminateWalSender));
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-after', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 1, "the row written after the connection was lost");
        Assert.Equal(1, metrics.Sum(Reconnects));
        await run.StopAsync();
    }
}
