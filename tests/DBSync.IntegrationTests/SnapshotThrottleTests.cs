using System.Diagnostics;
using DBSync.Internal;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using DBSync.Snapshots;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>
/// The snapshot throttle (<see cref="DBSyncOptions.SnapshotMaxImpact"/>): it slows a snapshot for the workload of the
/// snapshot's own database, measured by that database's transactions per second with chunks being read and paused, and not
/// for sessions of other databases, DBSync's own connections or its appliers'.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Snapshots")]
public sealed class SnapshotThrottleTests(PostgresFixture fixture)
{
    // 2,000 rows in chunks of 10, 50 ms apart: at least 10 s of chunks, longer than a running and a paused window.
    private const int Rows = 2000;

    private static readonly string Restaurants = $"INSERT INTO restaurant (id, name) SELECT 'r-' || lpad(g::text, 4, '0'), 'R' || g FROM generate_series(1, {Rows}) g";

    private static void SlowChunks(DBSyncOptions options, LogCapture logs)
    {
        options.SnapshotChunkSize = 10;
        options.SnapshotChunkDelay = TimeSpan.FromMilliseconds(50);
        options.LoggerFactory = logs;
    }

    [Fact]
    public async Task BusySessionsOfOtherDatabasesOfDBSyncAndOfAppliers_DoNotSlowTheSnapshot()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var other = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync(Restaurants);
        await other.ExecuteAsync("CREATE TABLE counter (n bigint NOT NULL); INSERT INTO counter VALUES (0)");
        // DBSync's connections carry the user's application name here, so they can only be told apart by their pids.
        var connectionString = new NpgsqlConnectionStringBuilder(db.ConnectionString) { ApplicationName = "shop" }.ConnectionString;

        using var stop = new CancellationTokenSource();
        var busy = new List<Task>
        {
            // Another database: a committing workload and a long statement.
            CommitLoopAsync(other.ConnectionString, stop.Token),
            SleepAsync(() => OpenAsync(other.ConnectionString), stop.Token),
            // This database: an applier's target connection, and a connection of DBSync's own pool named by the user.
            SleepAsync(() => OpenAsync(new NpgsqlConnectionStringBuilder(db.ConnectionString) { ApplicationName = "DBSync applier copy" }.ConnectionString), stop.Token),
        };
        await using var pool = new ConnectionPool(connectionString);
        busy.Add(SleepAsync(async () => await pool.OpenAsync(stop.Token), stop.Token));
        await WaitForActiveSessionsAsync(db, 4);

        var logs = new LogCapture();
        await using var run = await StreamRun.StartAsync(connectionString, configure: o => SlowChunks(o, logs));
        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromMinutes(2));

        await stop.CancelAsync();
        await Task.WhenAll(busy);
        Assert.Equal(Rows, run.Recorder.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read));
        Assert.False(logs.Has(3019) || logs.Has(3018), "The throttle measured a workload: " + string.Join(" | ", logs.Entries.Where(e => e.Id.Id is 3018 or 3019).Select(e => e.Text)));
        Assert.False(logs.Has(3008), "The snapshot paused after a chunk for sessions that are not its database's workload.");
    }

    [Fact]
    public async Task CommittingWorkloadInTheSameDatabase_IsMeasured_AndTheSnapshotPausesForIt()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(Restaurants);
        await db.ExecuteAsync("CREATE TABLE counter (n bigint NOT NULL); INSERT INTO counter VALUES (0)");
        using var stop = new CancellationTokenSource();
        Task[] workload = [CommitLoopAsync(db.ConnectionString, stop.Token), CommitLoopAsync(db.ConnectionString, stop.Token)];

        var logs = new LogCapture();
        var chunkTimes = new List<TimeSpan>();
        var clock = Stopwatch.StartNew();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(p =>
            {
                if (p is SnapshotChunkCompleted)
                    lock (chunkTimes)
                        chunkTimes.Add(clock.Elapsed);
            });
        }, configure: o =>
        {
            SlowChunks(o, logs);
            // One reader: with several, a chunk another reader read just before the pause is delivered inside it, and its
            // completion notice splits the gap this test measures.
            o.SnapshotParallelism = 1;
        });
        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromMinutes(2));

        await stop.CancelAsync();
        await Task.WhenAll(workload);
        Assert.Equal(Rows, run.Recorder.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read));
        var measured = logs.Entries.Where(e => e.Id.Id is 3018 or 3019).Select(e => e.Text).ToList();
        Assert.True(measured.Count > 0, "The throttle never compared the workload with chunks running and paused.");
        Assert.DoesNotContain(measured, text => text.Contains(" 0 transactions/s with chunks being read and 0/s without", StringComparison.Ordinal));
        // The paused window: no chunk for at least its length.
        var longest = chunkTimes.Zip(chunkTimes.Skip(1), (a, b) => b - a).Max();
        var window = ThrottleController.Settle + ThrottleController.PausedWindow;
        Assert.True(longest >= window * 0.9, $"The longest pause between chunks was {longest.TotalMilliseconds:0} ms, shorter than the paused window ({window.TotalMilliseconds:0} ms).");
    }

    private static async Task<NpgsqlConnection> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>A session that commits one small update after another until <paramref name="cancellationToken"/>.</summary>
    private static Task CommitLoopAsync(string connectionString, CancellationToken cancellationToken) => Task.Run(async () =>
    {
        await using var connection = await OpenAsync(connectionString);
        await using var command = new NpgsqlCommand("UPDATE counter SET n = n + 1", connection);
        while (!cancellationToken.IsCancellationRequested)
            await command.ExecuteNonQueryAsync(CancellationToken.None);
    });

    /// <summary>A session that runs one long statement until <paramref name="cancellationToken"/>.</summary>
    private static Task SleepAsync(Func<Task<NpgsqlConnection>> open, CancellationToken cancellationToken) => Task.Run(async () =>
    {
        await using var connection = await open();
        await using var command = new NpgsqlCommand("SELECT pg_sleep(600)", connection) { CommandTimeout = 0 };
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && e is OperationCanceledException or PostgresException)
        {
        }
    });

    /// <summary>Waits until the server shows <paramref name="count"/> sessions running <c>pg_sleep</c> or updating the
    /// counter (in any database).</summary>
    private static async Task WaitForActiveSessionsAsync(TestDatabase db, int count)
    {
        var deadline = Stopwatch.StartNew();
        while (await db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND (query LIKE 'SELECT pg_sleep%' OR query LIKE 'UPDATE counter%')") < count)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), $"Fewer than {count} busy sessions after 60 s.");
            await Task.Delay(50);
        }
    }
}
