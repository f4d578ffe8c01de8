using System.Diagnostics;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Testing;
using Npgsql;
using Xunit.Abstractions;

namespace DBSync.IntegrationTests;

/// <summary>
/// A PostgreSQL failover under a running DBSync: a PostgreSQL 17 (or 18) primary with a physical standby, the primary
/// killed (SIGKILL of its postmaster), the standby promoted, and DBSync finding it: the address it connects to moved to it
/// (a TCP proxy, as a virtual address or a DNS name that follows the primary), or both servers listed in its connection
/// string. With a failover slot the standby kept a synchronized copy, and DBSync goes on from it with nothing lost;
/// without one, DBSync refuses to go on with a gap.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Standby")]
public sealed class FailoverTests(ITestOutputHelper output)
{
    private const string PhysicalSlot = "dbsync_standby";

    [Theory]
    [InlineData(false, 17)] // the address DBSync connects to moves to the promoted standby
    [InlineData(true, 18)] // the connection string lists both servers (Host=a,b) with Target Session Attributes=primary
    public async Task FailoverSlot_PrimaryKilled_StandbyPromoted_DBSyncContinuesFromTheSynchronizedSlot_ReplicaEqualsTheNewPrimary(bool bothServersListed, int version)
    {
        await using var primary = await PostgresServer.StartAsync(forceLocal: true, version: version);
        await using var standby = await primary.StartStandbyAsync(PhysicalSlot, new Dictionary<string, string>
        {
            ["sync_replication_slots"] = "on",
            ["hot_standby_feedback"] = "on",
        });
        // Logical walsenders wait until the standby has the WAL they send: DBSync never delivers a transaction the
        // promoted standby lacks.
        await primary.ExecuteAsync($"ALTER SYSTEM SET synchronized_standby_slots = '{PhysicalSlot}'");
        await primary.ExecuteAsync("SELECT pg_reload_conf()");
        var database = await CreateSeededDatabaseAsync(primary);
        await primary.ExecuteAsync(
            "INSERT INTO restaurant (id, name, rating) SELECT 'r-' || i, 'n' || i, i % 5 FROM generate_series(1, 2000) i; " +
            "INSERT INTO users (id, first_name, user_name, email) SELECT i, 'f' || i, 'u' || i, 'e' || i FROM generate_series(1, 500) i", database);

        await using var proxy = TcpProxy.Start("127.0.0.1", primary.Port);
        var connectionString = bothServersListed
            ? new NpgsqlConnectionStringBuilder(primary.ConnectionStringFor(database))
            {
                Host = $"127.0.0.1:{primary.Port},127.0.0.1:{standby.Port}",
                TargetSessionAttributes = "primary",
                HostRecheckSeconds = 1, // as the README advises: Npgsql looks again at a server it found to be a standby after 1 s, not 10
            }.ConnectionString
            : new NpgsqlConnectionStringBuilder(primary.ConnectionStringFor(database)) { Host = "127.0.0.1", Port = proxy.Port }.ConnectionString;
        var replica = new Replica();
        var logs = new LogCapture();
        await using var run = await StreamRun.StartAsync(connectionString, (client, _) => replica.Register(client), configure: o =>
        {
            o.FailoverSlot = true;
            o.InitialSnapshot = true;
            o.SnapshotChunkSize = 100;
            o.ReconnectDelay = TimeSpan.FromMilliseconds(200);
            o.MaxReconnectDelay = TimeSpan.FromSeconds(1);
            o.LoggerFactory = logs;
        });
        Assert.True(await primary.ScalarAsync<bool>("SELECT failover FROM pg_replication_slots WHERE slot_name = 'dbsync_test'", database));
        Assert.False(logs.Has(2033), "synchronized_standby_slots is set: no warning expected");

        // The standby's slot sync worker copies the slot (it runs every few seconds). The copy is temporary, and would be
        // dropped at promotion, until the standby has replayed far enough to serve it from the primary's position.
        await WaitAsync(() => standby.ScalarAsync<bool>("SELECT coalesce(bool_or(synced AND NOT temporary), false) FROM pg_replication_slots WHERE slot_name = 'dbsync_test'"),
            "the standby's synchronized copy of the slot", TimeSpan.FromSeconds(90));

        using var stopWriters = new CancellationTokenSource();
        var writer = WriteAsync(connectionString, stopWriters.Token);
        await run.WaitUntilAsync(r => r.Transactions.Count >= 20, "changes from the writer before the failover");

        var failover = Stopwatch.StartNew();
        await primary.KillAsync();
        // The address moves before the promotion (as a DNS name can): DBSync meets a standby still in recovery first.
        // With both servers listed, the standby is found not to be a primary until it is promoted.
        proxy.Retarget(standby.Port);
        await Task.Delay(2000);
        await standby.PromoteAsync();
        var deliveredAtKill = run.Recorder.Transactions.Count;
        await run.WaitUntilAsync(r => r.Transactions.Count > deliveredAtKill + 20, "changes from the writer on the promoted standby", TimeSpan.FromSeconds(90));
        output.WriteLine($"first 20 transactions on the promoted standby delivered {failover.Elapsed.TotalSeconds:0.0} s after the kill");

        await stopWriters.CancelAsync();
        var written = await writer;
        await WaitForReplicaAsync(replica, standby.ConnectionStringFor(database));
        Assert.False(run.Run.IsCompleted, "the run ended");
        Assert.True(logs.Has(2007), "the lost connection was not reported");
        Assert.Contains(run.Recorder.Progress, p => p is SnapshotsCompleted);
        Assert.Equal(1, await standby.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbsync_test' AND active", database));
        output.WriteLine($"{written} writer transactions, {run.Recorder.Transactions.Count} delivered");
        try
        {
            await run.StopAsync();
        }
        catch
        {
            // A stop that hung here once in about ten runs (Npgsql transport): what the run logged, and what the server
            // still had open, for the next one to look at.
            foreach (var (id, text) in logs.Entries)
                output.WriteLine($"log {id.Id}: {text}");
            output.WriteLine("pg_stat_activity on the new primary: " + await standby.ScalarAsync<string>("SELECT string_agg(pid || ' ' || coalesce(application_name,'') || ' ' || coalesce(backend_type,'') || ' ' || coalesce(state,'') || ' ' || coalesce(wait_event,'') || ' ' || left(coalesce(query,''), 120), E'\\n') FROM pg_stat_activity", database));
            throw;
        }
    }

    [Fact]
    public async Task NoSynchronizedSlot_AfterTheFailover_DBSyncRefusesToGoOnWithAGap_StartOverTakesANewSnapshot()
    {
        await using var primary = await PostgresServer.StartAsync(forceLocal: true, version: 17);
        await using var standby = await primary.StartStandbyAsync(PhysicalSlot, new Dictionary<string, string> { ["hot_standby_feedback"] = "on" });
        var database = await CreateSeededDatabaseAsync(primary);
        await primary.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || i, 'n' || i FROM generate_series(1, 50) i", database);

        await using var proxy = TcpProxy.Start("127.0.0.1", primary.Port);
        var connectionString = new NpgsqlConnectionStringBuilder(primary.ConnectionStringFor(database)) { Port = proxy.Port }.ConnectionString;
        await using var run = await StreamRun.StartAsync(connectionString, configure: o =>
        {
            o.ReconnectDelay = TimeSpan.FromMilliseconds(200);
            o.MaxReconnectDelay = TimeSpan.FromSeconds(1);
        });
        await primary.ExecuteAsync("UPDATE restaurant SET name = 'changed' WHERE id = 'r-1'", database);
        await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the update");
        // The checkpoint that shows the pipeline streamed reaches the standby with the rest of the WAL.
        await WaitAsync(async () => await standby.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{database}')")
            && await standby.ScalarAsync<long>("SELECT count(*) FROM pg_class WHERE relname = 'dbsync_checkpoint'", database) == 1
            && await standby.ScalarAsync<long>("SELECT count(*) FROM dbsync_checkpoint WHERE slot_name = 'dbsync_test'", database) == 1,
            "the checkpoint on the standby", TimeSpan.FromSeconds(60));

        await primary.KillAsync();
        await standby.PromoteAsync();
        proxy.Retarget(standby.Port);
        await standby.ExecuteAsync("DELETE FROM restaurant WHERE id = 'r-2'", database); // a delete no new slot would see

        // The running client reconnects to a server without its slot: it stops, saying what was delivered.
        var finished = await Task.WhenAny(run.Run, Task.Delay(TimeSpan.FromSeconds(60)));
        Assert.True(finished == run.Run, "The run did not stop on the promoted standby without its slot.");
        var lost = await Assert.ThrowsAsync<SlotLostException>(() => run.Run);
        Assert.Contains("failed over to a standby that had no synchronized copy", lost.Message, StringComparison.Ordinal);

        // A new run is refused before it creates anything: the checkpoint shows the pipeline had streamed.
        var refused = await Assert.ThrowsAsync<SlotLostException>(() => StreamRun.StartAsync(connectionString));
        Assert.Contains("WhenSlotLost = SlotLost.StartOver", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await standby.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbsync_test'", database));

        // Started over on request: a new slot and every table's rows as they are on the new primary.
        await using var over = await StreamRun.StartAsync(connectionString, configure: o => o.WhenSlotLost = SlotLost.StartOver);
        await over.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the full snapshot after starting over");
        Assert.IsType<SlotStartedOver>(over.Recorder.Progress[0]);
        var read = over.Recorder.Of<DBSync.Sample.Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id).ToHashSet();
        Assert.Equal(49, read.Count);
        Assert.DoesNotContain("r-2", read);
        await over.StopAsync();
    }

    private static async Task<string> CreateSeededDatabaseAsync(PostgresServer server)
    {
        var database = await server.CreateDatabaseAsync();
        await server.ExecuteAsync(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Seed", "seed-schema.sql")), database);
        return database;
    }

    /// <summary>Inserts, updates and deletes restaurants where DBSync connects until stopped, going on after the failover
    /// (statements that fail while no primary answers are tried again); returns how many transactions committed.</summary>
    private static async Task<int> WriteAsync(string dbsyncConnectionString, CancellationToken stop)
    {
        var connectionString = new NpgsqlConnectionStringBuilder(dbsyncConnectionString) { Timeout = 3 }.ConnectionString;
        var committed = 0;
        var i = 0;
        while (!stop.IsCancellationRequested)
        {
            i++;
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(stop);
                await using var command = new NpgsqlCommand(
                    $"INSERT INTO restaurant (id, name) VALUES ('w-{i}', 'new') ON CONFLICT (id) DO NOTHING; " +
                    $"UPDATE restaurant SET rating = {i % 5} WHERE id = 'r-{i % 2000 + 1}'; " +
                    $"DELETE FROM restaurant WHERE id = 'w-{i - 3}'", connection);
                await command.ExecuteNonQueryAsync(stop);
                committed++;
                await Task.Delay(10, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException)
            {
                await Task.Delay(100, CancellationToken.None); // no primary answers yet
            }
        }
        return committed;
    }

    private static async Task WaitForReplicaAsync(Replica replica, string source)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                await replica.AssertEqualsSourceAsync(source);
                return;
            }
            catch (Xunit.Sdk.XunitException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
            }
        }
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}.");
            await Task.Delay(200);
        }
    }
}
