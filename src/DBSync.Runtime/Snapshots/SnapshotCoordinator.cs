using System.Diagnostics;
using DBSync.Checkpoints;
using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Replication;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Snapshots;

/// <summary>
/// Runs table snapshots one at a time beside the stream, DBLog style: per chunk it commits a low watermark, reads the
/// chunk (REPEATABLE READ, with its snapshot), hands it to the table's window, commits a high watermark, and waits until
/// the stream has passed the high watermark and delivered the chunk's remaining rows. The stream never stops; no lock is
/// taken and no transaction stays open between chunks.
/// </summary>
/// <remarks>
/// The queue (what to snapshot, how far each table got) is the pipeline's checkpoint: it is saved after every chunk and
/// every change of the queue, and loaded when a run starts, so a restart continues after the last completed chunk.
/// Requests, pauses and cancellations may come from any thread (API calls, the signal table); the queue is changed under
/// a lock and the coordinator's loop acts on it between chunks.
/// </remarks>
internal sealed class SnapshotCoordinator
{
    private const int RecentTransactions = 4096;

    private readonly DBSyncOptions _options;
    private readonly ILogger _logger;
    private readonly IReadOnlyDictionary<(string Schema, string Name), TableRegistration> _tables;
    private readonly IReadOnlyList<Func<SnapshotProgress, CancellationToken, ValueTask>> _progressHandlers;
    private readonly ICheckpointStore _store;
    private readonly Func<ulong> _confirmedLsn;
    private readonly ConnectionPool _connections;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly SemaphoreSlim _saveGate = new(1, 1);
    private readonly List<Job> _queue = [];
    private readonly List<FinishedSnapshot> _finished = [];
    private readonly uint[] _recent = new uint[RecentTransactions];
    private int _recentCount;
    private bool _paused;
    private bool? _pauseRequestedBeforeLoad;
    private ulong _lastSignalLsn;
    private bool _unsaved;
    private bool _notifiedPaused; // the loop's own: the last pause state reported
    private bool _busy; // the loop's own: a table ran since SnapshotsCompleted was last reported
    private bool _warnedHidden;
    private TableRegistration? _active;
    private long _activeFirstWindow;
    private (string Table, long RowsRead, long Estimate)? _activeProgress;
    private long _waitingWindow = -1;
    private TaskCompletionSource<ChunkOutcome>? _reached;
    private (long Window, ChunkOutcome Outcome)? _handledHigh;
    private long _windowSequence;
    private string _runId = "";

    public SnapshotCoordinator(
        DBSyncOptions options,
        IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables,
        IReadOnlyList<Func<SnapshotProgress, CancellationToken, ValueTask>> progressHandlers,
        Func<ulong> confirmedLsn,
        ConnectionPool connections,
        ICheckpointStore store,
        ILogger logger)
    {
        _options = options;
        _tables = tables;
        _progressHandlers = progressHandlers;
        _confirmedLsn = confirmedLsn;
        _connections = connections;
        _logger = logger;
        _store = store;
        Prefix = Watermark.PrefixFor(options.SlotName);
    }

    /// <summary>The logical message prefix of this pipeline's watermarks.</summary>
    public string Prefix { get; }

    /// <summary>The table being snapshotted and the share of it read so far, against the server's row estimate when its
    /// snapshot started (at most 1); null when none is running or the server has no estimate (a table never analyzed).</summary>
    public (string Table, double Share)? RunningProgress
    {
        get
        {
            lock (_lock)
            {
                return _activeProgress is var (table, read, estimate) && estimate > 0 ? (table, Math.Min(1, read / (double)estimate)) : null;
            }
        }
    }

    /// <summary>Tables queued for a snapshot or being snapshotted.</summary>
    public int QueuedTables
    {
        get
        {
            lock (_lock)
                return _queue.Count;
        }
    }

    /// <summary>Test seam: runs after a chunk was read and before its high watermark is written.</summary>
    internal Func<string, long, CancellationToken, Task>? AfterChunkRead { get; set; }

    // ---- Requests (any thread) ----

