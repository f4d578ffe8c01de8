using System.Runtime.ExceptionServices;
using DBSync.Checkpoints;
using DBSync.Diagnostics;
using DBSync.Internal;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// Snapshots one table from where its job stands: fixes its query (and maximum key) and, for parallel reads, splits its
/// key range into segments (<see cref="SegmentSplit"/>); makes its windows the open ones, passes the visibility fence,
/// then runs its chunks (<see cref="ChunkReadAhead"/>, one per segment at a time, up to
/// <see cref="DBSyncOptions.SnapshotParallelism"/> side by side, each on a connection of its own), recording each
/// delivered chunk in the job, the metrics and the checkpoint.
/// </summary>
internal sealed class TableSnapshotRunner(
    DBSyncOptions options,
    SnapshotQueue queue,
    SnapshotCheckpointer checkpointer,
    WatermarkChannel channel,
    VisibilityFence fence,
    SnapshotThrottle throttle,
    ProgressNotifier notifier,
    Func<CancellationToken, Task<ISnapshotSql>> openSql,
    ILogger logger)
{
    /// <summary>Runs <paramref name="job"/> on <paramref name="sql"/> (and, for parallel reads, connections of its own);
    /// false when it stopped for a pause (the job stays first in the queue).</summary>
    public async Task<bool> RunAsync(SnapshotJob job, SnapshotTarget target, ISnapshotSql sql, CancellationToken cancellationToken)
    {
        var query = await sql.PrepareQueryAsync(target.Table, job.State, cancellationToken).ConfigureAwait(false);
        var estimate = await sql.EstimateRowsAsync(target.Table, cancellationToken).ConfigureAwait(false);
        if (!job.State.Started)
        {
            var segments = await SplitAsync(sql, query, estimate, cancellationToken).ConfigureAwait(false);
            queue.SetState(job, job.State with { Started = true, MaxKey = query.MaxKey, Segments = segments });
            await checkpointer.SaveAsync(cancellationToken).ConfigureAwait(false);
        }

        queue.BeginRunning(job, estimate);
        target.BeginSnapshot(options.SnapshotWindowMaxChanges, channel.Open(target));
        try
        {
            await fence.PassAsync(sql, target, cancellationToken).ConfigureAwait(false);
            Log.SnapshotStarted(logger, job.State.Description, query.MaxKey is null ? "(empty)" : KeyText.Format(query.MaxKey),
                job.State.LastKey is null ? "the start" : KeyText.Format(job.State.LastKey));
            // Resumed when chunks of it were delivered before (in an earlier run, or before a pause or a lost
            // connection). A run stopped after the start was saved but before its first chunk was recorded reads the
            // table from its beginning again, and says so: the start is reported at least once, as chunks are.
            var resumed = job.State.Chunks > 0;
            await notifier.NotifyAsync(new SnapshotTableStarted(job.State.DisplayName, query.MaxKey, resumed, job.State.LastKey), cancellationToken).ConfigureAwait(false);

            using var recording = new SemaphoreSlim(1, 1);
            if (job.State.Segments is null)
            {
                // One range, from the last completed chunk on (parallel reads off, or a job started before them).
                var chunks = new ChunkReadAhead(sql, channel, throttle, target, query, job.State.Chunks, job.State.LastKey, options, () => queue.Paused,
                    (chunk, token) => RecordAsync(job, target, null, recording, chunk, token), logger);
                return await chunks.RunAsync(cancellationToken).ConfigureAwait(false);
            }
            return await RunSegmentsAsync(job, target, query, sql, recording, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            target.EndSnapshot();
            channel.Close();
            queue.EndRunning();
        }
    }

    /// <summary>The segments of a new job's key range; null when it is read as one range.</summary>
    private async Task<IReadOnlyList<SegmentState>?> SplitAsync(ISnapshotSql sql, SnapshotQuery query, long estimate, CancellationToken cancellationToken)
    {
        var count = SegmentSplit.Count(options.SnapshotParallelism, estimate, options.SnapshotChunkSize);
        if (count <= 1 || query.MaxKey is null || query.EmitsDeletes)
            return null;
        var sample = await sql.SampleKeysAsync(query, SegmentSplit.SamplePages, cancellationToken).ConfigureAwait(false);
        var segments = SegmentSplit.Split(sample, query.MaxKey, count);
        return segments.Count > 1 ? segments : null;
    }

    /// <summary>Reads the segments not done yet, each by the next free reader: true when every one is done, false when
    /// the readers stopped for a pause. A reader that fails stops the others; the first failure is thrown.</summary>
    private async Task<bool> RunSegmentsAsync(SnapshotJob job, SnapshotTarget target, SnapshotQuery query, ISnapshotSql sql, SemaphoreSlim recording,
        CancellationToken cancellationToken)
    {
        var segments = job.State.Segments!;
        var next = new Queue<int>(Enumerable.Range(0, segments.Count).Where(i => !segments[i].Done));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ExceptionDispatchInfo? failure = null;

        async Task<bool> ReadAsync(ISnapshotSql? own)
        {
            try
            {
                var connection = own ?? await openSql(stop.Token).ConfigureAwait(false);
                try
                {
                    TimeSpan? lastRead = null;
                    while (true)
                    {
                        int index;
                        lock (next)
                        {
                            if (!next.TryDequeue(out index))
                                return true;
                        }
                        if (lastRead is { } time)
                        {
                            // Each chunk but the reader's first is paced, across segments as within one.
                            await throttle.PaceAsync(connection, target.Table.DisplayName, job.State.Chunks, time, stop.Token).ConfigureAwait(false);
                        }
                        var segment = job.State.Segments![index];
                        var after = segment.LastKey ?? (index == 0 ? null : job.State.Segments[index - 1].Upper);
                        var chunks = new ChunkReadAhead(connection, channel, throttle, target, query.Through(segment.Upper), job.State.Chunks, after, options,
                            () => queue.Paused, (chunk, token) => RecordAsync(job, target, index, recording, chunk, token), logger);
                        if (!await chunks.RunAsync(stop.Token).ConfigureAwait(false))
                            return false;
                        lastRead = chunks.LastReadTime;
                    }
                }
                finally
                {
                    if (own is null)
                        await connection.DisposeAsync().ConfigureAwait(false);
                }
            }
            catch (Exception e) when (!(e is OperationCanceledException && stop.IsCancellationRequested))
            {
                Interlocked.CompareExchange(ref failure, ExceptionDispatchInfo.Capture(e), null);
                await stop.CancelAsync().ConfigureAwait(false);
                throw;
            }
        }

        var readers = new Task<bool>[Math.Max(1, Math.Min(options.SnapshotParallelism, next.Count))];
        for (var i = 0; i < readers.Length; i++)
            readers[i] = ReadAsync(i == 0 ? sql : null);
        bool[] done;
        try
        {
            done = await Task.WhenAll(readers).ConfigureAwait(false);
        }
        catch when (failure is not null)
        {
            failure.Throw();
            throw;
        }
        return done.All(d => d) && job.State.Segments!.All(s => s.Done);
    }

    /// <summary>Records a delivered chunk (of segment <paramref name="segment"/>, or of the one range): one at a time, so
    /// chunk numbers, notifications and checkpoints stay in order.</summary>
    private async Task RecordAsync(SnapshotJob job, SnapshotTarget target, int? segment, SemaphoreSlim recording, DeliveredChunk chunk,
        CancellationToken cancellationToken)
    {
        await recording.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var state = job.State;
            var segments = state.Segments;
            if (segment is int index)
            {
                var updated = segments!.ToArray();
                updated[index] = updated[index] with { LastKey = chunk.LastKey ?? updated[index].LastKey, Done = chunk.IsLast };
                segments = updated;
            }
            var number = state.Chunks + 1;
            queue.SetState(job, state with
            {
                Chunks = number,
                LastKey = chunk.LastKey ?? state.LastKey,
                RowsRead = state.RowsRead + chunk.RowsRead,
                RowsEmitted = state.RowsEmitted + chunk.RowsEmitted,
                Segments = segments,
            });
            Telemetry.SnapshotRows.Add(chunk.RowsRead, target.MetricTags.TableTags);
            Telemetry.SnapshotChunks.Add(1, target.MetricTags.TableTags);
            // The chunk is delivered: it is reported before the checkpoint is saved, since a save that the stream's end
            // cancels (or a restart breaks) leaves the job in memory past this chunk, and the next session goes on from there
            // without reporting it again.
            Log.ChunkCompleted(logger, state.DisplayName, number, chunk.RowsRead, chunk.RowsEmitted);
            await notifier.NotifyAsync(new SnapshotChunkCompleted(state.DisplayName, number, chunk.RowsRead, chunk.RowsEmitted, chunk.LastKey, chunk.Attempts),
                cancellationToken).ConfigureAwait(false);
            await checkpointer.SaveAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            recording.Release();
        }
    }
}
