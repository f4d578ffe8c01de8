using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using DBSync.Testing;
using Npgsql;
using NpgsqlTypes;
using Xunit.Abstractions;

namespace DBSync.IntegrationTests;

/// <summary>
/// The effectively-once applier: each source transaction is applied to a target database in one target transaction
/// together with its commit position, so a transaction delivered again after a crash is skipped. The target keeps a log
/// row per applied change with no unique constraint, so an apply that happened twice would show.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Reliability")]
public sealed class ApplierTests(PostgresFixture fixture, ITestOutputHelper output)
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
        // by a crash before the source transaction is acknowledged. Appliers commit before the transaction handlers run,
        // and the source transaction is acknowledged after them: a transaction handler that fails once the applier
        // recorded its transaction is that crash.
        var armed = false;
        var crashes = 0;
        var crash = new IOException("simulated crash after the target commit");
        PostgresApplier? firstApplier = null;
        await using (var first = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
                     {
                         // One target transaction per source transaction: the crash point (the target committed, the
                         // transaction handlers run) exists only for a transaction that commits alone.
                         var applier = new PostgresApplier(client, target.ConnectionString, "restaurants") { MaxGroupedTransactions = 1 }.Map<Restaurant>(ApplyRestaurantAsync);
                         firstApplier = applier;
                         client.OnTransaction((transaction, _) => Volatile.Read(ref armed) && applier.AppliedCommitLsn == transaction.CommitLsn
                                                                  && Interlocked.Exchange(ref crashes, 1) == 0
                             ? throw crash
                             : ValueTask.CompletedTask);
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
    public async Task SmallSourceTransactionsWaitingInTheSlot_ShareTargetTransactions_EachAppliedOnce_AStopCommitsTheOpenOne()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await target.ExecuteAsync(TargetSchema);
        // A first run creates the slot; the transactions written after it stopped wait in the slot, so the next run
        // receives them faster than one target commit each.
        await using (var first = await StreamRun.StartAsync(source.ConnectionString, (client, _) => client.On<Restaurant>((_, _) => ValueTask.CompletedTask)))
            await first.StopAsync();
        const int transactions = 2000;
        await source.ExecuteAsync($"DO $$ BEGIN FOR i IN 1..{transactions} LOOP INSERT INTO Restaurant (id, name) VALUES ('g-' || i, 'grouped'); COMMIT; END LOOP; END $$");
        var lastCommit = NpgsqlLogSequenceNumber.Parse(await source.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text"));

        PostgresApplier? applier = null;
        await using (var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
                         applier = new PostgresApplier(client, target.ConnectionString, "restaurants").Map<Restaurant>(ApplyRestaurantAsync)))
        {
            for (var attempt = 0; await target.ScalarAsync<long>("SELECT count(*) FROM restaurant_copy") < transactions; attempt++)
            {
                Assert.True(attempt < 6000 && !run.Run.IsCompleted, $"The transactions did not reach the target within 120 s (applied at {applier?.AppliedCommitLsn}, confirmed {await source.SlotConfirmedAsync()}).");
                await Task.Delay(20);
            }
            await run.StopAsync();
        }
        await applier!.DisposeAsync();

        output.WriteLine($"{transactions} source transactions in {applier.TargetCommits} target transactions");
        Assert.True(applier.TargetCommits <= transactions / 4, $"{transactions} source transactions took {applier.TargetCommits} target transactions.");
        Assert.Equal(transactions, await target.ScalarAsync<long>("SELECT count(*) FROM applied_log"));
        Assert.Equal(transactions, await target.ScalarAsync<long>("SELECT count(DISTINCT xid) FROM applied_log"));
        // The last group committed at the stop, with its position, and was confirmed after that.
        var applied = await LastAppliedAsync(target);
        Assert.Equal(applier.AppliedCommitLsn, applied);
        Assert.True(applied <= lastCommit && await source.SlotConfirmedAsync() > applied, $"applied {applied}, confirmed {await source.SlotConfirmedAsync()}, last write {lastCommit}");
        Assert.Equal(await source.RowsAsync("SELECT id FROM Restaurant WHERE id LIKE 'g-%' ORDER BY id"), await target.RowsAsync("SELECT id FROM restaurant_copy ORDER BY id"));
    }

    [Fact]
    public async Task GeneratedMapping_BacklogThenQuiet_TheLastGroupCommitsWithoutAnotherFrame()
    {
        // The generated mapping batches its statements, so a transaction's handlers complete without I/O and the loop
        // stays on the transport's reader thread: the held group must commit there too, before the read waits for a
        // frame that a quiet source never sends (keepalives are not frames).
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server);
        await using (var first = await StreamRun.StartAsync(source.ConnectionString, (client, _) => client.On<Restaurant>((_, _) => ValueTask.CompletedTask)))
            await first.StopAsync();
        await source.ExecuteAsync("DO $$ BEGIN FOR i IN 1..500 LOOP INSERT INTO Restaurant (id, name) VALUES ('q-' || i, 'backlog'); COMMIT; END LOOP; END $$");

        PostgresApplier? applier = null;
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
            applier = new PostgresApplier(client, target.ConnectionString, "restaurants").MapTable<Restaurant>());
        await WaitForRowsAsync(target, run, "id LIKE 'q-%'", 500);
        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('q-after', 'alone')");
        await WaitForRowsAsync(target, run, "id = 'q-after'", 1);
        Assert.True(applier!.TargetCommits < 500, $"500 source transactions took {applier.TargetCommits} target transactions.");
        await run.StopAsync();
        await applier.DisposeAsync();
    }

    private static async Task WaitForRowsAsync(TestDatabase target, StreamRun run, string where, long rows)
    {
        for (var attempt = 0; await target.ScalarAsync<long>($"SELECT count(*) FROM restaurant WHERE {where}") < rows; attempt++)
        {
            if (run.Run.IsCompleted)
                await run.Run; // its error says more
            Assert.True(attempt < 1500, $"The target did not get {rows} rows where {where} within 30 s.");
            await Task.Delay(20);
        }
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

    [Fact]
    public async Task RetryPolicy_HandlerEndsTheTargetTransaction_StopsNamingTheSourceTransaction()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await target.ExecuteAsync(TargetSchema);
        NpgsqlLogSequenceNumber commit = default;
        PostgresApplier? applier = null;
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
            applier = new PostgresApplier(client, target.ConnectionString, "restaurants").Map<Restaurant>(async (change, context, ct) =>
            {
                // Not the handler's to end: its savepoint is gone with it, so the change cannot be retried alone.
                commit = change.CommitLsn;
                await context.Transaction.RollbackAsync(ct);
                throw new InvalidOperationException("the handler rolled the target transaction back");
            }), configure: o =>
            {
                o.HandlerFailure = HandlerFailurePolicy.Retry;
                o.HandlerMaxAttempts = 2;
                o.HandlerRetryDelay = TimeSpan.FromMilliseconds(20);
            });

        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-a', 'a')");
        var error = await Assert.ThrowsAsync<DBSyncException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Contains($"the source transaction committed at {commit} was rolled back", error.Message, StringComparison.Ordinal);
        await applier!.DisposeAsync();
    }

    /// <summary>
    /// The target answers, but its backend is terminated in the middle of each of the first three attempts at a
    /// transaction: each is a lost connection, the delay before the next attempt grows as for a server that does not
    /// answer, and the fourth attempt applies the transaction once.
    /// </summary>
    [Fact]
    public async Task TargetBackendTerminatedInEveryAttempt_ReconnectsWithAGrowingDelay_ThenAppliesTheTransactionOnce()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await target.ExecuteAsync(TargetSchema);
        var logs = new LogCapture();
        var attempts = 0;
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
            new PostgresApplier(client, target.ConnectionString, "restaurants").Map<Restaurant>(async (change, context, ct) =>
            {
                await ApplyRestaurantAsync(change, context, ct);
                if (Interlocked.Increment(ref attempts) <= 3)
                {
                    await using var terminate = context.CreateCommand("SELECT pg_terminate_backend(pg_backend_pid())");
                    await terminate.ExecuteNonQueryAsync(ct);
                }
            }), configure: o =>
            {
                o.ReconnectDelay = TimeSpan.FromMilliseconds(100);
                o.LoggerFactory = logs;
            });

        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-a', 'a')");
        await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the transaction, applied at the fourth attempt");

        Assert.Equal(4, attempts);
        Assert.Equal(["r-a"], await target.RowsAsync("SELECT id FROM applied_log"));
        var reconnects = logs.Entries.Where(e => e.Id.Id == 2007).Select(e => System.Text.RegularExpressions.Regex.Match(e.Text, @"\(attempt (\d+)\)").Groups[1].Value);
        Assert.Equal(["1", "2", "3"], reconnects);
        Assert.False(run.Run.IsCompleted, $"RunAsync ended: {run.Run.Exception?.InnerException}");
        await run.StopAsync();
    }

    /// <summary>
    /// A source transaction arrives in pieces (the network between passes about 1,000 bytes every 20 ms) right behind a small
    /// one whose target transaction is held open for more (<see cref="PostgresApplier.MaxGroupDelay"/>). The stream
    /// runs out of received frames in the middle of the second one, again and again: the open target transaction, which
    /// holds its changes so far, must not commit there. Nothing of it is visible in the target before its last change
    /// was applied, and each of its changes is logged once.
    /// </summary>
    [Fact]
    public async Task GroupHeldOpen_NextTransactionArrivesInPieces_NotCommittedBeforeItsEnd()
    {
        await using var server = await PostgresServer.StartAsync(forceLocal: true); // the proxy needs it on loopback
        await using var source = await TestDatabase.CreateAsync(server);
        await using var target = await TestDatabase.CreateAsync(server, seedSchema: false);
        await target.ExecuteAsync(TargetSchema);
        await using var proxy = TcpProxy.Start("127.0.0.1", server.Port);
        var throughProxy = new NpgsqlConnectionStringBuilder(source.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, SslMode = SslMode.Disable }.ConnectionString;
        const int Rows = 100, Rounds = 3;
        var visibleAtLastChange = new List<long>();
        await using var run = await StreamRun.StartAsync(throughProxy, (client, _) =>
            new PostgresApplier(client, target.ConnectionString, "pieces") { MaxGroupDelay = TimeSpan.FromMinutes(1) }.Map<Restaurant>(async (change, context, ct) =>
            {
                await ApplyRestaurantAsync(change, context, ct);
                if (change.New?.Id.EndsWith($"-{Rows:D3}", StringComparison.Ordinal) == true)
                {
                    // What another session of the target sees of this source transaction before it ends.
                    await using var other = await target.OpenAsync();
                    await using var count = new NpgsqlCommand("SELECT count(*) FROM restaurant_copy WHERE id LIKE $1", other);
                    count.Parameters.Add(new NpgsqlParameter { Value = change.New.Id[..^Rows.ToString("D3").Length] + "%" });
                    visibleAtLastChange.Add((long)(await count.ExecuteScalarAsync(ct))!);
                }
            }));
        for (var attempt = 0; !await source.ScalarAsync<bool>("SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = 'dbsync_test'"); attempt++)
        {
            Assert.True(attempt < 300, "No walsender held the slot.");
            await Task.Delay(50);
        }

        // Each round: the two transactions wait in the proxy, then arrive together, cut into pieces (where the cuts fall
        // differs between rounds and transports: there are several).
        for (var round = 1; round <= Rounds; round++)
        {
            proxy.HoldReplicationFromServer();
            await source.ExecuteAsync($"INSERT INTO Restaurant (id, name) VALUES ('a{round}-1', 'first')");
            await source.ExecuteAsync($"INSERT INTO Restaurant (id, name) SELECT 'c{round}-' || lpad(i::text, 3, '0'), 'second' FROM generate_series(1, {Rows}) i");
            var end = await source.ScalarAsync<NpgsqlLogSequenceNumber>("SELECT pg_current_wal_lsn()");
            for (var attempt = 0; await source.ScalarAsync<NpgsqlLogSequenceNumber>("SELECT coalesce(max(sent_lsn), '0/0') FROM pg_stat_replication") < end; attempt++)
            {
                Assert.True(attempt < 300, "The walsender did not send both transactions.");
                await Task.Delay(50);
            }
            await proxy.ReleaseReplicationFromServerAsync(pieceSize: 700 + 150 * round, pause: TimeSpan.FromMilliseconds(20));
            await run.WaitUntilAsync(r => r.Transactions.Count >= 2 * round, $"both transactions of round {round}");
        }

        Assert.Equal(Enumerable.Repeat(0L, Rounds), visibleAtLastChange);
        Assert.Equal(Rounds * (Rows + 1), await target.ScalarAsync<long>("SELECT count(*) FROM applied_log"));
        Assert.Equal(Rounds * (Rows + 1), await target.ScalarAsync<long>("SELECT count(*) FROM restaurant_copy"));
        await run.StopAsync();
    }

    /// <summary>
    /// The target's server restarts (<c>pg_ctl restart -m fast</c>) twice while the applier holds a target transaction
    /// open: once in the middle of a snapshot chunk's rows, once in the middle of a streamed transaction, with writers on
    /// the source throughout. A lost target connection is not a handler failure under either policy: RunAsync goes on,
    /// each cut-off source transaction comes again from the slot and is applied whole, the chunk is read again, and the
    /// target ends equal to the source. The target logs each change under its WAL position and each snapshot row under
    /// its chunk's commit position, as primary keys, so a change applied twice would fail its statement.
    /// </summary>
    [Theory]
    [InlineData(HandlerFailurePolicy.Stop)]
    [InlineData(HandlerFailurePolicy.Retry)]
    public async Task TargetServerRestartedTwice_InASnapshotChunkAndInATransaction_RunGoesOn_TargetEqualsSource_NothingAppliedTwice(HandlerFailurePolicy policy)
    {
        await using var targetServer = await PostgresServer.StartAsync(forceLocal: true);
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(targetServer, seedSchema: false);
        await target.ExecuteAsync("""
            CREATE TABLE restaurant_copy (id text PRIMARY KEY, name text NOT NULL, rating int);
            CREATE TABLE applied_change (commit_lsn pg_lsn, lsn pg_lsn, id text NOT NULL, kind text NOT NULL, PRIMARY KEY (commit_lsn, lsn));
            CREATE TABLE applied_read (commit_lsn pg_lsn, id text, PRIMARY KEY (commit_lsn, id));
            """);
        await source.ExecuteAsync("INSERT INTO Restaurant (id, name, rating) SELECT 'r-' || lpad(i::text, 5, '0'), 'before', 0 FROM generate_series(1, 2000) i");

        var logs = new LogCapture();
        var chunks = 0;
        var streaming = false;
        var inChunk = new Hold();
        var inTransaction = new Hold();
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
        {
            client.OnSnapshotProgress(p =>
            {
                if (p is SnapshotChunkCompleted)
                    Interlocked.Increment(ref chunks);
            });
            new PostgresApplier(client, target.ConnectionString, "copy").Map<Restaurant>(async (change, context, ct) =>
            {
                await ApplyKeyedAsync(change, context, ct);
                // Where the restarts hit: the target transaction is open, with this change's statements in it.
                if (change.Kind == ChangeKind.Read && Volatile.Read(ref chunks) >= 3)
                    await inChunk.HereAsync(context.Connection.ProcessID);
                else if (change.Kind == ChangeKind.Update && Volatile.Read(ref streaming))
                    await inTransaction.HereAsync(context.Connection.ProcessID);
            });
        }, configure: o =>
        {
            o.HandlerFailure = policy;
            o.HandlerRetryDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectDelay = TimeSpan.FromMilliseconds(200);
            o.MaxReconnectDelay = TimeSpan.FromSeconds(2);
            o.SnapshotChunkSize = 50;
            o.SnapshotChunkDelay = TimeSpan.FromMilliseconds(20);
            o.SnapshotBusyShare = 1;
            o.LoggerFactory = logs;
        });

        using var stopWriters = new CancellationTokenSource();
        var writers = Task.Run(() => WriteRestaurantsAsync(source, stopWriters.Token));
        var snapshot = run.Client.SnapshotAsync<Restaurant>();
        await RestartWhileHeldAsync(targetServer, target, inChunk, run);
        await WithinAsync(snapshot, run, "the snapshot after the target's restart");
        Volatile.Write(ref streaming, true);
        await RestartWhileHeldAsync(targetServer, target, inTransaction, run);
        await stopWriters.CancelAsync();
        var changes = await writers;
        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('z-last', 'last')");
        for (var attempt = 0; await target.ScalarAsync<long>("SELECT count(*) FROM restaurant_copy WHERE id = 'z-last'") == 0; attempt++)
        {
            Assert.False(run.Run.IsCompleted, $"RunAsync ended: {run.Run.Exception?.InnerException}");
            Assert.True(attempt < 3000, "The last row did not reach the target within 60 s.");
            await Task.Delay(20);
        }

        Assert.False(run.Run.IsCompleted, $"RunAsync ended: {run.Run.Exception?.InnerException}");
        foreach (var (id, text) in logs.Entries.Where(e => e.Id.Id is 2007 or 2008 or 2009))
            output.WriteLine($"{id.Id}: {text.Split('\n')[0]} | {text.Split('\n').ElementAtOrDefault(1)}");
        var losses = logs.Entries.Count(e => e.Id.Id == 2007 && e.Text.Contains("Applier \"copy\" lost its connection to the target", StringComparison.Ordinal));
        Assert.True(losses >= 2, $"The applier reported {losses} lost target connection(s), not the two restarts.");
        Assert.False(logs.Has(2009), "A lost target connection was retried as a handler failure.");
        Assert.Equal(changes + 1, await target.ScalarAsync<long>("SELECT count(*) FROM applied_change"));
        Assert.Equal(await source.RowsAsync("SELECT id || '|' || name || '|' || coalesce(rating::text, '-') FROM Restaurant ORDER BY id"),
                     await target.RowsAsync("SELECT id || '|' || name || '|' || coalesce(rating::text, '-') FROM restaurant_copy ORDER BY id"));
        await run.StopAsync();
    }

    /// <summary>Upserts or deletes the row; logs a change under its WAL position, a snapshot row under its chunk's commit.</summary>
    private static async ValueTask ApplyKeyedAsync(Change<Restaurant> change, ApplyContext target, CancellationToken cancellationToken)
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
        await using var log = change.Kind == ChangeKind.Read
            ? target.CreateCommand("INSERT INTO applied_read VALUES ($1, $2)")
            : target.CreateCommand("INSERT INTO applied_change VALUES ($1, $2, $3, $4)");
        log.Parameters.Add(new NpgsqlParameter { Value = change.CommitLsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
        if (change.Kind != ChangeKind.Read)
            log.Parameters.Add(new NpgsqlParameter { Value = change.Lsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
        log.Parameters.Add(new NpgsqlParameter { Value = row.Id });
        if (change.Kind != ChangeKind.Read)
            log.Parameters.Add(new NpgsqlParameter { Value = change.Kind.ToString() });
        await log.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Small source transactions until stopped (an insert, an update and a delete each); returns the rows they changed.</summary>
    private static async Task<long> WriteRestaurantsAsync(TestDatabase source, CancellationToken stop)
    {
        long changes = 0;
        await using var connection = await source.OpenAsync();
        for (var n = 1; !stop.IsCancellationRequested; n++)
        {
            await using (var transaction = await connection.BeginTransactionAsync(CancellationToken.None))
            {
                changes += await ExecuteAsync(connection, "INSERT INTO Restaurant (id, name) VALUES ($1, 'new')", $"w-{n:D6}");
                changes += await ExecuteAsync(connection, "UPDATE Restaurant SET rating = rating + 1, name = 'updated' WHERE id = $1", $"r-{Random.Shared.Next(1, 2001):D5}");
                changes += await ExecuteAsync(connection, "DELETE FROM Restaurant WHERE id = $1", $"w-{n - 3:D6}");
                await transaction.CommitAsync(CancellationToken.None);
            }
            try
            {
                await Task.Delay(10, stop);
            }
            catch (OperationCanceledException)
            {
            }
        }
        return changes;
    }

    private static async Task<int> ExecuteAsync(NpgsqlConnection connection, string sql, string id)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        return await command.ExecuteNonQueryAsync();
    }

    /// <summary>Once the applier is held with its target transaction open, restarts the target's server (fast shutdown);
    /// the applier goes on once its backend is gone, so its next statement meets the lost connection.</summary>
    private static async Task RestartWhileHeldAsync(PostgresServer server, TestDatabase target, Hold hold, StreamRun run)
    {
        var backend = await WithinAsync(hold.Reached, run, "the applier to reach the point where the target restarts");
        var restart = server.RestartAsync();
        for (var attempt = 0; Directory.Exists($"/proc/{backend}"); attempt++)
        {
            Assert.True(attempt < 3000, $"The applier's backend {backend} outlived the fast shutdown by 60 s.");
            await Task.Delay(20);
        }
        hold.Release();
        await restart;
        // This test's own pooled connections to the target died with it.
        foreach (var connectionString in new[] { target.ConnectionString, server.ConnectionString })
        {
            await using var pooled = new NpgsqlConnection(connectionString);
            NpgsqlConnection.ClearPool(pooled);
        }
    }

    private static async Task<T> WithinAsync<T>(Task<T> task, StreamRun run, string what)
    {
        await WithinAsync((Task)task, run, what);
        return await task;
    }

    private static async Task WithinAsync(Task task, StreamRun run, string what)
    {
        var finished = await Task.WhenAny(task, run.Run, Task.Delay(TimeSpan.FromSeconds(120)));
        if (finished == run.Run)
            await run.Run; // its error says more
        Assert.True(finished == task, $"Timed out waiting for {what}.");
        await task;
    }

    /// <summary>Stops the first caller until released (the caller gives the target backend's process id).</summary>
    private sealed class Hold
    {
        private readonly TaskCompletionSource<int> _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _used;

        public Task<int> Reached => _reached.Task;

        public async Task HereAsync(int backend)
        {
            if (Interlocked.Exchange(ref _used, 1) != 0)
                return;
            _reached.SetResult(backend);
            await _released.Task;
        }

        public void Release() => _released.TrySetResult();
    }

    private static async Task<NpgsqlTypes.NpgsqlLogSequenceNumber> LastAppliedAsync(TestDatabase target)
        => NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(await target.ScalarAsync<string>("SELECT commit_lsn::text FROM dbsync_applied WHERE name = 'restaurants'"));
}
