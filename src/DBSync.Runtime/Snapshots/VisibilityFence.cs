namespace DBSync.Snapshots;

/// <summary>
/// Keeps chunks from being older than changes already delivered. A transaction can be decoded and delivered while its
/// backend still waits for a synchronous standby, invisible to new snapshots; the fence remembers the last transactions
/// the stream delivered and waits, before a table's first chunk, until new snapshots see them.
/// </summary>
internal sealed class VisibilityFence(WatermarkChannel channel)
{
    private const int RecentTransactions = 4096;

    private readonly object _lock = new();
    private readonly uint[] _recent = new uint[RecentTransactions];
    private int _recentCount;

    /// <summary>Stream side: a transaction committed.</summary>
    public void OnCommitted(uint xid)
    {
        lock (_lock)
            _recent[_recentCount++ % RecentTransactions] = xid;
    }

    /// <summary>
    /// A watermark pair with no rows. Once the stream passes it, every change of the table delivered after it is recorded
    /// by the window. Changes delivered before it were not, so wait until the transactions behind them are visible to new
    /// snapshots; from then on no chunk can be older than a change already delivered.
    /// </summary>
    public async Task PassAsync(ISnapshotSql sql, SnapshotTarget target, CancellationToken cancellationToken)
    {
        var window = await channel.WriteLowAsync(sql, cancellationToken).ConfigureAwait(false);
        target.SetFence(window, await sql.CurrentSnapshotAsync(cancellationToken).ConfigureAwait(false));
        var passed = await channel.WriteHighAsync(sql, window, cancellationToken).ConfigureAwait(false);
        await passed.WaitAsync(cancellationToken).ConfigureAwait(false);

        uint[] delivered;
        lock (_lock)
            delivered = _recent.Take(Math.Min(_recentCount, RecentTransactions)).ToArray();
        await WaitUntilVisibleAsync(sql, delivered, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits until new snapshots see every transaction in <paramref name="xids"/> (delivered ones, whose backends
    /// may still wait for a synchronous standby).</summary>
    public static async Task WaitUntilVisibleAsync(ISnapshotSql sql, uint[] xids, CancellationToken cancellationToken)
    {
        while (xids.Length > 0)
        {
            var visibility = await sql.CurrentSnapshotAsync(cancellationToken).ConfigureAwait(false);
            if (xids.All(visibility.Sees))
                return;
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }
}
