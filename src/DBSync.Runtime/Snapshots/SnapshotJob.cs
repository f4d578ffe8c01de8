using DBSync.Checkpoints;

namespace DBSync.Snapshots;

/// <summary>One table's snapshot in the queue: its persisted state, plus what only this process knows.</summary>
internal sealed class SnapshotJob(JobState state)
{
    /// <summary>Changed under the queue's lock (<see cref="SnapshotQueue.SetState"/>), which the checkpoint is taken under.</summary>
    public JobState State { get; set; } = state;

    public List<TaskCompletionSource> Waiters { get; } = [];

    public CancellationTokenSource Cancel { get; } = new();

    public string? SkipReason { get; set; }

    /// <summary>Lost connections in a row while the table ran (the backoff's attempt).</summary>
    public int Interruptions { get; set; }

    /// <summary>Whether a save of the checkpoint that got through included the job.</summary>
    public bool Saved { get; set; }

    /// <summary>Skipped or cancelled: reported and removed by the loop's next turn.</summary>
    public bool Settled => SkipReason is not null || Cancel.IsCancellationRequested;

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
