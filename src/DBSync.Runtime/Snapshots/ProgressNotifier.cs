using DBSync.Internal;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>Calls the <see cref="DBSyncClient.OnSnapshotProgress(Func{SnapshotProgress, CancellationToken, ValueTask})"/>
/// handlers.</summary>
internal sealed class ProgressNotifier(IReadOnlyList<Func<SnapshotProgress, CancellationToken, ValueTask>> handlers, ILogger logger)
{
    /// <summary>A notification of the table being snapshotted: a handler that throws fails the table
    /// (<see cref="ProgressHandlerException"/>, so that its own I/O errors are not taken for a lost connection).</summary>
    public async Task NotifyAsync(SnapshotProgress progress, CancellationToken cancellationToken)
    {
        foreach (var handler in handlers)
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
    public async Task NotifyQuietlyAsync(SnapshotProgress progress, CancellationToken cancellationToken)
    {
        foreach (var handler in handlers)
        {
            if (cancellationToken.IsCancellationRequested)
                return;
            try
            {
                await handler(progress, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                Log.ProgressHandlerFailed(logger, e, progress.GetType().Name);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
