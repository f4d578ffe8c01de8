using DBSync.Replication;

namespace DBSync.Snapshots;

/// <summary>
/// Where a table's snapshot and the stream meet. The snapshot writes its watermarks through it and waits for the stream
/// to pass them; the stream hands it this pipeline's watermark messages, and tells it when the transaction of a high
/// watermark has been handled. Window ids only grow, so a watermark of an earlier table's snapshot, or of an earlier run,
/// is recognised as stale.
/// </summary>
internal sealed class WatermarkChannel
{
    private readonly object _lock = new();
    private string _runId = "";
    private long _windowSequence;
    private SnapshotTarget? _active;
    private long _activeFirstWindow;
    // The high watermarks written and not yet passed (several readers can each wait for one).
    private readonly Dictionary<long, TaskCompletionSource<ChunkOutcome>> _waiting = [];
    private (long Window, ChunkOutcome Outcome)? _handledHigh;

    /// <summary>A run of the snapshot loop begins: watermarks written before it are stale.</summary>
    public void StartRun()
    {
        lock (_lock)
            _runId = Guid.NewGuid().ToString("N")[..12];
    }

    /// <summary>A snapshot of <paramref name="target"/> begins; returns its first window (earlier ones are stale).</summary>
    public long Open(SnapshotTarget target)
    {
        lock (_lock)
        {
            _active = target;
            _activeFirstWindow = Interlocked.Read(ref _windowSequence) + 1;
            return _activeFirstWindow;
        }
    }

    /// <summary>The snapshot ended: no window is open any more.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _active = null;
            _waiting.Clear(); // their readers are gone
        }
    }

    /// <summary>Writes the low watermark of a new window; returns its id.</summary>
    public async Task<long> WriteLowAsync(ISnapshotSql sql, CancellationToken cancellationToken)
    {
        var window = Interlocked.Increment(ref _windowSequence);
        await sql.EmitAsync(new Watermark(WatermarkKind.Low, RunId, window), cancellationToken).ConfigureAwait(false);
        return window;
    }

    /// <summary>Writes the high watermark of <paramref name="window"/>; the task completes when the stream has passed it and
    /// every handler of its transaction completed, with the rows emitted and what is left to do.</summary>
    public async Task<Task<ChunkOutcome>> WriteHighAsync(ISnapshotSql sql, long window, CancellationToken cancellationToken)
    {
        var reached = new TaskCompletionSource<ChunkOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
            _waiting[window] = reached;
        await sql.EmitAsync(new Watermark(WatermarkKind.High, RunId, window), cancellationToken).ConfigureAwait(false);
        return reached.Task;
    }

    private string RunId
    {
        get
        {
            lock (_lock)
                return _runId;
        }
    }

    // ---- The stream's thread ----

    /// <summary>One of this pipeline's watermark messages. Watermarks of another run are ignored.</summary>
    public ValueTask OnWatermarkAsync(ReadOnlySpan<byte> content, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        if (!Watermark.TryParse(content, out var watermark))
            return default;
        SnapshotTarget? active;
        lock (_lock)
        {
            // An earlier run's, or one written before this table's snapshot began (the low watermark of a chunk read
            // ahead when its snapshot was cancelled): stale.
            if (watermark.RunId != _runId || _active is null || watermark.Chunk < _activeFirstWindow)
                return default;
            active = _active;
        }

        if (watermark.Kind == WatermarkKind.Low)
        {
            active.OnLowWatermark(watermark.Chunk);
            return default;
        }
        return HighAsync(active, watermark.Chunk, tx, lsn, cancellationToken);
    }

    private async ValueTask HighAsync(SnapshotTarget target, long window, TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        var outcome = await target.OnHighWatermarkAsync(window, tx, lsn, cancellationToken).ConfigureAwait(false);
        lock (_lock)
            _handledHigh = (window, outcome);
    }

    /// <summary>Every handler of the transaction just completed (transaction handlers and sinks too). A chunk counts as
    /// delivered, and may be checkpointed, only once the transaction of its high watermark is.</summary>
    public void OnTransactionHandled()
    {
        lock (_lock)
        {
            if (_handledHigh is not var (window, outcome))
                return;
            _handledHigh = null;
            if (_waiting.Remove(window, out var reached))
                reached.TrySetResult(outcome);
        }
    }
}
