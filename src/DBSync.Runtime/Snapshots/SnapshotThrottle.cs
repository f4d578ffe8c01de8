using System.Diagnostics;
using DBSync.Internal;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// The pause before the next chunk: <see cref="DBSyncOptions.SnapshotChunkDelay"/>, plus, while the snapshot's database
/// has a workload beside DBSync, enough to keep the workload's loss of transactions per second within
/// <see cref="DBSyncOptions.SnapshotMaxImpact"/>, as <see cref="ThrottleController"/> measures it (reading chunks at
/// least <see cref="DBSyncOptions.SnapshotBusyShare"/> of the time). One per coordinator; readers of several chunks at
/// once share it.
/// </summary>
internal sealed class SnapshotThrottle(DBSyncOptions options, ILogger logger)
{
    private readonly ThrottleController? _controller =
        options.SnapshotBusyShare < 1 && options.SnapshotMaxImpact < 1 ? new ThrottleController(options.SnapshotMaxImpact, options.SnapshotBusyShare) : null;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly long _start = Stopwatch.GetTimestamp();
    private bool _warnedHidden;

    /// <summary>Waits after chunk <paramref name="chunk"/> of <paramref name="table"/>, which took <paramref name="chunkTime"/>
    /// to read.</summary>
    public async Task PaceAsync(ISnapshotSql sql, string table, long chunk, TimeSpan chunkTime, CancellationToken cancellationToken)
    {
        var delay = options.SnapshotChunkDelay;
        if (_controller is not null)
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                _controller.ChunkRead(Now, chunkTime);
                // A paused window holds every reader until its last sample.
                while (true)
                {
                    if (_controller.SampleDue(Now))
                        await SampleAsync(sql, table, cancellationToken).ConfigureAwait(false);
                    var hold = _controller.Hold(Now);
                    if (hold <= TimeSpan.Zero)
                        break;
                    await Task.Delay(hold, cancellationToken).ConfigureAwait(false);
                }
                var pause = _controller.PauseAfter(Now, chunkTime);
                if (pause > TimeSpan.Zero)
                {
                    delay += pause;
                    Log.SnapshotThrottled(logger, table, chunk, (long)delay.TotalMilliseconds, Percent(_controller.EffectiveShare));
                }
            }
            finally
            {
                _gate.Release();
            }
        }
        if (delay > TimeSpan.Zero)
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
    }

    private TimeSpan Now => Stopwatch.GetElapsedTime(_start);

    private async Task SampleAsync(ISnapshotSql sql, string table, CancellationToken cancellationToken)
    {
        var sample = await sql.SampleWorkloadAsync(cancellationToken).ConfigureAwait(false);
        if (sample.HiddenSessions > 0 && !_warnedHidden)
        {
            _warnedHidden = true;
            Log.SessionsHidden(logger, table, sample.HiddenSessions);
        }
        if (_controller!.Observe(Now, sample) is not { } measured)
            return;
        var impact = Math.Round(measured.Impact * 100, 1);
        var target = Math.Round(options.SnapshotMaxImpact * 100, 1);
        if (measured.Share < measured.ShareBefore)
            Log.SnapshotSlowedDown(logger, table, measured.RunningRate, measured.PausedRate, impact, target, Percent(measured.ShareBefore), Percent(measured.Share));
        else
            Log.SnapshotPaceMeasured(logger, table, measured.RunningRate, measured.PausedRate, impact, target, Percent(measured.ShareBefore), Percent(measured.Share));
    }

    private static double Percent(double share) => Math.Round(share * 100, 1);
}
