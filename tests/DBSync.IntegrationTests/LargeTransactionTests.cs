using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using Npgsql;
using Xunit.Abstractions;

namespace DBSync.IntegrationTests;

/// <summary>
/// Transactions larger than the server's logical_decoding_work_mem, which pgoutput streams while they run
/// (<c>streaming 'on'</c>): delivered whole at their commit, in commit order, with bounded client memory; aborted ones and
/// rolled-back savepoints never delivered. The walsender's logical_decoding_work_mem is set to its minimum, 64 kB,
/// through the connection string, so that streaming starts early.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Reliability")]
public sealed class LargeTransactionTests(PostgresFixture fixture, ITestOutputHelper output)
{
    /// <summary>
    /// Live managed memory (what a garbage collection finds reachable, sampled every 5 ms) the client may hold above what
    /// the test process held before, for a 1M-row transaction with StreamingMemoryLimit at 16 MiB. The transaction's
    /// frames are about 110 MB: a client that kept them in memory measured 105 MiB here, one that spills them 17 MiB.
    /// The heap including garbage not yet collected is reported too (about 96 MiB with spilling, 183 MiB without).
    /// </summary>
    private const long MemoryBoundBytes = 48L * 1024 * 1024;

    internal static string SmallDecodingMemory(string connectionString)
        => new NpgsqlConnectionStringBuilder(connectionString) { Options = "-c logical_decoding_work_mem=64kB" }.ConnectionString;

    [Fact]
    public async Task MillionRowTransaction_StreamedWhileItRuns_IsDeliveredWhole_WithBoundedMemory()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var spill = Path.Combine(Path.GetTempPath(), $"dbsync-spill-{Guid.NewGuid():N}");
        const int rows = 1_000_000;
        long delivered = 0, outOfOrder = 0, commits = 0, commitChanges = 0, filesDuringReplay = -1;
        var expected = 1;

