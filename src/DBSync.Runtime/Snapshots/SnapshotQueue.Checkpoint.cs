using DBSync.Checkpoints;

namespace DBSync.Snapshots;

/// <summary>The queue as the checkpoint: what is saved, what was saved, and what a loaded checkpoint restores.</summary>
internal sealed partial class SnapshotQueue
{
    /// <summary>A new slot: signals and outcomes of an earlier slot are forgotten; with <paramref name="initialSnapshot"/>,
    /// every registered table is queued first, before anything requested while the slot did not exist.
    /// <paramref name="startedOver"/>, when the earlier slot was lost, goes to the progress handlers before the first table.</summary>
    public void ResetForNewSlot(bool initialSnapshot, SlotStartedOver? startedOver = null)
    {
        lock (_lock)
        {
            _lastSignalLsn = 0;
            _finished.Clear();
            _startedOver = startedOver;
            if (initialSnapshot)
            {
                var jobs = Enqueue(EveryRegisteredTable(), withWaiters: false);
                _jobs.RemoveAll(jobs.Contains);
                _jobs.InsertRange(0, jobs);
            }
        }
    }

    /// <summary>Continues from a saved checkpoint: its snapshots first (in progress ones resume), then those requested
    /// before it was loaded.</summary>
    public void Restore(Checkpoint checkpoint, bool takingOver = false)
    {
        lock (_lock)
        {
            // Taking over from another instance, the queue this one loaded when it started is stale: only requests made
            // here since (SnapshotAsync, awaited) are kept.
            var requested = takingOver ? _jobs.Where(j => j.Waiters.Count > 0).ToList() : _jobs.ToList();
            _jobs.Clear();
            _jobs.AddRange(checkpoint.Jobs.Select(j => new SnapshotJob(j)));
            foreach (var job in requested)
            {
                if (_jobs.FirstOrDefault(j => SameSettings(j.State, job.State)) is { } same)
                    same.Waiters.AddRange(job.Waiters);
                else
                    _jobs.Add(job);
            }
            _paused = _pauseRequestedBeforeLoad ?? checkpoint.Paused;
            _lastSignalLsn = checkpoint.LastSignalLsn;
            _finished.Clear();
            _finished.AddRange(checkpoint.Finished);
            _partitions = _restoredPartitions = checkpoint.Partitions;
        }
    }

    /// <summary>The partitions the loaded checkpoint recorded, once (what the partition watcher compares its next reading
    /// with); null when none was loaded since the last call, or it recorded none.</summary>
    public IReadOnlyList<SavedPartition>? TakeRestoredPartitions()
    {
        lock (_lock)
        {
            var restored = _restoredPartitions;
            _restoredPartitions = null;
            return restored;
        }
    }

    /// <summary>Records the partitions of the watcher's last reading: saved with the checkpoint, at once when they changed
    /// (the snapshot loop's next turn).</summary>
    public void RecordPartitions(IReadOnlyList<SavedPartition> partitions)
    {
        lock (_lock)
        {
            if (_partitions is not null && _partitions.SequenceEqual(partitions))
                return;
            _partitions = partitions;
            _unsaved = true;
        }
        Wake();
    }

    /// <summary>The notification that the slot was started over, once; null when there is none (any more).</summary>
    public SlotStartedOver? TakeStartedOver()
    {
        lock (_lock)
        {
            var startedOver = _startedOver;
            _startedOver = null;
            return startedOver;
        }
    }

    /// <summary>The queue changed and is not saved yet.</summary>
    public void MarkUnsaved()
    {
        lock (_lock)
            _unsaved = true;
    }

    /// <summary>The checkpoint to save if the queue changed since the last save, with the jobs it holds; a change made
    /// while it is saved marks the queue again.</summary>
    public Checkpoint? TakeUnsaved(string slot, Func<ulong> confirmedLsn, out List<SnapshotJob> saved)
    {
        lock (_lock)
        {
            saved = [];
            if (!_unsaved)
                return null;
            _unsaved = false;
            saved = _jobs.Where(j => !j.Settled).ToList();
            return new Checkpoint
            {
                Slot = slot,
                ConfirmedLsn = confirmedLsn(),
                SavedAt = DateTime.UtcNow,
                Paused = _paused,
                LastSignalLsn = _lastSignalLsn,
                Jobs = saved.Select(j => j.State).ToList(),
                Finished = [.. _finished],
                Partitions = _partitions,
            };
        }
    }

    public void MarkSaved(List<SnapshotJob> saved)
    {
        lock (_lock)
        {
            foreach (var job in saved)
                job.Saved = true;
        }
    }
}
