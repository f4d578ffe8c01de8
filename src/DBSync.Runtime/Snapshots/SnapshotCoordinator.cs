using DBSync.Checkpoints;
using DBSync.Internal;
using DBSync.Replication;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// The snapshots of one pipeline, composed: DBLog style, tables are snapshotted one at a time beside the stream, in
/// chunks between watermarks, with no lock taken and no transaction open between chunks. The client and the stream talk
/// to this type; each job is done by one of the pieces it builds:
/// <list type="bullet">
/// <item><see cref="SnapshotQueue"/>: requests, signals, pause and cancellation (one lock).</item>
/// <item><see cref="SnapshotCheckpointer"/>: the queue in the checkpoint store.</item>
/// <item><see cref="WatermarkChannel"/>: watermarks written, and passed by the stream.</item>
/// <item><see cref="VisibilityFence"/>: no chunk older than a change already delivered.</item>
/// <item><see cref="SnapshotLoop"/>, <see cref="TableSnapshotRunner"/> and <see cref="ChunkReadAhead"/>: the queue's jobs,
/// one table's snapshot, and its chunks as a state machine.</item>
/// <item><see cref="SnapshotThrottle"/> and <see cref="ProgressNotifier"/>: the pace, and the progress handlers.</item>
/// <item><see cref="ISnapshotSql"/>: every statement they run (<see cref="OpenSql"/>).</item>
/// </list>
/// </summary>
internal sealed class SnapshotCoordinator
{
    private readonly SnapshotQueue _queue;
    private readonly SnapshotCheckpointer _checkpointer;
    private readonly WatermarkChannel _channel = new();
    private readonly VisibilityFence _fence;
    private readonly SnapshotLoop _loop;
    private readonly string _slot;

    public SnapshotCoordinator(
        DBSyncOptions options,
        IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables,
        IReadOnlyList<Func<SnapshotProgress, CancellationToken, ValueTask>> progressHandlers,
        Func<ulong> confirmedLsn,
        ConnectionPool connections,
        ICheckpointStore store,
        ILogger logger,
        Func<int?>? streamingPid = null,
        Action<int, Exception>? slotNotHeld = null)
    {
        _slot = options.SlotName;
        Prefix = Watermark.PrefixFor(options.SlotName);
        OpenSql = cancellationToken => NpgsqlSnapshotSql.OpenAsync(connections, Prefix, options.TextFormat, cancellationToken);
        _queue = new SnapshotQueue(tables, logger);
        _checkpointer = new SnapshotCheckpointer(options, store, _queue, confirmedLsn, logger, streamingPid, slotNotHeld);
        _fence = new VisibilityFence(_channel);
        var notifier = new ProgressNotifier(progressHandlers, logger);
        var runner = new TableSnapshotRunner(options, _queue, _checkpointer, _channel, _fence, new SnapshotThrottle(options, logger), notifier,
            cancellationToken => OpenSql(cancellationToken), logger);
        _loop = new SnapshotLoop(options, tables, _queue, _checkpointer, _channel, runner, notifier, cancellationToken => OpenSql(cancellationToken), logger);
    }

    /// <summary>The logical message prefix of this pipeline's watermarks.</summary>
    public string Prefix { get; }

    /// <summary>Opens a connection for snapshot SQL (each table's snapshot has one); tests decorate it.</summary>
    internal Func<CancellationToken, Task<ISnapshotSql>> OpenSql { get; set; }

    /// <inheritdoc cref="SnapshotQueue.RunningProgress"/>
    public (string Table, double Share)? RunningProgress => _queue.RunningProgress;

    /// <inheritdoc cref="SnapshotQueue.Count"/>
    public int QueuedTables => _queue.Count;

    // ---- The client ----

    /// <inheritdoc cref="SnapshotQueue.RequestAsync"/>
    public Task RequestAsync(IEnumerable<SnapshotTable> tables, CancellationToken cancellationToken) => _queue.RequestAsync(tables, cancellationToken);

    /// <summary>Pauses after the chunk in flight (persisted: a restart stays paused until resumed).</summary>
    public void Pause() => _queue.SetPaused(true);

    public void Resume() => _queue.SetPaused(false);

