using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

namespace DBSync.IntegrationTests;

/// <summary>Snapshot control: restarts, the initial snapshot, pause/resume, cancel, filters, surrogate keys, several tables
/// per request, missing tables, the signal table, schema changes inside a chunk, and the order of notifications.</summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Snapshots")]
public sealed class SnapshotControlTests(PostgresFixture fixture)
{
    internal const string HundredRestaurants =
        "INSERT INTO restaurant (id, name, rating) SELECT 'r-' || lpad(g::text, 3, '0'), 'R' || g, g % 5 FROM generate_series(1, 100) g";

    /// <summary>Registers the recording handlers and a replica that applies every change.</summary>
    private static Action<DBSyncClient, ChangeRecorder> RecordInto(Replica replica) => (client, recorder) =>
    {
        replica.Register(client);
        StreamRun.RegisterSeedTables(client, recorder);
    };

    private static List<string> ReadIds(ChangeRecorder recorder)
        => recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id).ToList();

    [Fact]
    public async Task RestartInTheMiddleOfAChunk_ContinuesFromTheLastCompletedChunk_ReadingOnlyThatChunkAgain()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);

        // One chunk at a time, in key order (ParallelReads_RestartInTheMiddle_... is the same with parallel reads).
        // First run: the handler stalls on r-045, the fifth row of chunk 5 (chunks of 10), and the run is stopped there.
        var stalled = new TaskCompletionSource();
        var first = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<Restaurant>(async (c, ct) =>
        {
            recorder.Add(c);
            if (c.Kind == ChangeKind.Read && c.New!.Id == "r-045")
            {
                stalled.TrySetResult();
                await Task.Delay(Timeout.Infinite, ct);
            }
        }), configure: Sequential(10));
        _ = first.Client.SnapshotAsync<Restaurant>();
        await stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await first.StopAsync();
        var firstReads = ReadIds(first.Recorder);
        Assert.Equal(45, firstReads.Count);
        Assert.Equal(4, first.Recorder.Progress.OfType<SnapshotChunkCompleted>().Count());

        // Second run, same slot: the snapshot continues by itself after chunk 4 (r-040), so r-041..r-045 are read again.
        await using var second = await StreamRun.StartAsync(db.ConnectionString, configure: Sequential(10));
        await second.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Any(), "the resumed snapshot to complete");
        var started = Assert.Single(second.Recorder.Progress.OfType<SnapshotTableStarted>());
        Assert.True(started.Resumed);
        Assert.Equal(["r-040"], started.LastKey!);
        var secondReads = ReadIds(second.Recorder);
        Assert.Equal(60, secondReads.Count);
        Assert.Equal(Enumerable.Range(41, 60).Select(i => $"r-{i:000}"), secondReads);
        var readAgain = firstReads.Intersect(secondReads).Count();
        Assert.Equal(5, readAgain);
        Assert.Equal(100, firstReads.Union(secondReads).Count());
        var completed = Assert.Single(second.Recorder.Progress.OfType<SnapshotTableCompleted>());
        Assert.Equal(10, completed.Chunks); // numbering continues across the restart
    }

    [Fact]
    public async Task StoppedAfterTheStartWasSavedBeforeItWasReported_TheNextRunReportsAStartFromTheBeginning()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);

        // First run: the table's start is saved in the checkpoint, then its report waits in a handler, and the run stops
        // there, before any chunk is read (as a kill between the save and the report would leave it).
        var reporting = new TaskCompletionSource();
        var first = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(async (p, ct) =>
            {
                if (p is SnapshotTableStarted)
                {
                    reporting.TrySetResult();
                    await Task.Delay(Timeout.Infinite, ct);
                }
            });
        }, configure: Sequential(10));
        _ = first.Client.SnapshotAsync<Restaurant>();
        await reporting.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await first.StopAsync();
        Assert.Empty(first.Recorder.Progress.OfType<SnapshotChunkCompleted>());
        Assert.Empty(ReadIds(first.Recorder));

        // Second run, same slot: nothing of the table was delivered, so its snapshot is reported as a start from its
        // first key (a handler that resets its state on a fresh start must see one), and it reads every row.
        await using var second = await StreamRun.StartAsync(db.ConnectionString, configure: Sequential(10));
        await second.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Any(), "the snapshot to complete");
        var started = Assert.Single(second.Recorder.Progress.OfType<SnapshotTableStarted>());
        Assert.False(started.Resumed, "The table was reported resumed though none of its chunks had been delivered.");
        Assert.Null(started.LastKey);
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"r-{i:000}"), ReadIds(second.Recorder));
        Assert.Equal(10, Assert.Single(second.Recorder.Progress.OfType<SnapshotTableCompleted>()).Chunks);
    }

    [Fact]
    public async Task ParallelReads_RestartInTheMiddle_EachSegmentContinuesFromItsLastChunk_ReadingAgainOnlyChunksInFlight()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || lpad(g::text, 4, '0'), 'n' FROM generate_series(1, 1000) g");
        const int chunkSize = 20;
        void Parallel(DBSyncOptions o) => (o.SnapshotChunkSize, o.SnapshotParallelism) = (chunkSize, 3);

        // First run: the handler stalls on the 400th row read (in some segment), and the run is stopped there.
        var stalled = new TaskCompletionSource();
        var seen = 0;
        var first = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<Restaurant>(async (c, ct) =>
        {
            recorder.Add(c);
            if (c.Kind == ChangeKind.Read && Interlocked.Increment(ref seen) == 400)
            {
                stalled.TrySetResult();
                await Task.Delay(Timeout.Infinite, ct);
            }
        }), configure: Parallel);
        _ = first.Client.SnapshotAsync<Restaurant>();
        await stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await first.StopAsync();
        var firstReads = ReadIds(first.Recorder);
        var firstChunks = first.Recorder.Progress.OfType<SnapshotChunkCompleted>().ToList();
        Assert.Equal(400, firstReads.Count);
        // (Whether the rows delivered by then are a prefix of the keys depends on how the readers' chunks happened to
        // reach the stream, so it is not asserted; the split itself is unit-tested in SegmentSplitTests and
        // SnapshotCoordinatorTests.)

        // Second run, same slot: every segment continues after its last delivered chunk.
        await using var second = await StreamRun.StartAsync(db.ConnectionString, configure: Parallel);
        await second.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Any(), "the resumed snapshot to complete");
        Assert.True(Assert.Single(second.Recorder.Progress.OfType<SnapshotTableStarted>()).Resumed);
        var secondReads = ReadIds(second.Recorder);
        Assert.Equal(secondReads.Count, secondReads.Distinct().Count());
        Assert.Equal(1000, firstReads.Union(secondReads).Count());
        // Read again: only rows of the chunks that were delivered but not yet recorded when the run stopped (at most one
        // per reader, the stalled one among them).
        var readAgain = firstReads.Intersect(secondReads).Count();
        Assert.InRange(readAgain, 1, 3 * chunkSize);
        // Chunk numbers continue across the restart from the last chunk saved. A chunk delivered as the stream stopped is
        // reported, but its checkpoint is not saved once the stream is gone (only a running stream's saves are fenced):
        // at most one per reader, the chunks read again above.
        var secondChunks = second.Recorder.Progress.OfType<SnapshotChunkCompleted>().ToList();
        Assert.InRange(secondChunks[0].Chunk, firstChunks.Count - 2, firstChunks.Count + 1);
        Assert.Equal(secondChunks[^1].Chunk, Assert.Single(second.Recorder.Progress.OfType<SnapshotTableCompleted>()).Chunks);
    }

    /// <summary>Chunks of <paramref name="chunkSize"/> read one at a time, in key order: for tests of that order.</summary>
    private static Action<DBSyncOptions> Sequential(int chunkSize) => o => (o.SnapshotChunkSize, o.SnapshotParallelism) = (chunkSize, 1);

    [Fact]
    public async Task InitialSnapshot_OnANewSlot_DeliversEveryTableOnce_WithNotificationsInOrder()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("""
            INSERT INTO users (first_name, user_name, email) SELECT 'u', 'u' || g, 'u' || g || '@x' FROM generate_series(1, 25) g;
            INSERT INTO restaurant (id, name) SELECT 'r' || g, 'n' FROM generate_series(1, 7) g;
            """);
        var replica = new Replica();
        await using (var run = await StreamRun.StartAsync(db.ConnectionString, RecordInto(replica), configure: o =>
        {
            o.InitialSnapshot = true;
            o.SnapshotChunkSize = 10;
            o.SnapshotParallelism = 1; // chunk numbers and sizes in key order
        }))
        {
            await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the initial snapshot");
            await replica.AssertEqualsSourceAsync(db.ConnectionString);

            var order = run.Recorder.Progress.Select(p => p switch
            {
                SnapshotTableStarted s => $"start {s.Table}",
                SnapshotChunkCompleted c => $"chunk {c.Table} {c.Chunk} {c.RowsRead}",
                SnapshotTableCompleted t => $"done {t.Table} {t.RowsEmitted}",
                SnapshotsCompleted => "all done",
                _ => p.ToString(),
            });
            Assert.Equal(
            [
                "start public.users", "chunk public.users 1 10", "chunk public.users 2 10", "chunk public.users 3 5", "done public.users 25",
                "start public.restaurant", "chunk public.restaurant 1 7", "done public.restaurant 7",
                "start public.visit", "done public.visit 0",
                "all done",
            ], order);

            // Each chunk's notification comes after its rows.
            var all = run.Recorder.All;
            var secondChunk = all.ToList().FindIndex(e => e is SnapshotChunkCompleted { Table: "public.users", Chunk: 2 });
            Assert.Equal(20, all.Take(secondChunk).OfType<Change<User>>().Count(c => c.Kind == ChangeKind.Read));
            await run.StopAsync();
        }

        // The slot exists now: a restart does not snapshot again.
        await using var again = await StreamRun.StartAsync(db.ConnectionString, configure: o => o.InitialSnapshot = true);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('later', 'n')");
        await again.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.Kind == ChangeKind.Insert), "the insert");
        Assert.Empty(again.Recorder.Progress);
        Assert.DoesNotContain(again.Recorder.Of<Restaurant>(), c => c.Kind == ChangeKind.Read);
    }

    [Fact]
    public async Task PauseAndResume_StopBetweenChunks_StreamGoesOn_ThenTheSnapshotFinishes()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        var replica = new Replica();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, RecordInto(replica), configure: o =>
        {
            o.SnapshotChunkSize = 10;
            o.SnapshotChunkDelay = TimeSpan.FromMilliseconds(50);
        });

        var snapshot = run.Client.SnapshotAsync<Restaurant>();
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotChunkCompleted>().Count() >= 2, "two chunks");
        run.Client.PauseSnapshots();
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsPaused>().Any(), "the pause");
        var chunksWhenPaused = run.Recorder.Progress.OfType<SnapshotChunkCompleted>().Count();
        await db.ExecuteAsync("UPDATE restaurant SET rating = 42 WHERE id = 'r-090'");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.Kind == ChangeKind.Update), "the update while paused");
        await Task.Delay(500);
        Assert.Equal(chunksWhenPaused, run.Recorder.Progress.OfType<SnapshotChunkCompleted>().Count());
        Assert.False(snapshot.IsCompleted);

        run.Client.ResumeSnapshots();
        await snapshot.WaitAsync(TimeSpan.FromSeconds(60));
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the end of the queue");
        var kinds = run.Recorder.Progress.Select(p => p.GetType().Name).Distinct().ToList();
        Assert.Equal(["SnapshotTableStarted", "SnapshotChunkCompleted", "SnapshotsPaused", "SnapshotsResumed", "SnapshotTableCompleted", "SnapshotsCompleted"], kinds);
        Assert.Equal(100, ReadIds(run.Recorder).Distinct().Count());
        await SnapshotTests.WaitForStreamToCatchUpAsync(db, replica, run);
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
    }

    [Fact]
    public async Task CancelOneTableOfARequest_OthersFinish_AndTheRequestIsCancelled()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await db.ExecuteAsync("INSERT INTO users (first_name, user_name, email) SELECT 'u', 'u' || g, 'u' || g || '@x' FROM generate_series(1, 30) g");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o =>
        {
            o.SnapshotChunkSize = 10;
            o.SnapshotChunkDelay = TimeSpan.FromMilliseconds(50);
        });

        var request = run.Client.SnapshotAsync([new SnapshotTable("restaurant"), SnapshotTable.Of<User>()]);
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotChunkCompleted>().Any(), "a chunk of restaurant");
        run.Client.CancelSnapshots("public.restaurant");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request.WaitAsync(TimeSpan.FromSeconds(60)));
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the queue to drain");

        Assert.Contains(run.Recorder.Progress, p => p is SnapshotTableCancelled { Table: "public.restaurant" });
        Assert.Contains(run.Recorder.Progress, p => p is SnapshotTableCompleted { Table: "public.users", RowsEmitted: 30 });
        Assert.InRange(ReadIds(run.Recorder).Count, 10, 90);
    }

    [Fact]
    public async Task CancelWhileTheStreamLags_TheNextTableIgnoresTheWatermarksOfTheCancelledOne()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await db.ExecuteAsync("INSERT INTO users (first_name, user_name, email) SELECT 'u', 'u' || g, 'u' || g || '@x' FROM generate_series(1, 30) g; ANALYZE users");
        using var gate = new SemaphoreSlim(0);
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var users = 0;
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            client.On<Restaurant>(async (change, cancellationToken) =>
            {
                if (change.Kind == ChangeKind.Read && held.TrySetResult())
                    await gate.WaitAsync(cancellationToken);
            });
            client.On<User>(change =>
            {
                if (change.Kind == ChangeKind.Read)
                    Interlocked.Increment(ref users);
            });
        }, configure: o => o.SnapshotChunkSize = 10);

        var request = run.Client.SnapshotAsync([new SnapshotTable("restaurant"), SnapshotTable.Of<User>()]);
        // The stream stops inside the first chunk's delivery; the coordinator has read the second chunk ahead, and that
        // chunk's low watermark waits in the stream behind the first one's high watermark.
        await held.Task.WaitAsync(TimeSpan.FromSeconds(60));
        run.Client.CancelSnapshots("public.restaurant");
        // The users snapshot begins while the stream still holds restaurant's watermarks; then the stream goes on, and
        // the stale low watermark reaches it while users is the table being snapshotted.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (run.Client.Snapshots.RunningProgress?.Table != "public.users")
        {
            Assert.True(DateTime.UtcNow < deadline, "The users snapshot did not begin.");
            await Task.Delay(10);
        }
        gate.Release();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request.WaitAsync(TimeSpan.FromSeconds(60)));
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the queue to drain");
        Assert.Contains(run.Recorder.Progress, p => p is SnapshotTableCompleted { Table: "public.users", RowsEmitted: 30 });
        Assert.Equal(30, Volatile.Read(ref users));
        Assert.False(run.Run.IsCompleted, "The stream stopped.");
    }

    [Fact]
    public async Task Filter_WithParameters_DeliversOnlyMatchingRows_AndABadFilterFailsClearly()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o => o.SnapshotChunkSize = 4);

        await run.Client.SnapshotAsync([new SnapshotTable("restaurant") { Filter = "rating = $1 AND name LIKE $2", FilterParameters = ["3", "R__%"] }])
            .WaitAsync(TimeSpan.FromSeconds(60));
        var expected = Enumerable.Range(1, 100).Where(g => g % 5 == 3 && g >= 10).Select(g => $"r-{g:000}").ToList();
        Assert.Equal(expected, ReadIds(run.Recorder).Order(StringComparer.Ordinal)); // chunks of segments read in parallel come in any order

        // A value that would break out of a spliced literal is just a value.
        await run.Client.SnapshotAsync([new SnapshotTable("restaurant") { Filter = "name = $1", FilterParameters = ["x'; DROP TABLE restaurant; --"] }])
            .WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(100, await db.ScalarAsync<long>("SELECT count(*) FROM restaurant"));

        var bad = run.Client.SnapshotAsync([new SnapshotTable("restaurant") { Filter = "no_such_column = $1", FilterParameters = ["1"] }]);
        var error = await Assert.ThrowsAsync<DBSyncException>(() => bad.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Snapshot filter of public.restaurant is not valid", error.Message, StringComparison.Ordinal);
        Assert.Contains("no_such_column", error.Message, StringComparison.Ordinal);
        Assert.Contains(run.Recorder.Progress, p => p is SnapshotTableFailed { Table: "public.restaurant" });

        // A filter cannot write: the chunk query runs read-only.
        var writing = run.Client.SnapshotAsync([new SnapshotTable("restaurant") { Filter = "(SELECT count(*) FROM (DELETE FROM visit RETURNING 1) d) >= 0" }]);
        await Assert.ThrowsAsync<DBSyncException>(() => writing.WaitAsync(TimeSpan.FromSeconds(60)));
        // Nor through a function that writes: every query with the filter (the maximum key's too) runs read-only.
        await db.ExecuteAsync("""
            CREATE TABLE filter_writes (at timestamptz);
            CREATE FUNCTION note_filter() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN INSERT INTO filter_writes VALUES (now()); RETURN true; END $$;
            """);
        var sneaky = run.Client.SnapshotAsync([new SnapshotTable("restaurant") { Filter = "note_filter()" }]);
        var refused = await Assert.ThrowsAsync<DBSyncException>(() => sneaky.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("tried to write", refused.Message, StringComparison.Ordinal);
        Assert.Contains("read-only transaction", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await db.ScalarAsync<long>("SELECT count(*) FROM filter_writes"));
    }

    [Fact]
    public async Task SurrogateChunkKey_PagesByThatColumn_AndAKeyThatCanRepeatIsRefused()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        // Emails sort in another order than ids, so paging by email is visible in the chunks' last keys.
        await db.ExecuteAsync("INSERT INTO users (first_name, user_name, email) SELECT 'u', 'u' || g, 'm' || (1000 - g) || '@x' FROM generate_series(1, 23) g");
        // One reader: the test matches each chunk's completion notice to the rows before it, and with several readers a
        // notice may come after rows of another reader's chunk (notices are sent beside the stream, not in it).
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o =>
        {
            o.SnapshotChunkSize = 5;
            o.SnapshotParallelism = 1;
        });

        await run.Client.SnapshotAsync([new SnapshotTable("users") { ChunkKey = "email" }]).WaitAsync(TimeSpan.FromSeconds(60));
        var reads = run.Recorder.Of<User>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Email).ToList();
        Assert.Equal(23, reads.Distinct().Count());
        // Chunks page by email: each chunk's last key is an email, the highest one ends the last chunk of the range, and
        // rows come in email order up to each chunk's last key.
        var lastKeys = run.Recorder.Progress.OfType<SnapshotChunkCompleted>().Select(c => c.LastKey![0]).ToList();
        Assert.All(lastKeys, k => Assert.Matches("^m9[0-9]{2}@x$", k));
        Assert.Equal("m999@x", lastKeys.Max(StringComparer.Ordinal));
        var position = 0;
        foreach (var chunk in run.Recorder.Progress.OfType<SnapshotChunkCompleted>())
        {
            var rows = reads.Skip(position).Take(chunk.RowsEmitted).ToList();
            Assert.Equal(rows.Order(StringComparer.Ordinal), rows);
            Assert.Equal(chunk.LastKey![0], rows[^1]);
            position += chunk.RowsEmitted;
        }

        var bad = run.Client.SnapshotAsync([new SnapshotTable("users") { ChunkKey = "address" }]);
        var error = await Assert.ThrowsAsync<DBSyncException>(() => bad.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("chunk key \"address\" of public.users lacks NOT NULL and a unique index", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TableListedTwice_IsSnapshottedOnce_AMissingTableIsReportedAsMissing_AndAnUnmappedOneAsUnmapped()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await db.ExecuteAsync("CREATE TABLE not_mapped (id int PRIMARY KEY)");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o => o.SnapshotChunkSize = 30);

        await run.Client.SnapshotAsync([new SnapshotTable("restaurant"), new SnapshotTable("no_such_table"), new SnapshotTable("not_mapped"), new SnapshotTable("public.restaurant")])
            .WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(100, ReadIds(run.Recorder).Count);
        Assert.Equal(100, ReadIds(run.Recorder).Distinct().Count());
        var skipped = run.Recorder.Progress.OfType<SnapshotTableSkipped>().ToList();
        Assert.Equal(3, skipped.Count);
        Assert.Contains(skipped, s => s.Table == "public.restaurant" && s.Reason.Contains("more than once", StringComparison.Ordinal));
        Assert.Contains(skipped, s => s.Table == "public.no_such_table" && s.Reason.Contains($"does not exist in database \"{db.Name}\"", StringComparison.Ordinal));
        Assert.Contains(skipped, s => s.Table == "public.not_mapped" && s.Reason.Contains("no type mapping it is registered", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SignalTable_RowsInsertedWithSql_StartPauseAndResumeSnapshots()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o =>
        {
            o.SignalTable = "dbsync_signal";
            o.SnapshotChunkSize = 10;
        });

        await db.ExecuteAsync("INSERT INTO dbsync_signal (kind) VALUES ('pause')");
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsPaused>().Any(), "the pause signal");
        await db.ExecuteAsync("INSERT INTO dbsync_signal (kind, tables, filter, filter_parameters) VALUES ('snapshot', ARRAY['restaurant'], 'rating = $1', ARRAY['0'])");
        await Task.Delay(500);
        Assert.Empty(ReadIds(run.Recorder));

        await db.ExecuteAsync("INSERT INTO dbsync_signal (kind) VALUES ('resume')");
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Any(), "the signalled snapshot");
        Assert.Equal(Enumerable.Range(1, 100).Where(g => g % 5 == 0).Select(g => $"r-{g:000}"), ReadIds(run.Recorder).Order(StringComparer.Ordinal));
        // Signal rows are control, not data: they never reach change handlers or count as changes.
        Assert.All(run.Recorder.Transactions, t => Assert.Equal(0, t.ChangeCount));
    }

    [Fact]
    public async Task SchemaChangeBetweenTheWatermarks_TheChunkIsReadAgainWithTheNewShape()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        var replica = new Replica();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            replica.Register(client);
            StreamRun.RegisterSeedTables(client, recorder);
            var reads = 0;
            AfterChunkReadSql.Install(client, async (_, _, _) =>
            {
                if (Interlocked.Increment(ref reads) == 2)
                {
                    // The table changes shape after the chunk was read; a change of it reaches the stream before H.
                    await db.ExecuteAsync("ALTER TABLE restaurant ALTER COLUMN name TYPE text");
                    await db.ExecuteAsync("UPDATE restaurant SET name = 'renamed' WHERE id = 'r-015'");
                }
            });
        }, configure: o => o.SnapshotChunkSize = 10);

        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));
        var chunks = run.Recorder.Progress.OfType<SnapshotChunkCompleted>().ToList();
        // The second chunk read (and, with parallel reads, any other whose window was open) was read again.
        Assert.Contains(chunks, c => c.Attempts == 2);
        Assert.All(chunks, c => Assert.InRange(c.Attempts, 1, 2));
        Assert.Equal(100, chunks.Sum(c => c.RowsRead));
        await SnapshotTests.WaitForStreamToCatchUpAsync(db, replica, run);
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
    }

    [Fact]
    public async Task MoreChangesInAWindowThanItKeeps_TheChunkIsReadAgain_AndTheReplicaConverges()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        var replica = new Replica();
        var logs = new LogCapture();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            replica.Register(client);
            StreamRun.RegisterSeedTables(client, recorder);
            var updated = 0;
            AfterChunkReadSql.Install(client, async (_, _, _) =>
            {
                if (Interlocked.Increment(ref updated) == 2)
                {
                    // One transaction, after the second chunk read: 60 changes fill the window of 50, and those past the
                    // first 50 cannot be recorded.
                    await db.ExecuteAsync("BEGIN; UPDATE restaurant SET rating = 9 WHERE id > 'r-040'; UPDATE restaurant SET rating = 8 WHERE id <= 'r-040'; COMMIT;");
                }
            });
        }, configure: o =>
        {
            o.SnapshotChunkSize = 10;
            o.SnapshotWindowMaxChanges = 50;
            o.LoggerFactory = logs;
        });
        // The stream knows the table's shape before the snapshot (a first Relation message inside a window would make
        // the chunk be read again for that reason alone).
        await db.ExecuteAsync("UPDATE restaurant SET rating = 1 WHERE id = 'r-100'");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 1, "the change before the snapshot");

        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Contains(run.Recorder.Progress.OfType<SnapshotChunkCompleted>(), c => c.Attempts == 2);
        Assert.True(logs.Has(3010), "The re-read after the window filled up was not logged (event 3010).");
        await run.WaitUntilAsync(_ => replica.Read(r => r.Restaurants.Values.All(x => x.Rating is 8 or 9)), "the update in the replica");
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
    }
}
