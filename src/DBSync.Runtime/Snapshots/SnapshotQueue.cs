using DBSync.Checkpoints;
using DBSync.Internal;
using DBSync.Replication;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// What to snapshot and in which order: requests (API calls, the signal table, partitions), pause and cancellation, and
/// how the last snapshots ended. Any thread may change it; everything is under one lock, and the loop acts on it between
/// chunks. The queue is the pipeline's checkpoint: it knows whether it changed since the last save
/// (<c>SnapshotQueue.Checkpoint.cs</c>).
/// </summary>
internal sealed partial class SnapshotQueue(IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables, ILogger logger)
{
    /// <summary>The kind of the internal signal that a DDL statement that rewrote a mapped table's rows raises
    /// (<see cref="DBSyncOptions.SnapshotAfterRewrite"/>); not a kind the signal table accepts.</summary>
    internal const string SnapshotAfterRewriteKind = "snapshot after rewrite";

    private readonly object _lock = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly List<SnapshotJob> _jobs = [];
    private readonly List<FinishedSnapshot> _finished = [];
    private bool _paused;
    private bool? _pauseRequestedBeforeLoad;
    private ulong _lastSignalLsn;
    private bool _unsaved;
    private IReadOnlyList<SavedPartition>? _partitions;
    private IReadOnlyList<SavedPartition>? _restoredPartitions;
    private SlotStartedOver? _startedOver;
    private SnapshotJob? _running;
    private long _runningEstimate;

