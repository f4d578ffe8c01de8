using DBSync.Internal;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// The pause before the next chunk: <see cref="DBSyncOptions.SnapshotChunkDelay"/>, plus, while other sessions are
/// running statements or hold transactions open, enough to keep the snapshot to <see cref="DBSyncOptions.SnapshotBusyShare"/>
/// of the time.
/// </summary>
internal sealed class SnapshotThrottle(DBSyncOptions options, ILogger logger)
{
    private bool _warnedHidden;

    /// <summary>Waits after chunk <paramref name="chunk"/> of <paramref name="table"/>, which took <paramref name="chunkTime"/>
    /// to read.</summary>
    public async Task PaceAsync(ISnapshotSql sql, string table, long chunk, TimeSpan chunkTime, CancellationToken cancellationToken)
    {
        var delay = options.SnapshotChunkDelay;
        var share = options.SnapshotBusyShare;
        if (share < 1)
        {
            var (busy, hidden) = await sql.OtherSessionsAsync(cancellationToken).ConfigureAwait(false);
            if (hidden > 0 && !_warnedHidden)
            {
                _warnedHidden = true;
                Log.SessionsHidden(logger, table, hidden);
            }
            if (busy > 0)
            {
                delay += chunkTime * ((1 - share) / share);
                Log.SnapshotThrottled(logger, table, chunk, (long)delay.TotalMilliseconds, busy);
            }
        }
        if (delay > TimeSpan.Zero)
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
    }
}
