using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

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
    /// though it looks every 50 ms), delivers nothing, and takes over when the first stops, from the position the first
    /// confirmed.</summary>
    [Fact]
    public async Task SecondInstance_StandsByQuietly_TakesOverWhenTheFirstStops()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var first = await StreamRun.StartAsync(db.ConnectionString, slot: Slot);
        await using var second = Instance.Start(db.ConnectionString);

        await second.WaitForRoleAsync(DBSyncRole.Standby);
        await Task.Delay(TimeSpan.FromSeconds(2)); // some 40 looks at the slot
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

        public static Instance Start(string connectionString, bool initialSnapshot = false, TimeSpan chunkDelay = default)
        {
            var log = new LogCapture();
            var client = new DBSyncClient(new DBSyncOptions
            {
                ConnectionString = connectionString, SlotName = Slot, PublicationName = Slot, InitialSnapshot = initialSnapshot, SnapshotChunkSize = 50,
                ReplicationTransport = TestTransport.Current, SnapshotParallelism = TestSnapshotParallelism.Current,
                WhenSlotInUse = SlotInUse.Wait, StandbyPollInterval = TimeSpan.FromMilliseconds(50), LoggerFactory = log, SnapshotChunkDelay = chunkDelay,
            });
            var recorder = new ChangeRecorder();
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(recorder.Add);
            return new Instance(client, recorder, log);
        }

        public async Task WaitForRoleAsync(DBSyncRole role)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Client.Role != role)
            {
                if (Run.IsCompleted)
                    await Run;
                Assert.True(DateTime.UtcNow < deadline, $"The instance is {Client.Role}, not {role}, after 30 s.");
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
