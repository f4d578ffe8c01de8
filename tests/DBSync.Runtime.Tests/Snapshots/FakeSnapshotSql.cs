using System.Globalization;
using System.Text;
using System.Threading.Channels;
using DBSync.Checkpoints;
using DBSync.Mapping;
using DBSync.Replication;
using DBSync.Sample;
using DBSync.Snapshots;

namespace DBSync.Runtime.Tests.Snapshots;

/// <summary>
/// The snapshot SQL over an in-memory table of users, with a stand-in for the stream: the watermarks written queue up,
/// and the test passes them to the stream side one by one (<see cref="PassAsync"/>), or lets a background stream pass
/// each one as it comes (<see cref="StartStream"/>). What the snapshot did is in <see cref="Events"/>, in order:
/// <c>L3</c>/<c>H3</c> for the watermarks of window 3, <c>read 2</c> for a read of chunk 2, <c>snapshot</c> for a look at
/// which transactions new snapshots see.
/// </summary>
internal sealed class FakeSnapshotSql(
    IEnumerable<int> ids,
    Func<ReadOnlyMemory<byte>, TransactionContext, ValueTask> onWatermark,
    Action onTransactionHandled) : ISnapshotSql
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly int[] _ids = [.. ids.Order()];
    private readonly Channel<Watermark> _written = Channel.CreateUnbounded<Watermark>();
    private readonly List<string> _events = [];
    private readonly ChangeCounter _changes = new();
    private readonly Dictionary<long, long> _chunkOfWindow = [];
    private long _lastLow;
    private Task? _stream;

    /// <summary>Which transactions the snapshot of each chunk sees.</summary>
    public SnapshotVisibility ChunkSnapshot { get; set; } = SnapshotVisibility.Parse("1000:1000:");

    /// <summary>Which transactions a snapshot taken now sees (<see cref="CurrentSnapshotAsync"/>).</summary>
    public Func<SnapshotVisibility> CurrentSnapshot { get; set; } = () => SnapshotVisibility.Parse("1000:1000:");

    /// <summary>Runs on the stream's side just before it passes a watermark (to deliver changes inside a window).</summary>
    public Action<Watermark>? BeforePass { get; set; }

    public IReadOnlyList<string> Events
    {
        get
        {
            lock (_events)
                return [.. _events];
        }
    }

    public string Database => "fake";

    /// <summary>Passes the next watermark written (waiting for it), which must be <paramref name="expected"/> (<c>L1</c>,
    /// <c>H1</c>, ...).</summary>
    public async Task PassAsync(string expected)
    {
        var watermark = await _written.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal(expected, Name(watermark));
        await PassAsync(watermark);
    }

    /// <summary>From now on, each watermark is passed as it is written, in order, by a stream of its own.</summary>
    public void StartStream()
        => _stream = Task.Run(async () =>
        {
            await foreach (var watermark in _written.Reader.ReadAllAsync())
                await PassAsync(watermark);
        });

    /// <summary>Ends the stream started by <see cref="StartStream"/>; throws what it failed with.</summary>
    public async Task StopStreamAsync()
    {
        _written.Writer.TryComplete();
        if (_stream is not null)
            await _stream.WaitAsync(Patience);
    }

    private async Task PassAsync(Watermark watermark)
    {
        BeforePass?.Invoke(watermark);
        _changes.Reset();
        // Each watermark in a transaction of its own, handled as soon as its changes are.
        await onWatermark(Encoding.UTF8.GetBytes(watermark.Content), new TransactionContext(0, default, default, _changes));
        onTransactionHandled();
    }

    /// <summary>The chunk read in <paramref name="window"/>; null for a window without one (a fence).</summary>
    public long? ChunkOf(long window)
    {
        lock (_events)
            return _chunkOfWindow.TryGetValue(window, out var chunk) ? chunk : null;
    }

    public Task EmitAsync(Watermark watermark, CancellationToken cancellationToken)
    {
        Add(Name(watermark));
        if (watermark.Kind == WatermarkKind.Low)
            Interlocked.Exchange(ref _lastLow, watermark.Chunk);
        _written.Writer.TryWrite(watermark);
        return Task.CompletedTask;
    }

    public Task<SnapshotVisibility> CurrentSnapshotAsync(CancellationToken cancellationToken)
    {
        Add("snapshot");
        return Task.FromResult(CurrentSnapshot());
    }

    public Task<SnapshotQuery> PrepareQueryAsync(SyncTableInfo table, JobState job, CancellationToken cancellationToken)
        => Task.FromResult(Query(job.MaxKey?.ToArray() ?? (_ids.Length == 0 ? null : [Text(_ids[^1])]), job.DeletesFrom is not null));

    public Task<long> EstimateRowsAsync(SyncTableInfo table, CancellationToken cancellationToken) => Task.FromResult((long)_ids.Length);

    public Task<SnapshotChunk<T>> ReadChunkAsync<T>(SnapshotQuery query, long chunk, IReadOnlyList<string>? after, int size, PgTypeCatalog types,
        CancellationToken cancellationToken) where T : ISyncTable<T>
    {
        Add($"read {chunk}");
        lock (_events)
            _chunkOfWindow[Interlocked.Read(ref _lastLow)] = chunk;
        var from = after is null ? int.MinValue : int.Parse(after[0], CultureInfo.InvariantCulture);
        var max = int.Parse(query.MaxKey![0], CultureInfo.InvariantCulture);
        var range = _ids.Where(id => id > from && id <= max).ToList();
        var rows = range.Take(size).Select(NewUser).ToList();
        // A full chunk ends at its last row; a short one read the whole rest of the range.
        IReadOnlyList<string>? last = rows.Count == 0 ? null : [Text(rows.Count == size ? rows[^1].Id : range[^1])];
        return Task.FromResult(new SnapshotChunk<T>((List<T>)(object)rows, last, ChunkSnapshot));
    }

    /// <summary>Every key up to the maximum (a sample of the whole table).</summary>
    public Task<IReadOnlyList<string[]>> SampleKeysAsync(SnapshotQuery query, int pages, CancellationToken cancellationToken)
    {
        Add("sample");
        var max = int.Parse(query.MaxKey![0], CultureInfo.InvariantCulture);
        return Task.FromResult<IReadOnlyList<string[]>>([.. _ids.Where(id => id <= max).Select(id => new[] { Text(id) })]);
    }

    public Task<WorkloadSample> SampleWorkloadAsync(CancellationToken cancellationToken) => Task.FromResult(new WorkloadSample(0, 0, 0));

    public Task<bool> TableExistsAsync(string schema, string name, CancellationToken cancellationToken) => Task.FromResult(false);

    public ValueTask DisposeAsync() => default;

    /// <summary>The chunk query of the users table up to <paramref name="maxKey"/> (as the server would fix it).</summary>
    public static SnapshotQuery Query(string[]? maxKey, bool emitsDeletes = false)
        => new(TableOf<User>(), "users", emitsDeletes, ["id"], ["integer"], null, [], maxKey);

    private static SyncTableInfo TableOf<T>() where T : ISyncTable<T> => T.TableInfo;

    public static User NewUser(int id) => new() { Id = id, FirstName = $"user {id}", Address = $"address-{id}" };

    private static string Text(int id) => id.ToString(CultureInfo.InvariantCulture);

    private static string Name(Watermark watermark) => $"{(char)watermark.Kind}{watermark.Chunk}";

    private void Add(string item)
    {
        lock (_events)
            _events.Add(item);
    }
}
