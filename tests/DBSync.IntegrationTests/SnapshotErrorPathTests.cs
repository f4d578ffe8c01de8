using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

namespace DBSync.IntegrationTests;

/// <summary>
/// What happens to a snapshot when something other than its rows goes wrong: the client stops in the middle of it, a
/// progress handler throws, a checkpoint save fails or loses its connection. Every request ends (never hangs), every
/// table is recorded once, and the stream and the snapshot loop go on.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Snapshots")]
public sealed class SnapshotErrorPathTests(PostgresFixture fixture)
{
    private const string HundredRestaurants = SnapshotControlTests.HundredRestaurants;

    // The default checkpoint table, created before DBSync does so that a trigger can break its saves. Every save is one
    // INSERT ... ON CONFLICT DO UPDATE, which fires the BEFORE INSERT trigger once. The trigger counts save attempts in a sequence (not undone by a rollback) while armed, and breaks the save the armed mode names:
    // 'raise' fails every one with an error, 'kill-second' terminates the saving connection at the second attempt and
    // at the third (the store's own attempt on a new connection).
    private const string BreakableCheckpointTable = """
        CREATE TABLE dbsync_checkpoint (slot_name text PRIMARY KEY, checkpoint bytea NOT NULL, saved_at timestamptz NOT NULL);
        CREATE TABLE save_breaker (mode text);
        INSERT INTO save_breaker VALUES (NULL);
        CREATE SEQUENCE save_attempts;
        CREATE FUNCTION break_save() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            mode text := (SELECT s.mode FROM save_breaker s);
        BEGIN
            IF mode IS NOT NULL THEN
                IF nextval('save_attempts') IN (2, 3) AND mode = 'kill-second' THEN
                    PERFORM pg_terminate_backend(pg_backend_pid());
                ELSIF mode = 'raise' THEN
                    RAISE EXCEPTION 'checkpoint saves are broken on purpose';
                END IF;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER break_save BEFORE INSERT ON dbsync_checkpoint FOR EACH ROW EXECUTE FUNCTION break_save();
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientStoppedInTheMiddleOfASnapshot_ItsTaskEndsWithRunAsync_AndTheNextRunContinues(bool graceful)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        var stalled = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        var first = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<Restaurant>(async (c, ct) =>
        {
            recorder.Add(c);
            if (c.Kind == ChangeKind.Read && c.New!.Id == "r-045")
            {
                stalled.TrySetResult();
                await release.Task.WaitAsync(ct);
            }
        }), configure: o => o.SnapshotChunkSize = 10);
        var snapshot = first.Client.SnapshotAsync<Restaurant>();
        await stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));

        if (graceful)
        {
            var stopping = first.Client.StopAsync(); // finishes the chunk being delivered, then stops
            release.SetResult();
            await stopping.WaitAsync(TimeSpan.FromSeconds(30));
        }
        else
        {
            await first.StopAsync(); // cancels RunAsync's token: the handler gives up
        }
        // StopAsync returns once the run has ended; RunAsync's task completes just after, on another thread.
        await first.Run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(first.Run.IsCompletedSuccessfully, "RunAsync did not return normally");

        // The task ended with RunAsync, saying where the snapshot goes on.
        var suspended = await Assert.ThrowsAsync<SnapshotSuspendedException>(() => snapshot.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal("public.restaurant", suspended.Table);
        Assert.Contains("continues from its last saved chunk when RunAsync runs again", suspended.Message, StringComparison.Ordinal);
        Assert.Contains("\"dbsync_test\"", suspended.Message, StringComparison.Ordinal);

        await using var second = await StreamRun.StartAsync(db.ConnectionString, configure: o => o.SnapshotChunkSize = 10);
        await second.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Any(), "the snapshot to continue and complete");
        Assert.True(Assert.Single(second.Recorder.Progress.OfType<SnapshotTableStarted>()).Resumed);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // an I/O error of the handler's own is not a lost connection: the table fails, it is not retried
    public async Task ProgressHandlerThrowsOnAChunk_FailsThatTableOnce_WhileTheStreamAndOtherSnapshotsGoOn(bool ioError)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await db.ExecuteAsync("INSERT INTO users (first_name, user_name, email) SELECT 'u', 'u' || g, 'u' || g || '@x' FROM generate_series(1, 15) g");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(p =>
            {
                if (p is SnapshotChunkCompleted { Table: "public.restaurant", Chunk: 2 })
                    throw ioError ? new IOException("progress handler broke on chunk 2") : new InvalidOperationException("progress handler broke on chunk 2");
            });
        }, configure: o => o.SnapshotChunkSize = 10);

        var failed = run.Client.SnapshotAsync<Restaurant>();
        var error = await Assert.ThrowsAnyAsync<Exception>(() => failed.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(ioError ? typeof(IOException) : typeof(InvalidOperationException), error.GetType());
        Assert.Equal("progress handler broke on chunk 2", error.Message);
        Assert.Contains(run.Recorder.Progress, p => p is SnapshotTableFailed { Table: "public.restaurant" });

        await run.Client.SnapshotAsync<User>().WaitAsync(TimeSpan.FromSeconds(60));
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c is { Kind: ChangeKind.Insert, New.Id: "after" }), "the insert after the failure");

        var finished = await FinishedAsync(db, "public.restaurant");
        Assert.Equal([(SnapshotOutcome.Failed, "progress handler broke on chunk 2")], finished.Select(f => (f.Outcome, f.Detail)));
        await run.StopAsync(); // a clean stop, whatever the snapshot loop met before
    }

    [Fact]
    public async Task ClientStoppedWhileAProgressHandlerWaitsOnACancelledTable_ItsTaskStillEnds()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var notifying = new TaskCompletionSource();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            // The handler of the cancellation's notification waits on its token (a full channel, say).
            client.OnSnapshotProgress(async (p, ct) =>
            {
                if (p is SnapshotTableCancelled)
                {
                    notifying.TrySetResult();
                    await Task.Delay(Timeout.Infinite, ct);
                }
            });
        });

        run.Client.PauseSnapshots();
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsPaused>().Any(), "the pause");
        var queued = run.Client.SnapshotAsync<Restaurant>();
        run.Client.CancelSnapshots("restaurant");
        await notifying.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await run.StopAsync(); // the handler's token is cancelled while it reports the cancellation

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(queued.IsCanceled, "the cancelled snapshot's task did not end as cancelled");
    }

    [Fact]
    public async Task ProgressHandlerThrowsOnTableCompleted_TheTableIsRecordedOnceAsFailed()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(p =>
            {
                if (p is SnapshotTableCompleted)
                    throw new InvalidOperationException("progress handler broke on completion");
            });
        }, configure: o => o.SnapshotChunkSize = 30);

        var snapshot = run.Client.SnapshotAsync<Restaurant>();
        await Assert.ThrowsAsync<InvalidOperationException>(() => snapshot.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Single(run.Recorder.Progress.OfType<SnapshotTableFailed>());
        var finished = await FinishedAsync(db, "public.restaurant");
        Assert.Equal([SnapshotOutcome.Failed], finished.Select(f => f.Outcome));
        await run.StopAsync();
    }

    [Fact]
    public async Task ProgressHandlerThrowsOnANotificationOfNoTable_TheSnapshotLoopGoesOn_AndTheStopIsClean()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        var logs = new LogCapture();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(p =>
            {
                if (p is SnapshotsCompleted or SnapshotsPaused or SnapshotsResumed)
                    throw new InvalidOperationException($"progress handler broke on {p.GetType().Name}");
            });
        }, configure: o =>
        {
            o.SnapshotChunkSize = 30;
            o.LoggerFactory = logs;
        });

        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the end of the queue");
        run.Client.PauseSnapshots();
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsPaused>().Any(), "the pause");
        run.Client.ResumeSnapshots();
        // The loop survived all three: a new request is served.
        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(200, run.Recorder.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read));
        Assert.True(logs.Has(3016), "The handler's failures were not logged (event 3016).");
        await run.StopAsync();
    }

    [Fact]
    public async Task CheckpointSaveLosesItsConnectionAfterTheTableCompleted_TheTaskCompletes_AndTheSaveIsMadeUp()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await db.ExecuteAsync(BreakableCheckpointTable);
        var logs = new LogCapture();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            // After the last chunk's notification come its own save, then the save of the completed table: that one dies.
            client.OnSnapshotProgress(async (p, _) =>
            {
                if (p is SnapshotChunkCompleted { Chunk: 4 })
                    await db.ExecuteAsync("UPDATE save_breaker SET mode = 'kill-second'");
            });
        }, configure: o =>
        {
            o.SnapshotChunkSize = 30;
            o.ReconnectDelay = TimeSpan.FromMilliseconds(200);
            o.LoggerFactory = logs;
        });

        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));

        // The save that died is made up: the checkpoint records the table, once, as completed.
        var finished = await FinishedAsync(db, "public.restaurant");
        Assert.Equal([SnapshotOutcome.Completed], finished.Select(f => f.Outcome));
        Assert.True(logs.Has(3017), "The lost save was not reported and tried again (event 3017).");
        Assert.True(await db.ScalarAsync<long>("SELECT last_value FROM save_attempts") >= 3, "The save of the completed table was not attempted under the breaker.");
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c is { Kind: ChangeKind.Insert, New.Id: "after" }), "the insert after the lost save");
        await run.StopAsync();
    }

    [Fact]
    public async Task CheckpointSavesFailOutsideAnyTable_TheLoopTriesAgain_AndServesRequestsOnceTheyWork()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        await db.ExecuteAsync(BreakableCheckpointTable);
        var logs = new LogCapture();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o =>
        {
            o.SnapshotChunkSize = 30;
            o.ReconnectDelay = TimeSpan.FromMilliseconds(100);
            o.LoggerFactory = logs;
        });

        // A pause is saved between tables; that save fails, again and again.
        await db.ExecuteAsync("UPDATE save_breaker SET mode = 'raise'");
        run.Client.PauseSnapshots();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await db.ScalarAsync<long>("SELECT last_value FROM save_attempts") < 3 && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.True(logs.Has(3017), "The failed saves were not reported (event 3017).");
        Assert.False(run.Run.IsCompleted, "The stream stopped because a checkpoint could not be saved.");

        await db.ExecuteAsync("UPDATE save_breaker SET mode = NULL");
        run.Client.ResumeSnapshots();
        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(100, run.Recorder.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read));
        await run.StopAsync();
    }

    /// <summary>How the checkpoint records the snapshots of <paramref name="table"/>, once it records any (the save after a
    /// table's end comes a moment after its task completes).</summary>
    private static async Task<List<FinishedSnapshot>> FinishedAsync(TestDatabase db, string table)
    {
        await using var store = new PostgresCheckpointStore(db.ConnectionString);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var finished = ((await CheckpointInfo.LoadAsync(store, "dbsync_test"))?.Finished ?? []).Where(f => f.Table == table).ToList();
            if (finished.Count > 0 || DateTime.UtcNow > deadline)
                return finished;
            await Task.Delay(100);
        }
    }
}
