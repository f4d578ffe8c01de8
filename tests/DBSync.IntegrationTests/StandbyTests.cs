using DBSync.Checkpoints;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using DBSync.Testing;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>
/// Instances of one pipeline on one slot (<see cref="SlotInUse.Wait"/>): the one that holds the slot delivers, the others
/// stand by quietly and take over when it goes; several starting at once on a fresh database set it up once.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Standby")]
public sealed class StandbyTests(PostgresFixture fixture)
{
    private const string Slot = "dbsync_test";

    /// <summary>A second instance finds the slot streaming to the first: it stands by (one log line naming the holder,
    /// and no other, though it looks every 50 ms and finds the slot held each time), delivers nothing, and takes over
    /// when the first stops, from the position the first confirmed.</summary>
    [Fact]
    public async Task SecondInstance_StandsByQuietly_TakesOverWhenTheFirstStops()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var first = await StreamRun.StartAsync(db.ConnectionString, slot: Slot);
        await using var second = Instance.Start(db.ConnectionString);

        await second.WaitForRoleAsync(DBSyncRole.Standby);
        await second.Recorder.WaitUntilAsync(_ => second.Log.Has(2030), "the stand-by's log line", second.Run); // logged just after the role changes
        // Some 40 looks at the slot, each finding it held: the stand-by stays healthy (Standby at every look of ours, its
        // run going on) and quiet (not a single log line more, of any kind).
        var linesWhenStandingBy = second.Log.Entries.Count;
        for (var look = 0; look < 40; look++)
        {
            await Task.Delay(50);
            Assert.Equal(DBSyncRole.Standby, second.Client.Role);
            Assert.False(second.Run.IsCompleted, $"The stand-by's run ended: {second.Run.Exception?.InnerException}");
        }
        Assert.Equal(linesWhenStandingBy, second.Log.Entries.Count);
        var standingBy = Assert.Single(second.Log.Entries, e => e.Id.Id == 2030);
        Assert.Contains("server process ", standingBy.Text, StringComparison.Ordinal);
        Assert.Equal(DBSyncRole.Standby, second.Client.Role);

        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('while-standing-by', 'n')");
        await first.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "while-standing-by"), "the first instance delivering the insert");
        await first.StopAsync();

        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after-take-over', 'n')");
        await second.Recorder.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "after-take-over"), "the second instance delivering after it took over", second.Run,
            TimeSpan.FromSeconds(30));
        Assert.Equal(DBSyncRole.Active, second.Client.Role);
        Assert.Single(second.Log.Entries, e => e.Id.Id == 2030);
        Assert.Contains(second.Log.Entries, e => e.Id.Id == 2031);
        // What the first confirmed is not delivered again.
        Assert.DoesNotContain(second.Recorder.Of<Restaurant>(), c => c.New?.Id == "while-standing-by");
        await second.StopAsync();
    }

    /// <summary>The server restarts under an active instance and a stand-by: both lose their connections and race for the
    /// slot. One streams after it, the other stands by, neither fails, and every transaction committed after the restart
    /// is delivered.</summary>
    [Fact]
    public async Task ServerRestarted_UnderAnActiveInstanceAndAStandBy_OneStreamsAfterIt_TheOtherStandsBy()
    {
        // A server of its own: the restart must not disturb the other tests.
        await using var server = await PostgresServer.StartAsync(forceLocal: true);
        await using var db = await TestDatabase.CreateAsync(server);
        void Quick(DBSyncOptions o) => (o.ReconnectDelay, o.MaxReconnectDelay) = (TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1));
        await using var first = Instance.Start(db.ConnectionString, configure: Quick);
        await first.WaitForRoleAsync(DBSyncRole.Active);
        await using var second = Instance.Start(db.ConnectionString, configure: Quick);
        await second.WaitForRoleAsync(DBSyncRole.Standby);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('before', 'n')");
        await first.Recorder.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "before"), "the insert before the restart", first.Run);

        await server.RestartAsync();
        NpgsqlConnection.ClearAllPools();
        for (var i = 0; i < 20; i++)
            await db.ExecuteAsync($"INSERT INTO restaurant (id, name) VALUES ('after-{i}', 'n')");

        // Every transaction after the restart reaches one of them (at least once), and then one streams, one stands by.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var after = Enumerable.Range(0, 20).Select(i => $"after-{i}").ToHashSet();
        while (true)
        {
            foreach (var instance in new[] { first, second })
            {
                if (instance.Run.IsCompleted)
                    await instance.Run; // its error says more than the assertion below
            }
            var delivered = first.Recorder.Of<Restaurant>().Concat(second.Recorder.Of<Restaurant>()).Select(c => c.New?.Id ?? "").ToHashSet();
            var roles = new[] { first.Client.Role, second.Client.Role }.Order().ToArray();
            if (after.IsSubsetOf(delivered) && roles is [DBSyncRole.Active, DBSyncRole.Standby])
                break;
            Assert.True(DateTime.UtcNow < deadline, $"60 s after the restart: roles {first.Client.Role} and {second.Client.Role}, " +
                $"{after.Count(delivered.Contains)} of 20 transactions delivered. Logs:\n" +
                string.Join("\n", first.Log.Entries.Select(e => $"first {e.Id.Id} {e.Text}").Concat(second.Log.Entries.Select(e => $"second {e.Id.Id} {e.Text}"))));
            await Task.Delay(50);
        }
        Assert.True(first.Log.Has(2007), "The active instance did not report its lost connection.");

        // And it goes on: the next change reaches the active one.
        var active = first.Client.Role == DBSyncRole.Active ? first : second;
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('later', 'n')");
        await active.Recorder.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "later"), "a change after both settled", active.Run);
        var standBy = active == first ? second : first;
        Assert.DoesNotContain(standBy.Recorder.Of<Restaurant>(), c => c.New?.Id == "later");
    }

    /// <summary>Two instances starting together on a fresh database: this one found no slot, and before it loaded the
    /// checkpoint the other created the slot and recorded it there (as it does right after creating it). The record shows
    /// a slot that streamed, which must not be taken for a lost slot while the slot is there: this instance uses it.</summary>
    [Fact]
    public async Task SlotCreatedAndRecordedByAnotherInstance_BetweenThisOnesLookAndItsCheckpointLoad_IsUsed_NotTakenForLost()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var store = new RacingStore(new PostgresCheckpointStore(db.ConnectionString), async () =>
        {
            if (await db.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{Slot}'") > 0)
                return false;
            var lsn = await db.ScalarAsync<string>($"SELECT lsn::text FROM pg_create_logical_replication_slot('{Slot}', 'pgoutput')");
            var record = new Checkpoint { Slot = Slot, ConfirmedLsn = (ulong)NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(lsn), Jobs = [] };
            await new PostgresCheckpointStore(db.ConnectionString).SaveAsync(Slot, record.Serialize(), CancellationToken.None);
            return true;
        });
        await using var instance = Instance.Start(db.ConnectionString, configure: o => o.CheckpointStore = store);
        await instance.WaitForRoleAsync(DBSyncRole.Active);
        Assert.True(store.Raced, "The slot was not created between the instance's look for it and its load of the checkpoint.");

        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after', 'n')");
        await instance.Recorder.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "after"), "the insert", instance.Run);
    }

    /// <summary>A store that, the first time a checkpoint is loaded, lets <paramref name="race"/> act first (true when
    /// it did something).</summary>
    private sealed class RacingStore(ICheckpointStore inner, Func<Task<bool>> race) : ICheckpointStore
    {
        private int _loads;

        public bool Raced { get; private set; }

        public async Task<byte[]?> LoadAsync(string slotName, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _loads) == 1)
                Raced = await race();
            return await inner.LoadAsync(slotName, cancellationToken);
        }

        public Task SaveAsync(string slotName, ReadOnlyMemory<byte> checkpoint, CancellationToken cancellationToken)
            => inner.SaveAsync(slotName, checkpoint, cancellationToken);
    }

    /// <summary>Two instances started at the same moment on a database with no slot yet: one slot, one initial snapshot
    /// (every row delivered once, by the instance that streams), the other standing by, and no error.</summary>
    [Fact]
    public async Task TwoInstancesStartedTogether_OnAFreshDatabase_OneSlotOneInitialSnapshotNoError()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || i, 'n' || i FROM generate_series(1, 500) i");
        await using var a = Instance.Start(db.ConnectionString, initialSnapshot: true);
        await using var b = Instance.Start(db.ConnectionString, initialSnapshot: true);

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Reads(a) + Reads(b) < 500 || new[] { a.Client.Role, b.Client.Role }.Order().ToArray() is not [DBSyncRole.Active, DBSyncRole.Standby])
        {
            Assert.False(a.Run.IsCompleted || b.Run.IsCompleted, "An instance stopped: " + (a.Run.Exception ?? b.Run.Exception)?.InnerException);
            Assert.True(DateTime.UtcNow < deadline, $"After 60 s: {Reads(a)} and {Reads(b)} rows read, roles {a.Client.Role} and {b.Client.Role}.");
            await Task.Delay(100);
        }
        await Task.Delay(1000); // a second snapshot would have started by now
        var active = a.Client.Role == DBSyncRole.Active ? a : b;
        var standby = active == a ? b : a;
        Assert.Equal(500, Reads(active));
        Assert.Equal(500, active.Recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id).Distinct().Count());
        Assert.Equal(0, Reads(standby));
        Assert.Single(standby.Log.Entries, e => e.Id.Id == 2030);
        Assert.Equal(1L, await db.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{Slot}'"));
        Assert.DoesNotContain(a.Log.Entries.Concat(b.Log.Entries), e => e.Text.Contains("rror", StringComparison.Ordinal));
        await a.StopAsync();
        await b.StopAsync();

        static int Reads(Instance instance) => instance.Recorder.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read);
    }

    /// <summary>The active instance stops while its initial snapshot is half done: the instance standing by takes over,
    /// says in its progress that the table's snapshot resumes (after the last key the first one completed), reads only
    /// the rest, and between them every row is read.</summary>
    [Fact]
    public async Task SnapshotInProgress_ContinuesOnTheInstanceThatTakesOver_FromTheCheckpoint()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || lpad(i::text, 4, '0'), 'n' FROM generate_series(1, 400) i");
        await using var first = Instance.Start(db.ConnectionString, initialSnapshot: true, chunkDelay: TimeSpan.FromMilliseconds(100));
        await first.WaitForRoleAsync(DBSyncRole.Active);
        await using var second = Instance.Start(db.ConnectionString, initialSnapshot: true);
        await second.WaitForRoleAsync(DBSyncRole.Standby);
        await first.Recorder.WaitUntilAsync(r => Reads(r).Count >= 100, "a quarter of the snapshot", first.Run);
        await first.StopAsync();

        await second.Recorder.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Any(c => c.Table == "public.restaurant"),
            "restaurant's snapshot completed by the second instance", second.Run, TimeSpan.FromSeconds(60));
        var resumed = Assert.Single(second.Recorder.Progress.OfType<SnapshotTableStarted>(), s => s.Table == "public.restaurant");
        Assert.True(resumed.Resumed, "The second instance started the table's snapshot over instead of resuming it.");
        Assert.NotNull(resumed.LastKey);
        var (before, after) = (Reads(first.Recorder), Reads(second.Recorder));
        Assert.InRange(after.Count, 1, 399);
        Assert.Equal(400, before.Concat(after).Distinct().Count());
        await second.StopAsync();

        static List<string> Reads(ChangeRecorder recorder) => [.. recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id)];
    }

    /// <summary>The default store's fenced save writes the checkpoint only for the walsender that streams from the slot
    /// now, checked in the same statement: a deposed instance's save (its walsender gone, another's in its place) writes
    /// nothing.</summary>
    [Fact]
    public async Task FencedCheckpointSave_WritesOnlyForTheSlotsActiveWalsender()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, slot: Slot);
        // The instance's own first save (the position it streams from) comes first: the writes below are the last.
        for (var attempt = 0; !(await db.ScalarAsync<bool>("SELECT to_regclass('dbsync_checkpoint') IS NOT NULL")
                                && await db.ScalarAsync<long>($"SELECT count(*) FROM dbsync_checkpoint WHERE slot_name = '{Slot}'") == 1); attempt++)
        {
            Assert.True(attempt < 300, "The instance did not save its checkpoint when it started streaming.");
            await Task.Delay(100);
        }
        var active = await db.ScalarAsync<int>($"SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{Slot}'");
        await using var store = new PostgresCheckpointStore(db.ConnectionString);
        IFencedCheckpointStore fenced = store;

        Assert.True(await fenced.SaveWhileHoldingAsync(Slot, new byte[] { 1, 2, 3 }, active, CancellationToken.None));
        Assert.False(await fenced.SaveWhileHoldingAsync(Slot, new byte[] { 4, 5, 6 }, active + 1, CancellationToken.None));
        Assert.Equal(new byte[] { 1, 2, 3 }, await store.LoadAsync(Slot, CancellationToken.None));
        await run.StopAsync();
        Assert.False(await fenced.SaveWhileHoldingAsync(Slot, new byte[] { 7, 8, 9 }, active, CancellationToken.None)); // no walsender holds it now
        Assert.Equal(new byte[] { 1, 2, 3 }, await store.LoadAsync(Slot, CancellationToken.None));
    }

    /// <summary>
    /// An instance deposed by a silent network: A streams through a proxy and is between two chunks of its snapshot (its
    /// progress handler holds chunk 2's save back); its replication connection then goes silent (A's other connections
    /// still pass), the server ends A's walsender after A's session's 3 s <c>wal_sender_timeout</c>, and B, standing by,
    /// takes the slot over, finishes the snapshot and writes its checkpoint. Only then is A's save let go: A, which has
    /// noticed nothing (its <c>ReceiveTimeout</c> is 5 minutes), still reaches the database with it, and the fence refuses
    /// it: the checkpoint row stays exactly as B wrote it. The refusal ends A's stream at once, A stands by (and takes the
    /// slot back when B stops), and A delivers no change after B took over: nothing reached it since its connection went
    /// silent, and B delivers again what A had not confirmed.
    /// </summary>
    [Fact]
    public async Task DeposedInstance_BehindASilentNetwork_CannotWriteTheCheckpointAfterAnotherTookOver()
    {
        // A cluster of its own: the proxy needs the server on loopback, whatever POSTGRES_HOST names.
        await using var server = await PostgresServer.StartAsync(forceLocal: true);
        await using var db = await TestDatabase.CreateAsync(server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || lpad(i::text, 4, '0'), 'n' FROM generate_series(1, 400) i");
        await using var proxy = TcpProxy.Start("127.0.0.1", server.Port);
        // A's sessions (its walsender's among them) give a client up after 3 s without a word from it.
        var throughProxy = new NpgsqlConnectionStringBuilder(db.ConnectionString)
        {
            Host = "127.0.0.1", Port = proxy.Port, SslMode = SslMode.Disable, Options = "-c wal_sender_timeout=3000",
        }.ConnectionString;

        var chunk2Held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseChunk2 = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var a = Instance.Start(throughProxy, initialSnapshot: true, configure: o =>
        {
            o.StatusInterval = TimeSpan.FromMilliseconds(300); // keeps the walsender while the network carries it
            o.ReceiveTimeout = TimeSpan.FromMinutes(5); // A does not notice the silence by itself during the test
        }, onProgress: async (progress, cancellationToken) =>
        {
            // Chunk 2 is delivered; its checkpoint save comes right after this notification.
            if (progress is SnapshotChunkCompleted { Table: "public.restaurant", Chunk: 2 })
            {
                chunk2Held.TrySetResult();
                await releaseChunk2.Task.WaitAsync(cancellationToken);
            }
        });
        await a.WaitForRoleAsync(DBSyncRole.Active);
        // Npgsql's replication connection sends START_REPLICATION with its first read: B starts once the server shows A's
        // walsender on the slot, or it could take the slot first.
        for (var attempt = 0; !await db.ScalarAsync<bool>($"SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = '{Slot}'"); attempt++)
        {
            Assert.True(attempt < 300, "A's walsender never held the slot.");
            await Task.Delay(50);
        }
        await using var b = Instance.Start(db.ConnectionString, initialSnapshot: true);
        await b.WaitForRoleAsync(DBSyncRole.Standby);
        await chunk2Held.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var aWalSender = await ActiveWalSenderAsync(db);

        // A's replication connection goes silent; its ordinary connections (the checkpoint's among them) still pass.
        Assert.Equal(1, proxy.SilenceExistingReplicationConnections());
        await b.WaitForRoleAsync(DBSyncRole.Active, TimeSpan.FromSeconds(60));
        var aChangesWhenBTookOver = Changes(a);
        var bWalSender = await ActiveWalSenderAsync(db);
        Assert.NotEqual(aWalSender, bWalSender);
        Assert.Equal(DBSyncRole.Active, a.Client.Role); // A has not noticed
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after-take-over', 'n')");
        await b.Recorder.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any() && r.Of<Restaurant>().Any(c => c.New?.Id == "after-take-over"),
            "B finishing the snapshot it took over, and delivering a change", b.Run, TimeSpan.FromSeconds(60));
        var (bWrote, bSavedAt) = await CheckpointRowAsync(db);
        var byB = Checkpoint.Deserialize(bWrote, "written by B");
        Assert.Empty(byB.Jobs); // B finished the snapshot
        Assert.Contains(byB.Finished, f => f.Table.EndsWith("restaurant", StringComparison.Ordinal));

        // A's save goes out now, over a connection that reaches the server, for a walsender that is gone.
        releaseChunk2.TrySetResult();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!RefusedSave(a) && (await CheckpointRowAsync(db)).SavedAt == bSavedAt)
        {
            Assert.True(DateTime.UtcNow < deadline, "A neither saved its checkpoint nor had its save refused within 30 s of being let go.");
            await Task.Delay(50);
        }
        var (afterA, afterASavedAt) = await CheckpointRowAsync(db);
        Assert.True(afterASavedAt == bSavedAt && afterA.SequenceEqual(bWrote),
            $"A, deposed, overwrote the checkpoint B wrote: {Describe(Checkpoint.Deserialize(afterA, "after A's save"))} instead of {Describe(byB)}.");
        Assert.Contains($"(server process {aWalSender})", a.Log.Entries.First(e => IsRefusal(e.Text)).Text, StringComparison.Ordinal);

        // The refusal ended A's stream: it reconnects, finds the slot held by B, and stands by, well before its receive timeout.
        await a.WaitForRoleAsync(DBSyncRole.Standby, TimeSpan.FromSeconds(30));
        await a.Recorder.WaitUntilAsync(_ => a.Log.Has(2030), "A's log line saying who holds the slot", a.Run); // logged just after the role changes
        Assert.True(a.Log.Entries.Any(e => e.Id.Id == 2030 && e.Text.Contains($"server process {bWalSender}", StringComparison.Ordinal)),
            $"A's log does not say B's walsender ({bWalSender}) holds the slot:\n{string.Join("\n", a.Log.Entries.Select(e => $"{e.Id.Id} {e.Text}"))}");
        Assert.Equal(aChangesWhenBTookOver, Changes(a));
        Assert.DoesNotContain(a.Recorder.Of<Restaurant>(), c => c.New?.Id == "after-take-over");
        var (stillB, _) = await CheckpointRowAsync(db);
        Assert.Equal(bWrote, stillB);
        // Between them every row was read: A up to its chunk 2, B from A's last saved chunk on (B's reads may include the
        // row inserted while it finished).
        Assert.Equal(400, Reads(a).Concat(Reads(b)).Where(id => id.StartsWith("r-", StringComparison.Ordinal)).Distinct().Count());
        Assert.True(Assert.Single(b.Recorder.Progress.OfType<SnapshotTableStarted>(), s => s.Table == "public.restaurant").Resumed);

        // A stood by in good health: it takes the slot back when B stops.
        await b.StopAsync();
        await a.WaitForRoleAsync(DBSyncRole.Active, TimeSpan.FromSeconds(30));
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after-b-stopped', 'n')");
        await a.Recorder.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "after-b-stopped"), "A delivering after B stopped", a.Run);
        await a.StopAsync();

        static int Changes(Instance instance) => instance.Recorder.All.Count(e => e is not SnapshotProgress);
        static IEnumerable<string> Reads(Instance instance) => instance.Recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id);
        static bool IsRefusal(string text) => text.Contains("no longer streams to this instance's walsender", StringComparison.Ordinal);
        static bool RefusedSave(Instance instance) => instance.Log.Entries.Any(e => IsRefusal(e.Text));
        static string Describe(Checkpoint c) => $"[saved {c.SavedAt:HH:mm:ss.fff}, jobs: {string.Join(", ", c.Jobs.Select(j => $"{j.Schema}.{j.Name} after {string.Join(",", j.LastKey ?? [])}"))}]";
    }

    private static async Task<int> ActiveWalSenderAsync(TestDatabase db)
        => await db.ScalarAsync<int>($"SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{Slot}' AND active");

    /// <summary>The checkpoint row as the database has it: what was written last, and when.</summary>
    private static async Task<(byte[] Checkpoint, DateTime SavedAt)> CheckpointRowAsync(TestDatabase db)
    {
        await using var connection = await db.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT checkpoint, saved_at FROM dbsync_checkpoint WHERE slot_name = '{Slot}'", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), "No checkpoint row.");
        return ((byte[])reader.GetValue(0), reader.GetDateTime(1));
    }

    /// <summary>An instance of the pipeline with <see cref="SlotInUse.Wait"/>, looking at the slot every 50 ms, its log
    /// captured.</summary>
    private sealed class Instance : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();

        private Instance(DBSyncClient client, ChangeRecorder recorder, LogCapture log)
        {
            Client = client;
            Recorder = recorder;
            Log = log;
            Run = client.RunAsync(_stop.Token);
        }

        public DBSyncClient Client { get; }

        public ChangeRecorder Recorder { get; }

        public LogCapture Log { get; }

        public Task Run { get; }

        public static Instance Start(string connectionString, bool initialSnapshot = false, TimeSpan chunkDelay = default, Action<DBSyncOptions>? configure = null,
            Func<SnapshotProgress, CancellationToken, ValueTask>? onProgress = null)
        {
            var log = new LogCapture();
            var options = new DBSyncOptions
            {
                ConnectionString = connectionString, SlotName = Slot, PublicationName = Slot, InitialSnapshot = initialSnapshot, SnapshotChunkSize = 50,
                ReplicationTransport = TestTransport.Current, SnapshotParallelism = TestSnapshotParallelism.Current,
                WhenSlotInUse = SlotInUse.Wait, StandbyPollInterval = TimeSpan.FromMilliseconds(50), LoggerFactory = log, SnapshotChunkDelay = chunkDelay,
            };
            configure?.Invoke(options);
            var client = new DBSyncClient(options);
            var recorder = new ChangeRecorder();
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(recorder.Add);
            if (onProgress is not null)
                client.OnSnapshotProgress(onProgress);
            return new Instance(client, recorder, log);
        }

        public async Task WaitForRoleAsync(DBSyncRole role, TimeSpan? timeout = null)
        {
            var limit = timeout ?? TimeSpan.FromSeconds(30);
            var deadline = DateTime.UtcNow + limit;
            while (Client.Role != role)
            {
                if (Run.IsCompleted)
                    await Run;
                Assert.True(DateTime.UtcNow < deadline, $"The instance is {Client.Role}, not {role}, after {limit.TotalSeconds} s. Its log:\n" +
                    string.Join("\n", Log.Entries.Select(e => $"{e.Id.Id} {e.Text}")));
                await Task.Delay(20);
            }
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Run.WaitAsync(TimeSpan.FromSeconds(30));
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await Run.WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (Exception)
            {
                // the test's assertions report what matters
            }
            _stop.Dispose();
        }
    }
}