    /// <inheritdoc cref="SnapshotQueue.Cancel"/>
    public void Cancel(IReadOnlyCollection<string> tables) => _queue.Cancel(tables);

    /// <inheritdoc cref="SnapshotQueue.TakeRestoredPartitions"/>
    public IReadOnlyList<SavedPartition>? TakeRestoredPartitions() => _queue.TakeRestoredPartitions();

    /// <inheritdoc cref="SnapshotQueue.RecordPartitions"/>
    public void RecordPartitions(IReadOnlyList<SavedPartition> partitions) => _queue.RecordPartitions(partitions);

    /// <inheritdoc cref="SnapshotQueue.RequestDeletesOfRowsThatLeft"/>
    public void RequestDeletesOfRowsThatLeft(SyncTableInfo table, string source) => _queue.RequestDeletesOfRowsThatLeft(table, source);

    /// <inheritdoc cref="SnapshotCheckpointer.PrepareNewSlotAsync"/>
    public Task PrepareNewSlotAsync(string? lostReason, CancellationToken cancellationToken) => _checkpointer.PrepareNewSlotAsync(lostReason, cancellationToken);

    /// <inheritdoc cref="SnapshotCheckpointer.RecordSlotCreatedAsync"/>
    public Task RecordSlotCreatedAsync(ulong position, CancellationToken cancellationToken) => _checkpointer.RecordSlotCreatedAsync(position, cancellationToken);

    /// <inheritdoc cref="SnapshotCheckpointer.LoadAsync"/>
    public Task LoadAsync(CancellationToken cancellationToken, bool takingOver = false) => _checkpointer.LoadAsync(cancellationToken, takingOver);

    /// <summary>With <see cref="DBSyncOptions.SnapshotOnStart"/>: every registered table is snapshotted in this run, from its
    /// first chunk (a snapshot of it in progress from an earlier run starts over), and the queue is saved.</summary>
    public async Task QueueEveryTableFromTheStartAsync(CancellationToken cancellationToken)
    {
        _queue.QueueEveryTableFromTheStart();
        await _checkpointer.SaveAsync(cancellationToken).ConfigureAwait(false);
        _queue.Wake();
    }

    /// <inheritdoc cref="SnapshotLoop.ServerVersionNum"/>
    public int ServerVersionNum
    {
        set => _loop.ServerVersionNum = value;
    }

    /// <inheritdoc cref="SnapshotLoop.RunAsync"/>
    public Task RunAsync(CancellationToken cancellationToken) => _loop.RunAsync(cancellationToken);

    /// <summary>The run ended (<see cref="DBSyncClient.RunAsync"/> returned or threw): every request still waiting ends
    /// with <see cref="SnapshotSuspendedException"/>; the snapshots continue on the next run.</summary>
    public void SuspendWaiters() => _queue.SuspendWaiters(_slot);

    /// <inheritdoc cref="SnapshotCheckpointer.ReleaseAsync"/>
    public Task ReleaseAsync() => _checkpointer.ReleaseAsync();

    // ---- The stream's thread ----

    /// <inheritdoc cref="WatermarkChannel.OnWatermarkAsync"/>
    public ValueTask OnWatermarkAsync(ReadOnlySpan<byte> content, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
        => _channel.OnWatermarkAsync(content, tx, lsn, cancellationToken);

    /// <inheritdoc cref="WatermarkChannel.OnTransactionHandled"/>
    public void OnTransactionHandled() => _channel.OnTransactionHandled();

    /// <inheritdoc cref="VisibilityFence.OnCommitted"/>
    public void OnCommitted(uint xid) => _fence.OnCommitted(xid);

    /// <summary>Acts on the signal-table rows of one committed transaction, once (a transaction replayed after a restart is
    /// recognised by its commit LSN). The new queue is saved before the transaction is acknowledged.</summary>
    public async ValueTask ApplySignalsAsync(IReadOnlyList<Signal> signals, ulong commitLsn, CancellationToken cancellationToken)
    {
        if (!_queue.ApplySignals(signals, commitLsn))
            return;
        await _checkpointer.SaveAsync(cancellationToken).ConfigureAwait(false);
        _queue.Wake();
    }
}