    /// <summary>Tables queued for a snapshot or being snapshotted.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
                return _jobs.Count;
        }
    }

    public bool Paused
    {
        get
        {
            lock (_lock)
                return _paused;
        }
    }

    /// <summary>The table being snapshotted and the share of it read so far, against the server's row estimate when its
    /// snapshot started (at most 1); null when none is running or the server has no estimate (a table never analyzed).</summary>
    public (string Table, double Share)? RunningProgress
    {
        get
        {
            lock (_lock)
            {
                return _running is { } job && _runningEstimate > 0
                    ? (job.State.DisplayName, Math.Min(1, job.State.RowsRead / (double)_runningEstimate))
                    : null;
            }
        }
    }

    // ---- Requests (any thread) ----

    /// <summary>Queues snapshots of <paramref name="requested"/>; the task completes when each is done or skipped, faults if
    /// one failed, and is cancelled if one was cancelled (also through <paramref name="cancellationToken"/>).</summary>
    public Task RequestAsync(IEnumerable<SnapshotTable> requested, CancellationToken cancellationToken)
    {
        var waits = new List<Task>();
        var jobs = new List<SnapshotJob>();
        lock (_lock)
        {
            foreach (var job in Enqueue(requested, withWaiters: true))
            {
                jobs.Add(job);
                waits.Add(job.Waiters[^1].Task);
            }
            _unsaved = true; // saved by the loop's next turn or chunk
        }
        if (jobs.Count > 0)
            Log.SnapshotRequested(logger, string.Join(", ", jobs.Select(j => j.State.DisplayName)));
        Wake();
        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.Register(() => CancelJobs(jobs));
            _ = Task.WhenAll(waits).ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
        }
        return Task.WhenAll(waits);
    }

    /// <summary>Pauses after the chunk in flight, or resumes (persisted: a restart stays paused until resumed).</summary>
    public void SetPaused(bool paused)
    {
        lock (_lock)
        {
            _paused = paused;
            _pauseRequestedBeforeLoad = paused;
        }
        Wake();
    }

    /// <summary>Cancels the snapshots of <paramref name="names"/> (<c>schema.name</c> or <c>name</c>), or of every table when empty.</summary>
    public void Cancel(IReadOnlyCollection<string> names)
    {
        lock (_lock)
            CancelJobs(SnapshotsOf(names));
    }

    /// <summary>
    /// Rows left <paramref name="table"/> without delete events and are now in <paramref name="source"/> (a partition
    /// detached with its rows): queues a job that reads them there, by key, and delivers as deletes the rows the table does
    /// not have, in DBLog windows like a snapshot's chunks (a key the stream changes meanwhile is left to the stream). It
    /// goes right after the table being snapshotted, if any.
    /// </summary>
    public void RequestDeletesOfRowsThatLeft(SyncTableInfo table, string source)
    {
        var job = new SnapshotJob(new JobState { Schema = table.Schema, Name = table.Name, DeletesFrom = source });
        lock (_lock)
        {
            if (_jobs.Any(j => !j.Settled && SameSettings(j.State, job.State)))
                return;
            _jobs.Insert(_running is null || _jobs.Count == 0 ? 0 : 1, job);
            _unsaved = true;
        }
        Log.SnapshotRequested(logger, job.State.Description);
        Wake();
    }

    /// <summary>Acts on the signal-table rows of one committed transaction, once: a transaction replayed after a restart
    /// is recognised by its commit LSN (false: nothing done).</summary>
    public bool ApplySignals(IReadOnlyList<Signal> signals, ulong commitLsn)
    {
        lock (_lock)
        {
            if (commitLsn <= _lastSignalLsn)
                return false;
            _lastSignalLsn = commitLsn;
            foreach (var signal in signals)
            {
                if (signal.Kind != SnapshotAfterRewriteKind)
                    Log.SignalReceived(logger, signal.Id, signal.Kind); // the follower logs its own (2035)
                switch (signal.Kind)
                {
                    case SnapshotAfterRewriteKind:
                        // The rows' values changed without row changes: a snapshot that already delivered some of them
                        // (with the old values) does not do; one that has not started does.
                        Enqueue(signal.Tables.Select(t => new SnapshotTable(t)), withWaiters: false, joinStarted: false);
                        break;
                    case "snapshot":
                        if (signal.Tables.Count == 0)
                            Log.SignalIgnored(logger, signal.Id, "a snapshot signal needs at least one table in 'tables'");
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
                        Log.SignalIgnored(logger, signal.Id, $"unknown kind '{signal.Kind}' (use snapshot, pause, resume or cancel)");
                        break;
                }
            }
        }
        return true;
    }

    /// <summary>Every registered table is snapshotted, from its first chunk (a snapshot of it in progress from an earlier
    /// run starts over).</summary>
    public void QueueEveryTableFromTheStart()
    {
        lock (_lock)
        {
            var every = EveryRegisteredTable();
            foreach (var job in _jobs)
            {
                if (job.State.Started && every.Any(t => SameSettings(job.State, NewState(t))))
                {
                    job.State = NewState(new SnapshotTable(job.State.DisplayName));
                }
            }
            Enqueue(every, withWaiters: false);
        }
    }

    /// <summary>Lets the loop run its next turn.</summary>
    public void Wake() => _wake.Release();

    /// <summary>Waits until something changed (a request, a pause, a cancellation).</summary>
    public Task WaitAsync(CancellationToken cancellationToken) => _wake.WaitAsync(cancellationToken);

    // ---- The loop's ----

    /// <summary>Removes the skipped and cancelled jobs (to be reported), and names the next job to run: the first, unless
    /// paused.</summary>
    public (List<SnapshotJob> Settled, SnapshotJob? Next, bool Paused) TakeTurn()
    {
        lock (_lock)
        {
            var settled = _jobs.Where(j => j.Settled).ToList();
            _jobs.RemoveAll(settled.Contains);
            return (settled, _paused ? null : _jobs.FirstOrDefault(), _paused);
        }
    }

    /// <summary>The job will not run: reported and removed on the loop's next turn.</summary>
    public void Skip(SnapshotJob job, string reason)
    {
        lock (_lock)
            job.SkipReason = reason;
    }

    public void SetState(SnapshotJob job, JobState state)
    {
        lock (_lock)
            job.State = state;
    }

    /// <summary><paramref name="job"/> runs, against a server estimate of <paramref name="estimate"/> rows.</summary>
    public void BeginRunning(SnapshotJob job, long estimate)
    {
        lock (_lock)
            (_running, _runningEstimate) = (job, estimate);
    }

    public void EndRunning()
    {
        lock (_lock)
            _running = null;
    }

    /// <summary>Removes <paramref name="job"/> and remembers how it ended, for the checkpoint (the most recent ones).</summary>
    public void Finish(SnapshotJob job, SnapshotOutcome outcome, string? detail)
    {
        lock (_lock)
        {
            _jobs.Remove(job);
            _unsaved = true;
            if (_finished.Count == Checkpoint.MaxFinished)
                _finished.RemoveAt(0);
            _finished.Add(new FinishedSnapshot(job.State.DisplayName, outcome, job.State.Chunks, job.State.RowsRead, job.State.RowsEmitted, DateTime.UtcNow, detail));
        }
    }

    /// <summary>The run of slot <paramref name="slot"/> ended: every request still waiting ends with
    /// <see cref="SnapshotSuspendedException"/>. The snapshots stay queued in the checkpoint and continue on the next run;
    /// requests made after this wait for that run.</summary>
    public void SuspendWaiters(string slot)
    {
        List<(SnapshotJob Job, TaskCompletionSource[] Waiters, bool Saved)> suspended = [];
        lock (_lock)
        {
            foreach (var job in _jobs.Where(j => j.Waiters.Count > 0))
            {
                suspended.Add((job, [.. job.Waiters], job.Saved));
                job.Waiters.Clear();
            }
        }
        foreach (var (job, waiters, saved) in suspended)
        {
            var error = new SnapshotSuspendedException(job.State.DisplayName,
                $"The snapshot of {job.State.DisplayName} did not finish: RunAsync of slot \"{slot}\" ended first ({job.State.Chunks} chunk(s), " +
                $"{job.State.RowsEmitted} row(s) delivered). " + (saved
                    ? "It is kept in the slot's checkpoint and continues from its last saved chunk when RunAsync runs again on this slot; follow it " +
                      "with OnSnapshotProgress or CheckpointInfo."
                    : "It was not saved in the slot's checkpoint yet: it stays queued in this client and runs when its RunAsync runs again; " +
                      "another process must request it again."));
            foreach (var waiter in waiters)
                waiter.TrySetException(error);
        }
    }

    // ---- Under the lock ----

    /// <summary>The queued snapshots of <paramref name="names"/> (<c>schema.name</c> or <c>name</c>), or all when empty. Jobs
    /// that deliver the rows a table lost (<see cref="JobState.DeletesFrom"/>) are not snapshots: cancelling snapshots
    /// leaves them be, since without them those rows would stay in the consumers.</summary>
    private List<SnapshotJob> SnapshotsOf(IReadOnlyCollection<string> names)
    {
        var qualified = names.Select(t => new SnapshotTable(t).QualifiedName()).ToHashSet();
        return _jobs.Where(j => j.State.DeletesFrom is null && (qualified.Count == 0 || qualified.Contains((j.State.Schema, j.State.Name)))).ToList();
    }

    private void CancelJobs(List<SnapshotJob> jobs)
    {
        lock (_lock)
        {
            foreach (var job in jobs)
                job.Cancel.Cancel();
        }
        Wake();
    }

    /// <summary>Adds jobs for <paramref name="requested"/>: a table listed twice in one request, or queued already with the
    /// same settings, is snapshotted once.</summary>
    /// <param name="requested">The tables.</param>
    /// <param name="withWaiters">Whether the caller waits for them (each job gets a waiter).</param>
    /// <param name="joinStarted">Whether a request joins a snapshot of the same table that has already delivered chunks
    /// (else it is queued after it).</param>
    private List<SnapshotJob> Enqueue(IEnumerable<SnapshotTable> requested, bool withWaiters, bool joinStarted = true)
    {
        var added = new List<SnapshotJob>();
        var seen = new HashSet<(string, string)>();
        foreach (var table in requested)
        {
            ArgumentNullException.ThrowIfNull(table);
            var state = NewState(table);
            var job = new SnapshotJob(state);
            if (!seen.Add((state.Schema, state.Name)))
            {
                job.SkipReason = "listed more than once in one request; it is snapshotted once";
            }
            else if (_jobs.FirstOrDefault(j => !j.Settled && (joinStarted || !j.State.Started) && SameSettings(j.State, state)) is { } queued)
            {
                if (withWaiters)
                    queued.Waiters.Add(NewWaiter());
                added.Add(queued);
                continue;
            }
            if (withWaiters)
                job.Waiters.Add(NewWaiter());
            _jobs.Add(job);
            added.Add(job);
        }
        return added;
    }

    /// <summary>A snapshot of every table a registered type maps.</summary>
    private List<SnapshotTable> EveryRegisteredTable()
        => tables.Values.Where(t => t.Snapshot is not null).Select(t => new SnapshotTable(t.Table.DisplayName)).ToList();

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
}