        var sampling = new CancellationTokenSource();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        long peak = baseline, peakLive = baseline;
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                // Everything allocated (garbage included), and what the last collection found alive.
                peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: false));
                var info = GC.GetGCMemoryInfo();
                peakLive = Math.Max(peakLive, info.HeapSizeBytes - info.FragmentedBytes);
                await Task.Delay(5);
            }
        });

        await using var run = await StreamRun.StartAsync(SmallDecodingMemory(db.ConnectionString), (client, _) =>
        {
            client.On<User>(change =>
            {
                // Counted, not kept: what stays in memory is the client's own.
                if (change.New!.Id != expected)
                    outOfOrder++;
                if (expected == 1)
                    filesDuringReplay = Directory.Exists(spill) ? Directory.GetFiles(spill, "*", SearchOption.AllDirectories).Length : 0;
                expected = change.New.Id + 1;
                delivered++;
            });
            client.OnTransaction((tx, _) =>
            {
                commits++;
                commitChanges = tx.ChangeCount;
                return ValueTask.CompletedTask;
            });
        }, configure: o =>
        {
            o.StreamingMemoryLimit = 16L * 1024 * 1024;
            o.StreamingSpillDirectory = spill;
        });

        var started = DateTime.UtcNow;
        await db.ExecuteAsync($"INSERT INTO users (id, first_name, user_name, email, address) SELECT i, 'first', 'user' || i, 'mail' || i || '@example.com', 'street ' || i FROM generate_series(1, {rows}) i");
        await run.WaitUntilAsync(_ => Volatile.Read(ref commits) >= 1, "the commit of the 1M-row transaction", TimeSpan.FromMinutes(4));
        var elapsed = DateTime.UtcNow - started;
        await sampling.CancelAsync();
        await sampler;

        var streamed = await db.ScalarAsync<long>("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'dbsync_test'");
        output.WriteLine($"1M-row transaction: {elapsed.TotalSeconds:0.0} s from INSERT to commit handled; peak managed memory {(peak - baseline) / 1048576.0:0.0} MiB above the baseline, live after a collection {(peakLive - baseline) / 1048576.0:0.0} MiB " +
                         $"(bound {MemoryBoundBytes / 1048576} MiB); streamed transactions on the slot: {streamed}; spill files during replay: {filesDuringReplay}");

        Assert.True(streamed >= 1, "The server did not stream the transaction (pg_stat_replication_slots.stream_txns is 0).");
        Assert.Equal(rows, delivered);
        Assert.Equal(0, outOfOrder);
        Assert.Equal(1, commits);
        Assert.Equal(rows, commitChanges);
        Assert.Equal(1, filesDuringReplay);
        Assert.True(peakLive - baseline < MemoryBoundBytes,
            $"Peak live managed memory was {(peakLive - baseline) / 1048576.0:0.0} MiB above the baseline, over the bound of {MemoryBoundBytes / 1048576} MiB.");
        await run.StopAsync();
        Assert.Empty(Directory.GetFiles(spill, "*", SearchOption.AllDirectories));
        Directory.Delete(spill, recursive: true);
    }

    [Fact]
    public async Task StreamedTransactions_CommitOrderKept_RolledBackSavepointAndAbortedTransactionNeverDelivered()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(SmallDecodingMemory(db.ConnectionString), configure: o => o.StreamingMemoryLimit = 256 * 1024);
        const string Insert = "INSERT INTO users (id, first_name, user_name, email) SELECT i, 'f', 'u' || i, 'e' || i FROM generate_series({0}, {1}) i";

        await using var big = await db.OpenAsync();
        await using (var tx = await big.BeginTransactionAsync())
        {
            await Execute(big, string.Format(Insert, 1, 5000));
            await Execute(big, "SAVEPOINT a");
            await Execute(big, string.Format(Insert, 5001, 10000));
            await Execute(big, "SAVEPOINT b");
            await Execute(big, string.Format(Insert, 10001, 12000));
            await Execute(big, "ROLLBACK TO SAVEPOINT a"); // 5001..12000 are gone
            await Execute(big, string.Format(Insert, 12001, 15000));
            await WaitStreamedAsync(db, 1); // the open transaction has been streamed at least in part

            // A small transaction that commits while the big one is open is delivered before it.
            await db.ExecuteAsync("INSERT INTO users (id, first_name, user_name, email) VALUES (50000, 'small', 'small', 'small')");
            await run.WaitUntilAsync(r => r.Of<User>().Any(c => c.New!.Id == 50000), "the small transaction");
            Assert.Single(run.Recorder.Of<User>());
            await tx.CommitAsync();
        }
        await run.WaitUntilAsync(r => r.Transactions.Count == 2, "the big transaction's commit", TimeSpan.FromSeconds(60));

        await using (var tx = await big.BeginTransactionAsync())
        {
            await Execute(big, string.Format(Insert, 20001, 40000));
            await WaitStreamedAsync(db, 2);
            await tx.RollbackAsync();
        }
        await db.ExecuteAsync("INSERT INTO users (id, first_name, user_name, email) VALUES (60000, 'last', 'last', 'last')");
        await run.WaitUntilAsync(r => r.Of<User>().Any(c => c.New!.Id == 60000), "the transaction after the aborted one");

        var ids = run.Recorder.Of<User>().Select(c => c.New!.Id).ToList();
        Assert.Equal([50000, .. Enumerable.Range(1, 5000), .. Enumerable.Range(12001, 3000), 60000], ids);
        Assert.Equal([1, 8000, 1], run.Recorder.Transactions.Select(t => t.ChangeCount));
        await run.StopAsync();
    }

    /// <summary>
    /// One subtransaction per row: a PL/pgSQL loop whose exception block rolls back every tenth. The transaction is
    /// streamed while it runs (some subtransactions' rows before their rollback) and spills to a file; what is delivered
    /// at its commit is every committed row, in order, and none of the rolled-back ones.
    /// </summary>
    [Fact]
    public async Task HundredThousandSubtransactions_SomeRolledBack_DeliverEveryCommittedRowOnce()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        const int subtransactions = 100_000;
        await using var run = await StreamRun.StartAsync(SmallDecodingMemory(db.ConnectionString),
            configure: o => o.StreamingMemoryLimit = 1024 * 1024);

        var watch = System.Diagnostics.Stopwatch.StartNew();
        await using (var connection = await db.OpenAsync())
        await using (var loop = new NpgsqlCommand(
            $"""
            DO $$
            BEGIN
              FOR i IN 1..{subtransactions} LOOP
                BEGIN
                  INSERT INTO users (id, first_name, user_name, email) VALUES (i, 'f', 'u' || i, 'e' || i);
                  IF i % 10 = 0 THEN
                    RAISE EXCEPTION 'row % is rolled back', i;
                  END IF;
                EXCEPTION WHEN raise_exception THEN
                  NULL;
                END;
              END LOOP;
            END $$
            """, connection) { CommandTimeout = 600 })
        {
            await loop.ExecuteNonQueryAsync();
        }
        var committed = watch.Elapsed;
        await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the commit of the transaction of 100,000 subtransactions", TimeSpan.FromMinutes(10));
        var delivered = watch.Elapsed;

        var streamed = await db.ScalarAsync<long>("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'dbsync_test'");
        output.WriteLine($"{subtransactions:N0} subtransactions: committed after {committed.TotalSeconds:0.0} s, delivered {(delivered - committed).TotalSeconds:0.0} s later " +
                         $"({delivered.TotalSeconds:0.0} s in all); streamed transactions on the slot: {streamed}");
        Assert.True(streamed >= 1, "The server did not stream the transaction (pg_stat_replication_slots.stream_txns is 0).");
        var ids = run.Recorder.Of<User>().Select(c => c.New!.Id).ToList();
        Assert.Equal(Enumerable.Range(1, subtransactions).Where(i => i % 10 != 0), ids);
        Assert.Equal(subtransactions / 10 * 9, Assert.Single(run.Recorder.Transactions).ChangeCount);
        await run.StopAsync();
    }

    private static async Task Execute(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Waits until the slot has streamed at least <paramref name="transactions"/> transactions.</summary>
    internal static async Task WaitStreamedAsync(TestDatabase db, long transactions)
    {
        for (var attempt = 0; attempt < 500; attempt++)
        {
            if (await db.ScalarAsync<long>("SELECT coalesce(max(stream_txns), 0) FROM pg_stat_replication_slots WHERE slot_name = 'dbsync_test'") >= transactions)
                return;
            await Task.Delay(20);
        }
        Assert.Fail($"The slot did not stream {transactions} transaction(s) within 10 s.");
    }
}
