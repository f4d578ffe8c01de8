namespace DBSync.Internal;

/// <summary>
/// The two ways one run of <see cref="DBSyncClient.RunAsync"/> is told to end. <see cref="Stopping"/> asks it to stop
/// after the transaction being delivered (the stream, setup, reconnects and snapshots watch it); <see cref="Aborting"/>
/// is the token handlers receive, cancelled only when the stop may no longer be graceful. Cancelling the token given to
/// RunAsync cancels both; <see cref="DBSyncClient.StopAsync"/> cancels the first, and the second only if its own token
/// is cancelled before the run has ended.
/// </summary>
internal sealed class RunControl : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly CancellationTokenSource _abort;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private bool _disposed;

    public RunControl(CancellationToken cancellationToken)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    }

    /// <summary>Cancelled when the run should stop after the transaction being delivered.</summary>
    public CancellationToken Stopping => _stop.Token;

    /// <summary>Cancelled when handlers should give up: the stop is no longer graceful.</summary>
    public CancellationToken Aborting => _abort.Token;

    /// <summary>Completes when the run has ended, whichever way.</summary>
    public Task Ended => _ended.Task;

    public void RequestStop() => Cancel(_stop);

    public void Abort()
    {
        Cancel(_stop);
        Cancel(_abort);
    }

    // Under the lock so that a stop requested from another thread never meets a disposed source.
    private void Cancel(CancellationTokenSource source)
    {
        lock (_lock)
        {
            if (!_disposed)
                source.Cancel();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _stop.Dispose();
            _abort.Dispose();
        }
        _ended.TrySetResult();
    }
}