    /// <summary>Queues snapshots of <paramref name="tables"/>; the task completes when each is done or skipped, faults if
    /// one failed, and is cancelled if one was cancelled (also through <paramref name="cancellationToken"/>).</summary>
    public Task RequestAsync(IEnumerable<SnapshotTable> tables, CancellationToken cancellationToken)
    {
        var waits = new List<Task>();
        var jobs = new List<Job>();
        lock (_lock)
        {
            foreach (var job in Enqueue(tables, withWaiters: true))
            {
                jobs.Add(job);
                waits.Add(job.Waiters[^1].Task);
            }
            _unsaved = true; // saved by the loop's next turn or chunk
        }
        if (jobs.Count > 0)
            Log.SnapshotRequested(_logger, string.Join(", ", jobs.Select(j => j.State.DisplayName)));
        _wake.Release();
        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.Register(() => Cancel(jobs));
            _ = Task.WhenAll(waits).ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
        }
        return Task.WhenAll(waits);
    }

    /// <summary>Pauses after the chunk in flight (persisted: a restart stays paused until resumed).</summary>
    public void Pause() => SetPaused(true);

    public void Resume() => SetPaused(false);

    /// <summary>Cancels the snapshots of <paramref name="tables"/> (<c>schema.name</c> or <c>name</c>), or of every table when empty.</summary>
    public void Cancel(IReadOnlyCollection<string> tables)
    {
        lock (_lock)
            Cancel(SnapshotsOf(tables));
    }

    /// <summary>The queued snapshots of <paramref name="tables"/> (<c>schema.name</c> or <c>name</c>), or all when empty. Jobs
    /// that deliver the rows a table lost (<see cref="JobState.DeletesFrom"/>) are not snapshots: cancelling snapshots
    /// leaves them be, since without them those rows would stay in the consumers. Caller holds the lock.</summary>
    private List<Job> SnapshotsOf(IReadOnlyCollection<string> tables)
    {
        var names = tables.Select(t => new SnapshotTable(t).QualifiedName()).ToHashSet();
        return _queue.Where(j => j.State.DeletesFrom is null && (names.Count == 0 || names.Contains((j.State.Schema, j.State.Name)))).ToList();
    }

    private void Cancel(List<Job> jobs)
    {
        lock (_lock)
        {
            foreach (var job in jobs)
                job.Cancel.Cancel();
        }
        _wake.Release();
    }

    private void SetPaused(bool paused)
    {
        lock (_lock)
        {
            _paused = paused;
            _pauseRequestedBeforeLoad = paused;
        }
        _wake.Release();
    }

    /// <summary>Adds jobs for <paramref name="tables"/>: a table listed twice in one request, or queued already with the same
    /// settings, is snapshotted once. Caller holds the lock.</summary>
    private List<Job> Enqueue(IEnumerable<SnapshotTable> tables, bool withWaiters)
    {
        var added = new List<Job>();
        var seen = new HashSet<(string, string)>();
        foreach (var table in tables)
        {
            ArgumentNullException.ThrowIfNull(table);
            var state = NewState(table);
            var (schema, name) = (state.Schema, state.Name);
            var job = new Job(state);
            if (!seen.Add((schema, name)))
            {
                job.SkipReason = $"listed more than once in one request; it is snapshotted once";
            }
            else if (_queue.FirstOrDefault(j => !j.Cancel.IsCancellationRequested && j.SkipReason is null && SameSettings(j.State, state)) is { } queued)
            {
                if (withWaiters)
                    queued.Waiters.Add(NewWaiter());
                added.Add(queued);
                continue;
            }
            if (withWaiters)
                job.Waiters.Add(NewWaiter());
            _queue.Add(job);
            added.Add(job);
        }
        return added;
    }

    /// <summary>A snapshot of every table a registered type maps.</summary>
    private List<SnapshotTable> EveryRegisteredTable()
        => _tables.Values.Where(t => t is not SignalRegistration).Select(t => new SnapshotTable(t.Table.DisplayName)).ToList();

    /// <summary>The state of a snapshot of <paramref name="table"/> not started yet.</summary>
    private static JobState NewState(SnapshotTable table)
    {
        var (schema, name) = table.QualifiedName();
        return new JobState
        {
            Schema = schema,
            Name = name,
            Filter = string.IsNullOrWhiteSpace(table.Filter) ? null : table.Filter,
            FilterParameters = [.. table.FilterParameters],
            ChunkKey = string.IsNullOrWhiteSpace(table.ChunkKey) ? null : table.ChunkKey,
        };
    }

    private static TaskCompletionSource NewWaiter() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static bool SameSettings(JobState a, JobState b)
        => a.Schema == b.Schema && a.Name == b.Name && a.Filter == b.Filter && a.ChunkKey == b.ChunkKey && a.DeletesFrom == b.DeletesFrom
            && a.FilterParameters.SequenceEqual(b.FilterParameters);

    // ---- Signals (the stream's thread) ----

    /// <summary>Acts on the signal-table rows of one committed transaction, once: a transaction replayed after a restart
    /// is recognised by its commit LSN. The new queue is saved before the transaction is acknowledged.</summary>
    public async ValueTask ApplySignalsAsync(IReadOnlyList<Signal> signals, ulong commitLsn, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (commitLsn <= _lastSignalLsn)
                return;
            _lastSignalLsn = commitLsn;
            foreach (var signal in signals)
            {
                Log.SignalReceived(_logger, signal.Id, signal.Kind);
                switch (signal.Kind)
                {
                    case "snapshot":
                        if (signal.Tables.Count == 0)
                            Log.SignalIgnored(_logger, signal.Id, "a snapshot signal needs at least one table in 'tables'");
                        Enqueue(signal.Tables.Select(t => new SnapshotTable(t)
                        {
                            Filter = signal.Filter,
                            FilterParameters = signal.FilterParameters,
                            ChunkKey = signal.ChunkKey,
                        }), withWaiters: false);
                        break;
                    case "pause":
                        _paused = true;
                        break;
                    case "resume":
                        _paused = false;
                        break;
                    case "cancel":
                        foreach (var job in SnapshotsOf(signal.Tables))
                            job.Cancel.Cancel();
                        break;
                    default:
                        Log.SignalIgnored(_logger, signal.Id, $"unknown kind '{signal.Kind}' (use snapshot, pause, resume or cancel)");
                        break;
                }
            }
        }
        await SaveAsync(cancellationToken).ConfigureAwait(false);
        _wake.Release();
    }

    // ---- Checkpoint ----

    /// <summary>The slot is about to be created: any checkpoint belongs to an earlier slot and is replaced. With
    /// <see cref="DBSyncOptions.InitialSnapshot"/>, every registered table is queued, and the queue is saved before the
    /// slot exists, so a crash in between cannot lose the initial snapshot.</summary>
    public async Task PrepareNewSlotAsync(CancellationToken cancellationToken)
    {
        var stale = await _store.LoadAsync(_options.SlotName, cancellationToken).ConfigureAwait(false);
        if (stale is not null)
            Log.CheckpointDiscarded(_logger, _options.SlotName);
        lock (_lock)
        {
            _lastSignalLsn = 0;
            _finished.Clear();
            if (_options.InitialSnapshot)
            {
                var initial = EveryRegisteredTable();
                var jobs = Enqueue(initial, withWaiters: false);
                // Initial snapshots go first, before anything requested while the slot did not exist.
                _queue.RemoveAll(jobs.Contains);
                _queue.InsertRange(0, jobs);
            }
        }
        if (stale is not null || _queue.Count > 0)
            await SaveAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Rows left <paramref name="table"/> without delete events and are now in <paramref name="source"/> (a partition
    /// detached with its rows): queues a job that reads them there, by key, and delivers as deletes the rows the table does
    /// not have, in DBLog windows like a snapshot's chunks (a key the stream changes meanwhile is left to the stream). It
    /// goes right after the table being snapshotted, if any.
    /// </summary>
    public void RequestDeletesOfRowsThatLeft(SyncTableInfo table, string source)
    {
        var job = new Job(new JobState { Schema = table.Schema, Name = table.Name, DeletesFrom = source });
        lock (_lock)
        {
            if (_queue.Any(j => !j.Cancel.IsCancellationRequested && j.SkipReason is null && SameSettings(j.State, job.State)))
                return;
            _queue.Insert(_active is null || _queue.Count == 0 ? 0 : 1, job);
            _unsaved = true;
        }
        Log.SnapshotRequested(_logger, job.State.Description);
        _wake.Release();
    }

    /// <summary>With <see cref="DBSyncOptions.SnapshotOnStart"/>: every registered table is snapshotted in this run, from its
    /// first chunk (a snapshot of it in progress from an earlier run starts over), and the queue is saved.</summary>
    public async Task QueueEveryTableFromTheStartAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var tables = EveryRegisteredTable();
            foreach (var job in _queue)
            {
                if (job.State.Started && tables.Any(t => SameSettings(job.State, NewState(t))))
                {
                    job.State = NewState(new SnapshotTable(job.State.DisplayName));
                    job.Resumed = false;
                }
            }
            Enqueue(tables, withWaiters: false);
        }
        await SaveAsync(cancellationToken).ConfigureAwait(false);
        _wake.Release();
    }

    /// <summary>The slot exists: continue from its checkpoint (snapshots in progress first, then new requests).</summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        var bytes = await _store.LoadAsync(_options.SlotName, cancellationToken).ConfigureAwait(false);
        if (bytes is null)
            return;
        var checkpoint = Checkpoint.Deserialize(bytes, $"of slot \"{_options.SlotName}\"");
        if (checkpoint.Slot != _options.SlotName)
        {
            throw new DBSyncConfigurationException(
                $"The checkpoint store returned a checkpoint of slot \"{checkpoint.Slot}\" for slot \"{_options.SlotName}\". Give each slot its own store or file.");
        }
        lock (_lock)
        {
            var requested = _queue.ToList();
            _queue.Clear();
            _queue.AddRange(checkpoint.Jobs.Select(j => new Job(j) { Resumed = j.Started }));
            foreach (var job in requested)
            {
                if (_queue.FirstOrDefault(j => SameSettings(j.State, job.State)) is { } same)
                    same.Waiters.AddRange(job.Waiters);
                else
                    _queue.Add(job);
            }
            _paused = _pauseRequestedBeforeLoad ?? checkpoint.Paused;
            _lastSignalLsn = checkpoint.LastSignalLsn;
            _finished.Clear();
            _finished.AddRange(checkpoint.Finished);
        }
        Log.CheckpointLoaded(_logger, _options.SlotName, checkpoint.Jobs.Count, new NpgsqlTypes.NpgsqlLogSequenceNumber(checkpoint.ConfirmedLsn).ToString());
    }

    /// <summary>Saves the queue now (a signal's effect must be durable before its transaction is acknowledged, a chunk's
    /// progress before the next chunk).</summary>
    private async Task SaveAsync(CancellationToken cancellationToken)
    {
        MarkUnsaved();
        await SaveIfUnsavedAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The in-memory queue changed and is not saved yet.</summary>
    private void MarkUnsaved()
    {
        lock (_lock)
            _unsaved = true;
    }

    /// <summary>Saves the queue if it changed since the last save that got through; a failed save leaves it unsaved.</summary>
    private async Task SaveIfUnsavedAsync(CancellationToken cancellationToken)
    {
        await _saveGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Checkpoint checkpoint;
            List<Job> saved;
            lock (_lock)
            {
                if (!_unsaved)
                    return;
                _unsaved = false; // a change made while this save runs marks it again
                saved = _queue.Where(j => j.SkipReason is null && !j.Cancel.IsCancellationRequested).ToList();
                checkpoint = new Checkpoint
                {
                    Slot = _options.SlotName,
                    ConfirmedLsn = _confirmedLsn(),
                    SavedAt = DateTime.UtcNow,
                    Paused = _paused,
                    LastSignalLsn = _lastSignalLsn,
                    Jobs = saved.Select(j => j.State).ToList(),
                    Finished = [.. _finished],
                };
            }
            try
            {
                await _store.SaveAsync(_options.SlotName, checkpoint.Serialize(), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                MarkUnsaved();
                throw;
            }
            lock (_lock)
            {
                foreach (var job in saved)
                    job.Saved = true;
            }
        }
        finally
        {
            _saveGate.Release();
        }
    }

    /// <summary>The run ended: close what the default store keeps open (it reopens on the next save).</summary>
    public async Task ReleaseAsync()
    {
        if (_options.CheckpointStore is null && _store is IAsyncDisposable disposable)
            await disposable.DisposeAsync().ConfigureAwait(false);
    }

    // ---- Stream side ----

    /// <summary>Stream side: a transaction committed (its xid is remembered for the visibility fence).</summary>
    public void OnCommitted(uint xid)
    {
        lock (_lock)
            _recent[_recentCount++ % RecentTransactions] = xid;
    }

    /// <summary>Stream side: one of this pipeline's watermark messages. Watermarks of another run are ignored.</summary>
    public ValueTask OnWatermarkAsync(ReadOnlySpan<byte> content, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        if (!Watermark.TryParse(content, out var watermark))
            return default;
        TableRegistration? active;
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

    private async ValueTask HighAsync(TableRegistration table, long window, TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        var outcome = await table.OnHighWatermarkAsync(window, tx, lsn, cancellationToken).ConfigureAwait(false);
        lock (_lock)
            _handledHigh = (window, outcome);
    }

    /// <summary>Stream side: every handler of the transaction just completed (transaction handlers and sinks too). A
    /// chunk counts as delivered, and may be checkpointed, only once the transaction of its high watermark is.</summary>
    public void OnTransactionHandled()
    {
        lock (_lock)
        {
            if (_handledHigh is not var (window, outcome))
                return;
            _handledHigh = null;
            if (_waitingWindow == window)
                _reached?.TrySetResult(outcome);
        }
    }

    // ---- The loop ----

    /// <summary>
    /// Runs queued snapshots until <paramref name="cancellationToken"/> is cancelled (the stream stopped); nothing else
    /// ends it. A table's own failure (a bad filter, a progress handler that throws while the table runs) fails that
    /// table; what is not a table's fault (a lost connection, a checkpoint that cannot be saved) is tried again with
    /// backoff; a progress handler that throws on a notification of no table is logged.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        _runId = Guid.NewGuid().ToString("N")[..12];
        _notifiedPaused = false;
        _busy = false;
        var failures = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                await RunTurnAsync(cancellationToken).ConfigureAwait(false);
                failures = 0;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                failures++;
                var delay = Backoff.Delay(_options.ReconnectDelay, _options.MaxReconnectDelay, failures);
                Log.SnapshotLoopRetried(_logger, e, (long)delay.TotalMilliseconds);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One turn of the loop: settle what was skipped or cancelled, save what is not saved yet, report a pause or
    /// resume, then snapshot the next table (or wait for work).</summary>
    private async Task RunTurnAsync(CancellationToken cancellationToken)
    {
        Job? next;
        bool paused;
        List<Job> settled;
        lock (_lock)
        {
            settled = _queue.Where(j => j.SkipReason is not null || j.Cancel.IsCancellationRequested).ToList();
            _queue.RemoveAll(settled.Contains);
            paused = _paused;
            next = paused ? null : _queue.FirstOrDefault();
        }

        foreach (var job in settled)
            await SettleAsync(job, cancellationToken).ConfigureAwait(false);
        if (paused != _notifiedPaused)
        {
            _notifiedPaused = paused;
            MarkUnsaved();
            if (paused)
                Log.SnapshotsPaused(_logger);
            else
                Log.SnapshotsResumed(_logger);
            await NotifyQuietlyAsync(paused ? new SnapshotsPaused() : new SnapshotsResumed(), cancellationToken).ConfigureAwait(false);
        }
        // A save that failed earlier (the connection was lost just then) is made up here; until it succeeds no table runs.
        await SaveIfUnsavedAsync(cancellationToken).ConfigureAwait(false);

        if (next is null)
        {
            // A paused queue is still busy: its completion is reported after the resume.
            if (_busy && !paused)
            {
                _busy = false;
                await NotifyQuietlyAsync(new SnapshotsCompleted(), cancellationToken).ConfigureAwait(false);
            }
            await _wake.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        _busy = true;
        await RunJobAsync(next, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reports and removes a skipped or cancelled job that is not running: recorded once, and its waiters
    /// complete whatever the progress handlers do.</summary>
    private async Task SettleAsync(Job job, CancellationToken cancellationToken)
    {
        lock (_lock)
            Finish(job, job.SkipReason is null ? SnapshotOutcome.Cancelled : SnapshotOutcome.Skipped, job.SkipReason);
        if (job.SkipReason is { } reason)
        {
            Log.SnapshotSkipped(_logger, job.State.DisplayName, reason);
            await NotifyQuietlyAsync(new SnapshotTableSkipped(job.State.DisplayName, reason), cancellationToken).ConfigureAwait(false);
            job.Complete(null);
        }
        else
        {
            Log.SnapshotCancelled(_logger, job.State.DisplayName);
            await NotifyQuietlyAsync(new SnapshotTableCancelled(job.State.DisplayName), cancellationToken).ConfigureAwait(false);
            job.Complete(new OperationCanceledException(job.Cancel.Token));
        }
    }

    private async Task RunJobAsync(Job job, CancellationToken cancellationToken)
    {
        if (!_tables.TryGetValue((job.State.Schema, job.State.Name), out var table) || table is SignalRegistration)
        {
            var reason = table is SignalRegistration ? "it is the signal table" : await UnmappedReasonAsync(job.State, cancellationToken).ConfigureAwait(false);
            lock (_lock)
                job.SkipReason = reason;
            return; // settled on the next turn of the loop
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, job.Cancel.Token);
        try
        {
            if (!await SnapshotTableAsync(job, table, linked.Token).ConfigureAwait(false))
                return; // paused: the job stays first in the queue
            // Every row is delivered. The notification comes before the outcome is recorded: a handler that throws fails
            // the table, which is then recorded once, as failed.
            await NotifyAsync(new SnapshotTableCompleted(job.State.DisplayName, job.State.Chunks, job.State.RowsRead, job.State.RowsEmitted), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw; // the stream stopped: the job stays queued, with its progress saved
        }
        catch (OperationCanceledException) when (job.Cancel.IsCancellationRequested)
        {
            return; // settled (reported and removed) on the next turn of the loop
        }
        catch (ProgressHandlerException e)
        {
            // A progress handler threw while the table ran (an IOException of its own included): the table's failure.
            await FailAsync(job, e.InnerException!, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (Exception e) when (ConnectionLoss.Is(e))
        {
            // The server restarted or the connection dropped: not the table's fault. The job stays first in the queue and
            // goes on from its last completed chunk once the server answers again.
            var delay = Backoff.Delay(_options.ReconnectDelay, _options.MaxReconnectDelay, ++job.Interruptions);
            Log.SnapshotInterrupted(_logger, e, job.State.DisplayName, (long)delay.TotalMilliseconds);
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (SnapshotTableMissingException e)
        {
            lock (_lock)
                job.SkipReason = e.Message;
            return;
        }
        catch (Exception e)
        {
            await FailAsync(job, e, cancellationToken).ConfigureAwait(false);
            return;
        }

        lock (_lock)
        {
            _queue.Remove(job);
            Finish(job, SnapshotOutcome.Completed, null);
        }
        Log.SnapshotCompleted(_logger, job.State.Description, job.State.RowsEmitted);
        try
        {
            await SaveIfUnsavedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // The rows are delivered whether or not this save got through (one that did not is made up on the next turn;
            // a crash before then reads the last chunk again).
            job.Complete(null);
        }
    }

    /// <summary>The snapshot of this table failed; the stream and the other tables go on. Recorded once; its waiters fault
    /// with the cause whatever happens to the notification and the save.</summary>
    private async Task FailAsync(Job job, Exception e, CancellationToken cancellationToken)
    {
        Log.SnapshotFailed(_logger, e, job.State.DisplayName);
        lock (_lock)
        {
            _queue.Remove(job);
            Finish(job, SnapshotOutcome.Failed, e.Message);
        }
        await NotifyQuietlyAsync(new SnapshotTableFailed(job.State.DisplayName, e), cancellationToken).ConfigureAwait(false);
        try
        {
            await SaveIfUnsavedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            job.Complete(e);
        }
    }

    /// <summary>Why a requested table that no registered type maps is skipped: it may not exist at all.</summary>
    private async Task<string> UnmappedReasonAsync(JobState job, CancellationToken cancellationToken)
    {
        await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = $"{SyncTableInfo.QuoteIdentifier(job.Schema)}.{SyncTableInfo.QuoteIdentifier(job.Name)}" });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!
            ? "no type mapping it is registered (register one with On<T>(...) before RunAsync)"
            : $"table {job.DisplayName} does not exist in database \"{connection.Database}\" (check the name: names are case-sensitive, unquoted SQL names are lower case)";
    }

    /// <summary>The run ended (<see cref="DBSyncClient.RunAsync"/> returned or threw): every request still waiting ends
    /// with <see cref="SnapshotSuspendedException"/>. The snapshots stay queued in the checkpoint and continue on the next
    /// run; requests made after this wait for that run.</summary>
    public void SuspendWaiters()
    {
        List<(Job Job, TaskCompletionSource[] Waiters, bool Saved)> suspended = [];
        lock (_lock)
        {
            foreach (var job in _queue.Where(j => j.Waiters.Count > 0))
            {
                suspended.Add((job, [.. job.Waiters], job.Saved));
                job.Waiters.Clear();
            }
        }
        foreach (var (job, waiters, saved) in suspended)
        {
            var error = new SnapshotSuspendedException(job.State.DisplayName,
                $"The snapshot of {job.State.DisplayName} did not finish: RunAsync of slot \"{_options.SlotName}\" ended first ({job.State.Chunks} chunk(s), " +
                $"{job.State.RowsEmitted} row(s) delivered). " + (saved
                    ? "It is kept in the slot's checkpoint and continues from its last saved chunk when RunAsync runs again on this slot; follow it " +
                      "with OnSnapshotProgress or CheckpointInfo."
                    : "It was not saved in the slot's checkpoint yet: it stays queued in this client and runs when its RunAsync runs again; " +
                      "another process must request it again."));
            foreach (var waiter in waiters)
                waiter.TrySetException(error);
        }
    }

    /// <summary>Remembers how a job ended, for the checkpoint (the most recent ones). Caller holds the lock.</summary>
    private void Finish(Job job, SnapshotOutcome outcome, string? detail)
    {
        _unsaved = true;
        if (_finished.Count == Checkpoint.MaxFinished)
            _finished.RemoveAt(0);
        _finished.Add(new FinishedSnapshot(job.State.DisplayName, outcome, job.State.Chunks, job.State.RowsRead, job.State.RowsEmitted, DateTime.UtcNow, detail));
    }

    /// <summary>Snapshots one table from where its job stands; false when it stopped for a pause.</summary>
    private async Task<bool> SnapshotTableAsync(Job job, TableRegistration table, CancellationToken cancellationToken)
    {
        await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        // Watermarks must reach the WAL without waiting for synchronous standbys.
        await ExecuteAsync(connection, "SET synchronous_commit = local", cancellationToken).ConfigureAwait(false);
        var query = await SnapshotQuery.CreateAsync(connection, table.Table, job.State, cancellationToken).ConfigureAwait(false);
        if (!job.State.Started)
        {
            lock (_lock)
                job.State = job.State with { Started = true, MaxKey = query.MaxKey };
            await SaveAsync(cancellationToken).ConfigureAwait(false);
        }

        var estimate = await EstimateRowsAsync(connection, table.Table, cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            _active = table;
            _activeFirstWindow = Interlocked.Read(ref _windowSequence) + 1;
            _activeProgress = (job.State.DisplayName, job.State.RowsRead, estimate);
        }
        table.BeginSnapshot(_options.SnapshotWindowMaxChanges, _activeFirstWindow);
        try
        {
            await FenceAsync(connection, table, cancellationToken).ConfigureAwait(false);
            Log.SnapshotStarted(_logger, job.State.Description, query.MaxKey is null ? "(empty)" : KeyText.Format(query.MaxKey),
                job.State.LastKey is null ? "the start" : KeyText.Format(job.State.LastKey));
            await NotifyAsync(new SnapshotTableStarted(job.State.DisplayName, query.MaxKey, job.Resumed, job.State.LastKey), cancellationToken).ConfigureAwait(false);
            job.Resumed = true; // after a pause it continues, too

            var chunkSize = _options.SnapshotChunkSize;
            // The chunk after the one being delivered, read while the stream delivers that one: its low watermark is
            // written after the other's high one, so their windows follow each other in the stream.
            OpenChunk? next = null;
            while (query.MaxKey is not null && !job.Done)
            {
                bool paused;
                lock (_lock)
                    paused = _paused;
                if (paused)
                {
                    // Every low watermark written gets its high one before the window goes: a later window of this
                    // table must not find this one open.
                    if (next is not null)
                        await DiscardAsync(connection, table, next, cancellationToken).ConfigureAwait(false);
                    return false;
                }
                cancellationToken.ThrowIfCancellationRequested();

                var chunk = job.State.Chunks + 1;
                int emitted, attempts = 0;
                OpenChunk read;
                while (true)
                {
                    attempts++;
                    read = next ?? await ReadAsync(connection, table, query, job, job.State.LastKey, chunkSize, chunk, cancellationToken).ConfigureAwait(false);
                    next = null;
                    var delivered = await EmitHighAsync(connection, read.Window, cancellationToken).ConfigureAwait(false);
                    if (!IsLast(query, read, chunkSize))
                    {
                        await PaceAsync(connection, job.State.DisplayName, chunk, read.ReadTime, cancellationToken).ConfigureAwait(false);
                        next = await ReadAsync(connection, table, query, job, read.Last, chunkSize, chunk + 1, cancellationToken).ConfigureAwait(false);
                    }
                    var outcome = await delivered.WaitAsync(cancellationToken).ConfigureAwait(false);
                    emitted = outcome.Emitted;
                    if (outcome.FollowUp == ChunkFollowUp.None)
                        break;

                    // The shape changed, or the window filled up: read the chunk again once every transaction the window
                    // could not record is visible, so that the new chunk reflects them. The chunk read after it is given
                    // up (it is read again after this one), and what its own window could not record is waited for too.
                    var waitFor = outcome.WaitFor;
                    if (next is not null)
                        waitFor = [.. waitFor, .. await DiscardAsync(connection, table, next, cancellationToken).ConfigureAwait(false)];
                    next = null;
                    if (waitFor.Length > 0)
                        Log.ChunkRereadAfterOverflow(_logger, job.State.DisplayName, chunk, _options.SnapshotWindowMaxChanges, waitFor.Length);
                    else
                        Log.ChunkReread(_logger, job.State.DisplayName, chunk);
                    await WaitUntilVisibleAsync(connection, waitFor, cancellationToken).ConfigureAwait(false);
                }

                var (count, last) = (read.Count, read.Last);
                lock (_lock)
                {
                    job.State = job.State with
                    {
                        Chunks = chunk,
                        LastKey = last ?? job.State.LastKey,
                        RowsRead = job.State.RowsRead + count,
                        RowsEmitted = job.State.RowsEmitted + emitted,
                    };
                    job.Done = IsLast(query, read, chunkSize);
                    _activeProgress = (job.State.DisplayName, job.State.RowsRead, estimate);
                }
                if (table.MetricTags is { } tags)
                {
                    Telemetry.SnapshotRows.Add(count, tags.TableTags);
                    Telemetry.SnapshotChunks.Add(1, tags.TableTags);
                }
                // The chunk is delivered: it is reported before the checkpoint is saved, since a save that the stream's
                // end cancels (or a restart breaks) leaves the job in memory past this chunk, and the next session goes
                // on from there without reporting it again.
                Log.ChunkCompleted(_logger, job.State.DisplayName, chunk, count, emitted);
                await NotifyAsync(new SnapshotChunkCompleted(job.State.DisplayName, chunk, count, emitted, last, attempts), cancellationToken).ConfigureAwait(false);
                await SaveAsync(cancellationToken).ConfigureAwait(false);
            }
            return true;
        }
        finally
        {
            table.EndSnapshot();
            lock (_lock)
            {
                _active = null;
                _activeProgress = null;
            }
        }
    }

    /// <summary>
    /// The pause before the next chunk: <see cref="DBSyncOptions.SnapshotChunkDelay"/>, plus, while other sessions are
    /// running statements or hold transactions open, enough to keep the snapshot to <see cref="DBSyncOptions.SnapshotBusyShare"/>
    /// of the time. Autovacuum, walsenders and idle sessions do not count.
    /// </summary>
    private async Task PaceAsync(NpgsqlConnection connection, string table, long chunk, TimeSpan chunkTime, CancellationToken cancellationToken)
    {
        var delay = _options.SnapshotChunkDelay;
        var share = _options.SnapshotBusyShare;
        if (share < 1)
        {
            await using var command = new NpgsqlCommand(
                """
                SELECT count(*) FILTER (WHERE state IS NOT NULL AND state <> 'idle'),
                       count(*) FILTER (WHERE state IS NULL)
                FROM pg_stat_activity
                WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                """, connection);
            long busy, hidden;
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                busy = reader.GetInt64(0);
                hidden = reader.GetInt64(1);
            }
            if (hidden > 0 && !_warnedHidden)
            {
                _warnedHidden = true;
                Log.SessionsHidden(_logger, table, hidden);
            }
            if (busy > 0)
            {
                delay += chunkTime * ((1 - share) / share);
                Log.SnapshotThrottled(_logger, table, chunk, (long)delay.TotalMilliseconds, busy);
            }
        }
        if (delay > TimeSpan.Zero)
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A watermark pair with no rows. Once the stream passes it, every change of the table delivered after it is recorded
    /// by the window. Changes delivered before it were not, so wait until the transactions behind them are visible to new
    /// snapshots (a transaction can be decoded while its backend still waits for a synchronous standby); from then on no
    /// chunk can be older than a change already delivered.
    /// </summary>
    private async Task FenceAsync(NpgsqlConnection connection, TableRegistration table, CancellationToken cancellationToken)
    {
        var window = Interlocked.Increment(ref _windowSequence);
        await EmitAsync(connection, new Watermark(WatermarkKind.Low, _runId, window), cancellationToken).ConfigureAwait(false);
        table.SetFence(window, SnapshotVisibility.Parse(await ScalarAsync(connection, "SELECT pg_current_snapshot()::text", cancellationToken).ConfigureAwait(false)));
        var passed = await EmitHighAsync(connection, window, cancellationToken).ConfigureAwait(false);
        await passed.WaitAsync(cancellationToken).ConfigureAwait(false);

        uint[] delivered;
        lock (_lock)
            delivered = _recent.Take(Math.Min(_recentCount, RecentTransactions)).ToArray();
        await WaitUntilVisibleAsync(connection, delivered, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits until new snapshots see every transaction in <paramref name="xids"/> (delivered ones, whose backends
    /// may still wait for a synchronous standby).</summary>
    private static async Task WaitUntilVisibleAsync(NpgsqlConnection connection, uint[] xids, CancellationToken cancellationToken)
    {
        while (xids.Length > 0)
        {
            var visibility = SnapshotVisibility.Parse(await ScalarAsync(connection, "SELECT pg_current_snapshot()::text", cancellationToken).ConfigureAwait(false));
            if (xids.All(visibility.Sees))
                return;
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A chunk read between its low watermark and a high one not yet written.</summary>
    private sealed record OpenChunk(long Window, int Count, IReadOnlyList<string>? Last, TimeSpan ReadTime);

    /// <summary>Writes a low watermark and reads the chunk after <paramref name="lastKey"/> (the window then holds it).</summary>
    private async Task<OpenChunk> ReadAsync(NpgsqlConnection connection, TableRegistration table, SnapshotQuery query, Job job,
        IReadOnlyList<string>? lastKey, int chunkSize, long chunk, CancellationToken cancellationToken)
    {
        var readTime = Stopwatch.StartNew();
        var window = Interlocked.Increment(ref _windowSequence);
        await EmitAsync(connection, new Watermark(WatermarkKind.Low, _runId, window), cancellationToken).ConfigureAwait(false);
        var (count, last) = await table.ReadChunkAsync(connection, query, lastKey, chunkSize, window, cancellationToken).ConfigureAwait(false);
        var read = new OpenChunk(window, count, last, readTime.Elapsed);
        if (AfterChunkRead is { } hook)
            await hook(job.State.DisplayName, chunk, cancellationToken).ConfigureAwait(false);
        return read;
    }

    /// <summary>A short chunk, or one that reached the maximum key, is the last (no empty round to find out).</summary>
    private static bool IsLast(SnapshotQuery query, OpenChunk chunk, int chunkSize)
        => chunk.Count < chunkSize || (chunk.Last is not null && chunk.Last.SequenceEqual(query.MaxKey!));

    /// <summary>Gives up a chunk read ahead: its high watermark closes its window with nothing emitted.</summary>
    /// <remarks>Returns the transactions its window could not record (it filled up): whatever is read next must wait for them.</remarks>
    private async Task<uint[]> DiscardAsync(NpgsqlConnection connection, TableRegistration table, OpenChunk chunk, CancellationToken cancellationToken)
    {
        table.DiscardChunk(chunk.Window);
        var closed = await EmitHighAsync(connection, chunk.Window, cancellationToken).ConfigureAwait(false);
        return (await closed.WaitAsync(cancellationToken).ConfigureAwait(false)).WaitFor;
    }

    /// <summary>Writes the high watermark; the task completes when the stream has passed it and every handler of its
    /// transaction completed, with the rows emitted and what is left to do.</summary>
    private async Task<Task<ChunkOutcome>> EmitHighAsync(NpgsqlConnection connection, long window, CancellationToken cancellationToken)
    {
        var reached = new TaskCompletionSource<ChunkOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _waitingWindow = window;
            _reached = reached;
        }
        await EmitAsync(connection, new Watermark(WatermarkKind.High, _runId, window), cancellationToken).ConfigureAwait(false);
        return reached.Task;
    }

    /// <summary>The server's row estimate for the table (<c>pg_class.reltuples</c>; -1 before its first VACUUM or ANALYZE).</summary>
    private static async Task<long> EstimateRowsAsync(NpgsqlConnection connection, SyncTableInfo table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = table.QualifiedName });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long estimate ? estimate : -1;
    }

    /// <summary>A notification of the table being snapshotted: a handler that throws fails the table
    /// (<see cref="ProgressHandlerException"/>, so that its own I/O errors are not taken for a lost connection).</summary>
    private async Task NotifyAsync(SnapshotProgress progress, CancellationToken cancellationToken)
    {
        foreach (var handler in _progressHandlers)
        {
            try
            {
                await handler(progress, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                throw new ProgressHandlerException(e);
            }
        }
    }

    /// <summary>A notification that can fail nothing (the outcome it reports is settled, or it concerns no table): every
    /// handler is called, one that throws is logged, and it never throws itself, so the outcome it reports reaches the
    /// waiters in any case. Once the run is ending, what is left of it is not sent.</summary>
    private async Task NotifyQuietlyAsync(SnapshotProgress progress, CancellationToken cancellationToken)
    {
        foreach (var handler in _progressHandlers)
        {
            if (cancellationToken.IsCancellationRequested)
                return;
            try
            {
                await handler(progress, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                Log.ProgressHandlerFailed(_logger, e, progress.GetType().Name);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private Task EmitAsync(NpgsqlConnection connection, Watermark watermark, CancellationToken cancellationToken)
        => LogicalMessages.EmitAsync(connection, Prefix, watermark.Content, cancellationToken);

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<string> ScalarAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (string)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>One table's snapshot in the queue: its persisted state, plus what only this process knows.</summary>
    private sealed class Job(JobState state)
    {
        public JobState State { get; set; } = state;

        public List<TaskCompletionSource> Waiters { get; } = [];

        public CancellationTokenSource Cancel { get; } = new();

        public string? SkipReason { get; set; }

        /// <summary>Whether the table's snapshot had started before (in an earlier run, or before a pause).</summary>
        public bool Resumed { get; set; }

        /// <summary>Lost connections in a row while the table ran (the backoff's attempt).</summary>
        public int Interruptions { get; set; }

        /// <summary>Whether a save of the checkpoint that got through included the job.</summary>
        public bool Saved { get; set; }

        public bool Done { get; set; }

        public void Complete(Exception? error)
        {
            foreach (var waiter in Waiters)
            {
                if (error is OperationCanceledException cancelled)
                    waiter.TrySetCanceled(cancelled.CancellationToken);
                else if (error is not null)
                    waiter.TrySetException(error);
                else
                    waiter.TrySetResult();
            }
        }
    }
}

/// <summary>The table of a snapshot request does not exist (any more): the request is reported and skipped.</summary>
internal sealed class SnapshotTableMissingException(string message) : Exception(message);

/// <summary>A progress handler threw while its table was being snapshotted: that table's failure (never taken for a lost
/// connection, even when the handler's own I/O failed).</summary>
internal sealed class ProgressHandlerException(Exception inner) : Exception(inner.Message, inner);
