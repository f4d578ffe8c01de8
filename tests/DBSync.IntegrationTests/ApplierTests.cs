using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>
/// The effectively-once applier: each source transaction is applied to a target database in one target transaction
/// together with its commit position, so a transaction delivered again after a crash is skipped. The target keeps a log
/// row per applied change with no unique constraint, so an apply that happened twice would show.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Reliability")]
public sealed class ApplierTests(PostgresFixture fixture)
{
    private const string TargetSchema = """
        CREATE TABLE restaurant_copy (id text PRIMARY KEY, name text NOT NULL, rating int);
        CREATE TABLE applied_log (xid bigint NOT NULL, commit_lsn pg_lsn NOT NULL, id text NOT NULL, kind text NOT NULL);
        """;

    /// <summary>Upserts or deletes the row, and logs the change.</summary>
    private static async ValueTask ApplyRestaurantAsync(Change<Restaurant> change, ApplyContext target, CancellationToken cancellationToken)
    {
        var row = change.New ?? change.Old!;
        await using (var command = change.Kind == ChangeKind.Delete
            ? target.CreateCommand("DELETE FROM restaurant_copy WHERE id = $1")
            : target.CreateCommand("INSERT INTO restaurant_copy (id, name, rating) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET name = $2, rating = $3"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = row.Id });
            if (change.Kind != ChangeKind.Delete)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = row.Name });
                command.Parameters.Add(new NpgsqlParameter { Value = (object?)row.Rating ?? DBNull.Value });
            }
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        await using var log = target.CreateCommand("INSERT INTO applied_log VALUES ($1, $2, $3, $4)");
        log.Parameters.Add(new NpgsqlParameter { Value = (long)change.Xid });
        log.Parameters.Add(new NpgsqlParameter { Value = change.CommitLsn, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.PgLsn });
        log.Parameters.Add(new NpgsqlParameter { Value = row.Id });
        log.Parameters.Add(new NpgsqlParameter { Value = change.Kind.ToString() });
        await log.ExecuteNonQueryAsync(cancellationToken);
    }

    [Fact]
    public async Task CrashBetweenTargetCommitAndConfirmation_Restart_EachSourceTransactionAppliedExactlyOnce()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await target.ExecuteAsync(TargetSchema);
        await source.ExecuteAsync("INSERT INTO Restaurant (id, name, rating) SELECT 'old-' || i, 'before the slot', i FROM generate_series(1, 25) i");

        // First run: the initial snapshot, then source transactions; the target commit of the first of them is followed
        // by a crash before the source transaction is acknowledged.
        var armed = false;
        var crashes = 0;
        var crash = new IOException("simulated crash after the target commit");
        PostgresApplier? firstApplier = null;
        await using (var first = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
                     {
                         firstApplier = new PostgresApplier(client, target.ConnectionString, "restaurants").Map<Restaurant>(ApplyRestaurantAsync);
                         firstApplier.AfterTargetCommit = _ => Volatile.Read(ref armed) && Interlocked.Exchange(ref crashes, 1) == 0 ? throw crash : ValueTask.CompletedTask;
                     }, configure: o =>
                     {
                         o.InitialSnapshot = true;
                         o.SnapshotChunkSize = 10;
                     }))
        {
            await first.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the initial snapshot");
            Volatile.Write(ref armed, true);
            await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-1', 'one')");
            await source.ExecuteAsync("UPDATE Restaurant SET rating = 5 WHERE id = 'r-1'; INSERT INTO Restaurant (id, name) VALUES ('r-2', 'two')");
            await source.ExecuteAsync("DELETE FROM Restaurant WHERE id = 'old-3'; UPDATE Restaurant SET name = 'renamed' WHERE id = 'old-4'");
            await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-3', 'three')");
            var thrown = await Assert.ThrowsAsync<IOException>(() => first.Run.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Same(crash, thrown);
        }
        await firstApplier!.DisposeAsync();
        var crashed = await LastAppliedAsync(target);
        Assert.True(await source.SlotConfirmedAsync() < crashed, "The source transaction whose target commit preceded the crash was confirmed.");

        // Second run: the stream delivers that transaction again; the applier skips it and applies the rest once.
        PostgresApplier? secondApplier = null;
        await using var second = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
            secondApplier = new PostgresApplier(client, target.ConnectionString, "restaurants").Map<Restaurant>(ApplyRestaurantAsync));
        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-4', 'four')");
        for (var attempt = 0; await target.ScalarAsync<long>("SELECT count(*) FROM restaurant_copy WHERE id = 'r-4'") == 0; attempt++)
        {
            Assert.True(attempt < 1500 && !second.Run.IsCompleted, "r-4 did not reach the target within 30 s.");
            await Task.Delay(20);
        }

        Assert.True(secondApplier!.SkippedTransactions >= 1, "No transaction was delivered again and skipped.");
        Assert.Equal(0, await target.ScalarAsync<long>("SELECT count(*) FROM (SELECT xid, id, kind FROM applied_log WHERE kind <> 'Read' GROUP BY 1, 2, 3 HAVING count(*) > 1) twice"));
        Assert.Equal(7, await target.ScalarAsync<long>("SELECT count(*) FROM applied_log WHERE kind <> 'Read'"));
        Assert.Equal(25, await target.ScalarAsync<long>("SELECT count(DISTINCT id) FROM applied_log WHERE kind = 'Read'"));
        Assert.Equal(await source.RowsAsync("SELECT id || '|' || name || '|' || coalesce(rating::text, '-') FROM Restaurant ORDER BY id"),
                     await target.RowsAsync("SELECT id || '|' || name || '|' || coalesce(rating::text, '-') FROM restaurant_copy ORDER BY id"));
        Assert.Equal(await LastAppliedAsync(target), secondApplier.AppliedCommitLsn);
        await second.StopAsync();
        await secondApplier.DisposeAsync();
    }

    [Fact]
    public async Task RetryPolicy_AFailedChangeIsRolledBackToItsSavepoint_AndTheTransactionIsAppliedOnce()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await target.ExecuteAsync(TargetSchema);
        var failures = 0;
        PostgresApplier? applier = null;
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
            applier = new PostgresApplier(client, target.ConnectionString, "restaurants").Map<Restaurant>(async (change, context, ct) =>
            {
                await ApplyRestaurantAsync(change, context, ct);
                // The first attempt at r-b fails after its statements ran: they must not stay in the target transaction.
                if (change.New!.Id == "r-b" && Interlocked.Increment(ref failures) == 1)
                    throw new TimeoutException("the target was slow");
            }), configure: o =>
            {
                o.HandlerFailure = HandlerFailurePolicy.Retry;
                o.HandlerRetryDelay = TimeSpan.FromMilliseconds(20);
            });

        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-a', 'a'), ('r-b', 'b'), ('r-c', 'c')");
        await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the transaction");

        Assert.Equal(1, failures > 1 ? 1 : failures);
        Assert.Equal(["r-a", "r-b", "r-c"], await target.RowsAsync("SELECT id FROM applied_log ORDER BY id"));
        Assert.Equal(1, await target.ScalarAsync<long>("SELECT count(DISTINCT xid) FROM applied_log"));
        Assert.Equal(await LastAppliedAsync(target), applier!.AppliedCommitLsn);
        await run.StopAsync();
        await applier.DisposeAsync();
    }

    private static async Task<NpgsqlTypes.NpgsqlLogSequenceNumber> LastAppliedAsync(TestDatabase target)
        => NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(await target.ScalarAsync<string>("SELECT commit_lsn::text FROM dbsync_applied WHERE name = 'restaurants'"));
}
