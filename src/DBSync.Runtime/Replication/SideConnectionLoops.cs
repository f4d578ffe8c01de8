using DBSync.Diagnostics;
using DBSync.Internal;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Replication;

/// <summary>
/// What a session does beside the stream on ordinary connections, each on a timer of its own while the session lasts:
/// heartbeats, and sampling the server's WAL end for the lag gauge.
/// </summary>
internal sealed class SideConnectionLoops(DBSyncOptions options, ConnectionPool connections, ConfirmedPosition confirmed, string prefix, ILogger logger)
{
    private long _serverWalEnd;

    /// <summary>The server's WAL end as last sampled (0 before the first sample).</summary>
    public ulong ServerWalEnd => unchecked((ulong)Volatile.Read(ref _serverWalEnd));

    /// <summary>
    /// With <see cref="DBSyncOptions.HeartbeatInterval"/>: whenever a whole interval passed without the confirmed position
    /// moving, writes a transactional logical message with this pipeline's prefix. Its transaction is decoded by the slot
    /// like any other and confirmed when it arrives, so the slot follows the WAL even when nothing it publishes changes.
    /// </summary>
    public Task HeartbeatAsync(CancellationToken cancellationToken)
    {
        if (options.HeartbeatInterval is not { } interval)
            return Task.CompletedTask;
        var seen = confirmed.Value;
        return RunAsync(interval, "SET synchronous_commit = local",
            due: () =>
            {
                var now = confirmed.Value;
                if (now == seen)
                    return true;
                seen = now;
                return false;
            },
            (connection, token) => LogicalMessages.EmitAsync(connection, prefix, "heartbeat", token),
            e => Log.HeartbeatFailed(logger, e, options.SlotName, (long)interval.TotalMilliseconds),
            cancellationToken);
    }

    /// <summary>
    /// While the replication lag gauge has a listener, reads the server's WAL end every <see cref="DBSyncOptions.StatusInterval"/>.
    /// The stream itself cannot tell it: pgoutput frames carry their own position, keepalives how far the server decoded.
    /// </summary>
    public Task SampleServerWalEndAsync(CancellationToken cancellationToken)
        => RunAsync(options.StatusInterval, setupSql: null, static () => Telemetry.ReplicationLag.Enabled,
            async (connection, token) =>
            {
                if (await ServerWal.PositionAsync(connection, token).ConfigureAwait(false) is { } end)
                    Volatile.Write(ref _serverWalEnd, unchecked((long)end));
            },
            e => Log.WalEndUnknown(logger, e, options.SlotName),
            cancellationToken);

    /// <summary>
    /// Runs <paramref name="work"/> every <paramref name="interval"/> while the session lasts and <paramref name="due"/>
    /// says so, on an ordinary connection of its own: opened (then set up with <paramref name="setupSql"/>) when first
    /// needed, and opened again after a failure, which <paramref name="failed"/> reports.
    /// </summary>
    private async Task RunAsync(TimeSpan interval, string? setupSql, Func<bool> due, Func<NpgsqlConnection, CancellationToken, Task> work,
        Action<Exception> failed, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        NpgsqlConnection? connection = null;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!due())
                    continue;
                try
                {
                    if (connection is null)
                    {
                        connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
                        if (setupSql is not null)
                        {
                            await using var setup = new NpgsqlCommand(setupSql, connection);
                            await setup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                        }
                    }
                    await work(connection, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException && !cancellationToken.IsCancellationRequested)
                {
                    failed(e);
                    if (connection is not null)
                        await connection.DisposeAsync().ConfigureAwait(false);
                    connection = null;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The session is ending.
        }
        finally
        {
            if (connection is not null)
                await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
