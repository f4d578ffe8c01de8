using DBSync.Checkpoints;
using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Replication;
using DBSync.Sample;
using DBSync.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;

namespace DBSync.Runtime.Tests.Snapshots;

/// <summary>The snapshots of a pipeline, composed as the client composes them, on snapshot SQL over an in-memory table
/// and a stand-in for the stream: what the progress handlers hear and what the checkpoint keeps.</summary>
public sealed class SnapshotCoordinatorTests : IAsyncDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    // One chunk at a time unless a test says otherwise: the tests of the sequential order rely on it.
    private readonly DBSyncOptions _options = new() { ConnectionString = "Host=unused", SlotName = "test", SnapshotChunkSize = 2, SnapshotParallelism = 1 };
    private readonly List<Change<User>> _delivered = [];
    private readonly List<SnapshotProgress> _progress = [];
    private readonly TaskCompletionSource _queueDrained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _pausedReported = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly MemoryStore _store = new();
    private readonly ConnectionPool _unused = new("Host=unused");
    private TableRegistration<User> _users;
    private SnapshotCoordinator _snapshots;
    private FakeSnapshotSql _sql;
    private readonly CancellationTokenSource _stop = new();
    private Task _run = Task.CompletedTask;

    public SnapshotCoordinatorTests() => (_users, _snapshots, _sql) = Compose([1, 2, 3, 4, 5]);

    /// <summary>The snapshots of a pipeline over the users <paramref name="ids"/>, recording into this test's lists, saving
    /// into its store.</summary>
    private (TableRegistration<User>, SnapshotCoordinator, FakeSnapshotSql) Compose(int[] ids)
    {
        var users = new TableRegistration<User>(new HandlerInvoker(_options, NullLogger.Instance), new PipelineTelemetry("test"));
        users.Add((change, _) =>
        {
            lock (_delivered)
                _delivered.Add(change);
            return default;
        });
        var tables = new Dictionary<(string Schema, string Name), TableRegistration> { [("public", "users")] = users };
        List<Func<SnapshotProgress, CancellationToken, ValueTask>> handlers =
        [
            (progress, _) =>
            {
                lock (_progress)
                    _progress.Add(progress);
                if (progress is SnapshotsCompleted)
                    _queueDrained.TrySetResult();
                if (progress is SnapshotsPaused)
                    _pausedReported.TrySetResult();
                OnProgress?.Invoke(progress);
                return default;
            },
        ];
        var snapshots = new SnapshotCoordinator(_options, tables, handlers, () => 42, _unused, _store, NullLogger.Instance);
        var sql = new FakeSnapshotSql(ids, (content, tx) => snapshots.OnWatermarkAsync(content.Span, tx, 0, default), snapshots.OnTransactionHandled);
        snapshots.OpenSql = _ => Task.FromResult<ISnapshotSql>(sql);
        return (users, snapshots, sql);
    }

    /// <summary>Runs on each progress notification, after it is recorded.</summary>
    private Action<SnapshotProgress>? OnProgress { get; set; }

    [Fact]
    public async Task Snapshot_ReportsRowsReadEmittedAndAttemptsOfEachChunk_AndTheCheckpointKeepsTheTotals()
    {
        var target = (SnapshotTarget<User>)_users.Snapshot;
        var shapeChanged = false;
        _sql.BeforePass = watermark =>
        {
            if (watermark.Kind != WatermarkKind.High)
                return;
            // In chunk 1's window the stream updates row 1 (the chunk's copy is not emitted); in chunk 2's first window
            // the table's shape changes (chunk 2 is read again).
            if (_sql.ChunkOf(watermark.Chunk) == 1)
                target.Record(900, new Change<User>(ChangeKind.Update, FakeSnapshotSql.NewUser(1), default, OldRowKind.None, ColumnSet.Empty, default, default, default, 900));
            if (_sql.ChunkOf(watermark.Chunk) == 2 && !shapeChanged)
            {
                shapeChanged = true;
                target.OnShapeChanged();
            }
        };
        Start();

        await _snapshots.RequestAsync([SnapshotTable.Of<User>()], default).WaitAsync(Patience);
        await _queueDrained.Task.WaitAsync(Patience);

        Assert.Equal([2, 3, 4, 5], _delivered.Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id));
        var chunks = Progress<SnapshotChunkCompleted>();
        Assert.Equal([(1L, 2, 1, 1), (2, 2, 2, 2), (3, 1, 1, 1)], chunks.Select(c => (c.Chunk, c.RowsRead, c.RowsEmitted, c.Attempts)));
        Assert.Equal([["2"], ["4"], ["5"]], chunks.Select(c => c.LastKey));
        Assert.Equal(new SnapshotTableCompleted("public.users", 3, 5, 4), Progress<SnapshotTableCompleted>().Single());

        var saved = Checkpoint.Deserialize(_store.Saved!, "in memory");
        Assert.Empty(saved.Jobs);
        Assert.Equal(42UL, saved.ConfirmedLsn);
        var finished = saved.Finished.Single();
        Assert.Equal(("public.users", SnapshotOutcome.Completed, 3L, 5L, 4L), (finished.Table, finished.Outcome, finished.Chunks, finished.RowsRead, finished.RowsEmitted));
    }

    [Fact]
    public async Task DeletesJob_OfRowsThatLeftTheTable_RunsDespiteACancellationOfEverySnapshot()
    {
        Start();
        _snapshots.Pause();
        var snapshot = _snapshots.RequestAsync([SnapshotTable.Of<User>()], default);
        _snapshots.RequestDeletesOfRowsThatLeft(TableOf<User>(), "public.users_detached");
        _snapshots.Cancel([]);
        _snapshots.Resume();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => snapshot.WaitAsync(Patience));
        await _queueDrained.Task.WaitAsync(Patience);
        Assert.Equal([1, 2, 3, 4, 5], _delivered.Select(c => c.Kind == ChangeKind.Delete ? c.Old!.Id : -1));
        Assert.Single(Progress<SnapshotTableCancelled>());
        Assert.Equal(5, Progress<SnapshotTableCompleted>().Single().RowsEmitted);
    }

    [Fact]
    public async Task ParallelReads_SplitTheKeyRange_EveryRowIsDeliveredOnce_ChunksAreNumberedInDeliveryOrder()
    {
        _options.SnapshotParallelism = 3;
        (_users, _snapshots, _sql) = Compose([.. Enumerable.Range(1, 40)]);
        Start();

        await _snapshots.RequestAsync([SnapshotTable.Of<User>()], default).WaitAsync(Patience);
        await _queueDrained.Task.WaitAsync(Patience);

        Assert.Equal(Enumerable.Range(1, 40), _delivered.Select(c => c.New!.Id).Order());
        // The key range was split (40 rows of chunks of 2: 3 readers x 4 segments), so the windows of several chunks were
        // open at once: some low watermark came before the high watermark of the window opened before it.
        Assert.Contains("sample", _sql.Events);
        var watermarks = _sql.Events.Where(e => e[0] is 'L' or 'H').ToList();
        Assert.Contains(watermarks.Select((w, i) => (w, i)), x => x.w[0] == 'L' && watermarks.Take(x.i).Count(w => w[0] == 'L') > watermarks.Take(x.i).Count(w => w[0] == 'H'));
        var chunks = Progress<SnapshotChunkCompleted>();
        Assert.Equal(Enumerable.Range(1, chunks.Count).Select(c => (long)c), chunks.Select(c => c.Chunk));
        Assert.Equal(40, chunks.Sum(c => c.RowsEmitted));
        Assert.Equal(new SnapshotTableCompleted("public.users", chunks.Count, 40, 40), Progress<SnapshotTableCompleted>().Single());
    }

    [Fact]
    public async Task ParallelReads_PausedAndRestarted_ContinueEachSegmentFromItsLastChunk_NoRowTwiceNoneMissing()
    {
        _options.SnapshotParallelism = 2;
        (_users, _snapshots, _sql) = Compose([.. Enumerable.Range(1, 40)]);
        OnProgress = progress =>
        {
            if (progress is SnapshotChunkCompleted { Chunk: 5 })
                _snapshots.Pause();
        };
        using (var first = new CancellationTokenSource())
        {
            _sql.StartStream();
            var run = _snapshots.RunAsync(first.Token);
            var request = _snapshots.RequestAsync([SnapshotTable.Of<User>()], default);
            await _pausedReported.Task.WaitAsync(Patience);
            await first.CancelAsync(); // the process ends: the next run starts from the checkpoint
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Patience));
            await _sql.StopStreamAsync();
        }

        var saved = Checkpoint.Deserialize(_store.Saved!, "in memory").Jobs.Single();
        Assert.True(saved.Segments!.Count > 1, "The key range was not split.");
        Assert.Contains(saved.Segments!, s => !s.Done);
        var before = _delivered.Select(c => c.New!.Id).ToList();
        Assert.Equal(saved.RowsEmitted, before.Count);

        OnProgress = null;
        (_users, _snapshots, _sql) = Compose([.. Enumerable.Range(1, 40)]);
        await _snapshots.LoadAsync(default);
        _snapshots.Resume();
        Start();
        await _queueDrained.Task.WaitAsync(Patience);

        var all = _delivered.Select(c => c.New!.Id).ToList();
        Assert.Equal(Enumerable.Range(1, 40), all.Order());
        Assert.Equal(40L, Progress<SnapshotTableCompleted>().Single().RowsEmitted);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _run.WaitAsync(Patience));
        await _sql.StopStreamAsync();
        await _unused.DisposeAsync();
        _stop.Dispose();
    }

    private void Start()
    {
        _sql.StartStream();
        _run = _snapshots.RunAsync(_stop.Token);
    }

    private List<T> Progress<T>()
    {
        lock (_progress)
            return [.. _progress.OfType<T>()];
    }

    private static SyncTableInfo TableOf<T>() where T : ISyncTable<T> => T.TableInfo;

    private sealed class MemoryStore : ICheckpointStore
    {
        public byte[]? Saved { get; private set; }

        public Task<byte[]?> LoadAsync(string slotName, CancellationToken cancellationToken) => Task.FromResult(Saved);

        public Task SaveAsync(string slotName, ReadOnlyMemory<byte> checkpoint, CancellationToken cancellationToken)
        {
            Saved = checkpoint.ToArray();
            return Task.CompletedTask;
        }
    }
}
