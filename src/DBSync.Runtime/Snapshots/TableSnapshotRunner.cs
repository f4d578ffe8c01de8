using DBSync.Diagnostics;
using DBSync.Internal;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// Snapshots one table from where its job stands: fixes its query (and maximum key), makes its window the open one,
/// passes the visibility fence, then runs its chunks (<see cref="ChunkReadAhead"/>), recording each delivered chunk in
/// the job, the metrics and the checkpoint before the next.
/// </summary>
internal sealed class TableSnapshotRunner(
    DBSyncOptions options,
    SnapshotQueue queue,
    SnapshotCheckpointer checkpointer,
    WatermarkChannel channel,
    VisibilityFence fence,
    SnapshotThrottle throttle,
    ProgressNotifier notifier,
    ILogger logger)
{
    /// <summary>Runs <paramref name="job"/> on <paramref name="sql"/>; false when it stopped for a pause (the job stays
    /// first in the queue).</summary>
    public async Task<bool> RunAsync(SnapshotJob job, SnapshotTarget target, ISnapshotSql sql, CancellationToken cancellationToken)
    {
        var query = await sql.PrepareQueryAsync(target.Table, job.State, cancellationToken).ConfigureAwait(false);
        if (!job.State.Started)
        {
            queue.SetState(job, job.State with { Started = true, MaxKey = query.MaxKey });
            await checkpointer.SaveAsync(cancellationToken).ConfigureAwait(false);
        }

        var estimate = await sql.EstimateRowsAsync(target.Table, cancellationToken).ConfigureAwait(false);
        queue.BeginRunning(job, estimate);
        target.BeginSnapshot(options.SnapshotWindowMaxChanges, channel.Open(target));
        try
        {
            await fence.PassAsync(sql, target, cancellationToken).ConfigureAwait(false);
            Log.SnapshotStarted(logger, job.State.Description, query.MaxKey is null ? "(empty)" : KeyText.Format(query.MaxKey),
                job.State.LastKey is null ? "the start" : KeyText.Format(job.State.LastKey));
            await notifier.NotifyAsync(new SnapshotTableStarted(job.State.DisplayName, query.MaxKey, job.Resumed, job.State.LastKey), cancellationToken).ConfigureAwait(false);
            job.Resumed = true; // after a pause it continues, too

            var chunks = new ChunkReadAhead(sql, channel, throttle, target, query, job.State.Chunks, job.State.LastKey, options, () => queue.Paused,
                (chunk, token) => RecordAsync(job, target, chunk, token), logger);
            return await chunks.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            target.EndSnapshot();
            channel.Close();
            queue.EndRunning();
        }
    }

    private async Task RecordAsync(SnapshotJob job, SnapshotTarget target, DeliveredChunk chunk, CancellationToken cancellationToken)
    {
        queue.SetState(job, job.State with
        {
            Chunks = chunk.Chunk,
            LastKey = chunk.LastKey ?? job.State.LastKey,
            RowsRead = job.State.RowsRead + chunk.RowsRead,
            RowsEmitted = job.State.RowsEmitted + chunk.RowsEmitted,
        });
        Telemetry.SnapshotRows.Add(chunk.RowsRead, target.MetricTags.TableTags);
        Telemetry.SnapshotChunks.Add(1, target.MetricTags.TableTags);
        // The chunk is delivered: it is reported before the checkpoint is saved, since a save that the stream's end
        // cancels (or a restart breaks) leaves the job in memory past this chunk, and the next session goes on from there
        // without reporting it again.
        Log.ChunkCompleted(logger, job.State.DisplayName, chunk.Chunk, chunk.RowsRead, chunk.RowsEmitted);
        await notifier.NotifyAsync(new SnapshotChunkCompleted(job.State.DisplayName, chunk.Chunk, chunk.RowsRead, chunk.RowsEmitted, chunk.LastKey, chunk.Attempts),
            cancellationToken).ConfigureAwait(false);
        await checkpointer.SaveAsync(cancellationToken).ConfigureAwait(false);
    }
}
