using DBSync.Checkpoints;
using DBSync.Internal;
using DBSync.Replication;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// Runs the queued snapshots one at a time beside the stream and settles how each ends: completed, failed, skipped or
/// cancelled (reported, recorded in the checkpoint, its waiters completed), or interrupted by a lost connection (kept
/// first in the queue, tried again with backoff).
/// </summary>
internal sealed class SnapshotLoop(
    DBSyncOptions options,
    IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables,
    SnapshotQueue queue,
    SnapshotCheckpointer checkpointer,
    WatermarkChannel channel,
    TableSnapshotRunner runner,
    ProgressNotifier notifier,
    Func<CancellationToken, Task<ISnapshotSql>> openSql,
    ILogger logger)
{
    private bool _notifiedPaused; // the last pause state reported
    private bool _busy; // a table ran since SnapshotsCompleted was last reported

    /// <summary>
    /// Runs queued snapshots until <paramref name="cancellationToken"/> is cancelled (the stream stopped); nothing else
    /// ends it. A table's own failure (a bad filter, a progress handler that throws while the table runs) fails that
    /// table; what is not a table's fault (a lost connection, a checkpoint that cannot be saved) is tried again with
    /// backoff; a progress handler that throws on a notification of no table is logged.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        channel.StartRun();
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
                var delay = Backoff.Delay(options.ReconnectDelay, options.MaxReconnectDelay, failures);
                if (e is SlotNotHeldException)
                    Log.CheckpointFenced(logger, e.Message, (long)delay.TotalMilliseconds); // no trace: not a failure
                else
                    Log.SnapshotLoopRetried(logger, e, (long)delay.TotalMilliseconds);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One turn of the loop: settle what was skipped or cancelled, save what is not saved yet, report a pause or
    /// resume, then snapshot the next table (or wait for work).</summary>
    private async Task RunTurnAsync(CancellationToken cancellationToken)
    {
        if (queue.TakeStartedOver() is { } startedOver)
            await notifier.NotifyQuietlyAsync(startedOver, cancellationToken).ConfigureAwait(false);
        var (settled, next, paused) = queue.TakeTurn();
        foreach (var job in settled)
            await SettleAsync(job, cancellationToken).ConfigureAwait(false);
        if (paused != _notifiedPaused)
        {
            _notifiedPaused = paused;
            queue.MarkUnsaved();
            if (paused)
                Log.SnapshotsPaused(logger);
            else
                Log.SnapshotsResumed(logger);
            await notifier.NotifyQuietlyAsync(paused ? new SnapshotsPaused() : new SnapshotsResumed(), cancellationToken).ConfigureAwait(false);
        }
        // A save that failed earlier (the connection was lost just then) is made up here; until it succeeds no table runs.
        await checkpointer.SaveIfUnsavedAsync(cancellationToken).ConfigureAwait(false);

        if (next is null)
        {
            // A paused queue is still busy: its completion is reported after the resume.
            if (_busy && !paused)
            {
                _busy = false;
                await notifier.NotifyQuietlyAsync(new SnapshotsCompleted(), cancellationToken).ConfigureAwait(false);
            }
            await queue.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        _busy = true;
        await RunJobAsync(next, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reports and removes a skipped or cancelled job that is not running: recorded once, and its waiters
    /// complete whatever the progress handlers do.</summary>
    private async Task SettleAsync(SnapshotJob job, CancellationToken cancellationToken)
    {
        queue.Finish(job, job.SkipReason is null ? SnapshotOutcome.Cancelled : SnapshotOutcome.Skipped, job.SkipReason);
        if (job.SkipReason is { } reason)
        {
            Log.SnapshotSkipped(logger, job.State.DisplayName, reason);
            await notifier.NotifyQuietlyAsync(new SnapshotTableSkipped(job.State.DisplayName, reason), cancellationToken).ConfigureAwait(false);
            job.Complete(null);
        }
        else
        {
            Log.SnapshotCancelled(logger, job.State.DisplayName);
            await notifier.NotifyQuietlyAsync(new SnapshotTableCancelled(job.State.DisplayName), cancellationToken).ConfigureAwait(false);
            job.Complete(new OperationCanceledException(job.Cancel.Token));
        }
    }

    private async Task RunJobAsync(SnapshotJob job, CancellationToken cancellationToken)
    {
        if (!tables.TryGetValue((job.State.Schema, job.State.Name), out var table) || table.Snapshot is not { } target)
        {
            var reason = table is SignalRegistration ? "it is the signal table" : await UnmappedReasonAsync(job.State, cancellationToken).ConfigureAwait(false);
            queue.Skip(job, reason);
            return; // settled on the next turn of the loop
        }

        if (ServerVersionNum is > 0 and < 140000)
        {
            await FailAsync(job, new DBSyncConfigurationException(ServerSupport.SnapshotsNeed14(ServerVersionNum)), cancellationToken).ConfigureAwait(false);
            return;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, job.Cancel.Token);
        try
        {
            bool completed;
            await using (var sql = await openSql(linked.Token).ConfigureAwait(false))
                completed = await runner.RunAsync(job, target, sql, linked.Token).ConfigureAwait(false);
            if (!completed)
                return; // paused: the job stays first in the queue
            // Every row is delivered. The notification comes before the outcome is recorded: a handler that throws fails
            // the table, which is then recorded once, as failed.
            await notifier.NotifyAsync(new SnapshotTableCompleted(job.State.DisplayName, job.State.Chunks, job.State.RowsRead, job.State.RowsEmitted), cancellationToken).ConfigureAwait(false);
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
            var delay = Backoff.Delay(options.ReconnectDelay, options.MaxReconnectDelay, ++job.Interruptions);
            Log.SnapshotInterrupted(logger, e, job.State.DisplayName, (long)delay.TotalMilliseconds);
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (SnapshotTableMissingException e)
        {
            queue.Skip(job, e.Message);
            return;
        }
        catch (Exception e)
        {
            await FailAsync(job, e, cancellationToken).ConfigureAwait(false);
            return;
        }

        queue.Finish(job, SnapshotOutcome.Completed, null);
        Log.SnapshotCompleted(logger, job.State.Description, job.State.RowsEmitted);
        try
        {
            await checkpointer.SaveIfUnsavedAsync(cancellationToken).ConfigureAwait(false);
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
    /// <summary>The source server's <c>server_version_num</c>, once the setup has read it (0 before).</summary>
    public int ServerVersionNum { get; set; }

    private async Task FailAsync(SnapshotJob job, Exception e, CancellationToken cancellationToken)
    {
        Log.SnapshotFailed(logger, e, job.State.DisplayName);
        queue.Finish(job, SnapshotOutcome.Failed, e.Message);
        await notifier.NotifyQuietlyAsync(new SnapshotTableFailed(job.State.DisplayName, e), cancellationToken).ConfigureAwait(false);
        try
        {
            await checkpointer.SaveIfUnsavedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            job.Complete(e);
        }
    }

    /// <summary>Why a requested table that no registered type maps is skipped: it may not exist at all.</summary>
    private async Task<string> UnmappedReasonAsync(JobState job, CancellationToken cancellationToken)
    {
        await using var sql = await openSql(cancellationToken).ConfigureAwait(false);
        return await sql.TableExistsAsync(job.Schema, job.Name, cancellationToken).ConfigureAwait(false)
            ? "no type mapping it is registered (register one with On<T>(...) before RunAsync)"
            : $"table {job.DisplayName} does not exist in database \"{sql.Database}\" (check the name: names are case-sensitive, unquoted SQL names are lower case)";
    }
}
