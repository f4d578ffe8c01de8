using DBSync.Internal;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Replication;

/// <summary>
/// After a session's replication connection is closed, its walsender must let go of the slot so the next session can
/// take it. A stop that cancels the START_REPLICATION handshake can leave Npgsql unable to close the socket, and the
/// walsender then holds the slot until wal_sender_timeout; that backend (the session's own) is ended. Once the slot is
/// free, it must stand where the session confirmed: a status update sent just before the socket closed can be lost with
/// it (a close with unread frames resets the connection, and the server drops what it had not read), so a slot found
/// behind is advanced to the confirmed position.
/// </summary>
internal static class SlotRelease
{
    /// <summary>How long the check may take, its connection's open included: a stop when the network is gone waits this
    /// long here, whatever the connection string's Timeout.</summary>
    private static readonly TimeSpan s_checkTimeout = TimeSpan.FromSeconds(5);

    /// <param name="connections">Ordinary connections to the source.</param>
    /// <param name="slot">The slot.</param>
    /// <param name="walSender">The process id of the session's walsender.</param>
    /// <param name="confirmed">The position the session confirmed.</param>
    /// <param name="logger">Reports a terminated walsender, or a check that failed.</param>
    public static async Task ReleaseAsync(ConnectionPool connections, string slot, int walSender, string confirmed, ILogger logger)
    {
        // The stream ended, perhaps with its network: idle pooled connections may be as dead as it was. The check opens a
        // fresh one, and gives up after a while (the next session then finds the slot still held, and waits for it).
        connections.Clear();
        using var limit = new CancellationTokenSource(s_checkTimeout);
        try
        {
            await using var admin = await OpenWithinAsync(connections, limit.Token).ConfigureAwait(false);
            var gone = false;
            for (var attempt = 0; attempt < 20 && !gone; attempt++)
            {
                await using var alive = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", admin);
                alive.Parameters.Add(new NpgsqlParameter { Value = walSender });
                gone = (long)(await alive.ExecuteScalarAsync(limit.Token).ConfigureAwait(false))! == 0;
                if (!gone)
                    await Task.Delay(50, limit.Token).ConfigureAwait(false);
            }
            if (!gone)
            {
                await TerminateWalSenderAsync(admin, walSender, limit.Token).ConfigureAwait(false);
                Log.WalSenderTerminated(logger, walSender, slot);
                return;
            }

            // Only a slot no other consumer took meanwhile, and only forward.
            await using var advance = new NpgsqlCommand(
                "SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active AND confirmed_flush_lsn < $2::pg_lsn", admin);
            advance.Parameters.Add(new NpgsqlParameter { Value = slot });
            advance.Parameters.Add(new NpgsqlParameter { Value = confirmed });
            await advance.ExecuteNonQueryAsync(limit.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException || (e is OperationCanceledException && limit.IsCancellationRequested))
        {
            // The server is unreachable; its walsender ends with the connection or at wal_sender_timeout, and the next
            // run starts from the last position the server received (at least once).
            Log.WalSenderCheckFailed(logger, e, walSender);
        }
    }

    /// <summary>A connection, or <see cref="OperationCanceledException"/> as soon as <paramref name="limit"/> is cancelled:
    /// Npgsql's open does not give up on its token while it waits for the server's first answer (a network that went
    /// silent), only at the connection string's Timeout. A connection that opens after the limit is closed.</summary>
    private static async Task<NpgsqlConnection> OpenWithinAsync(ConnectionPool connections, CancellationToken limit)
    {
        var opening = connections.OpenAsync(limit).AsTask();
        try
        {
            return await opening.WaitAsync(limit).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            _ = opening.ContinueWith(static open =>
            {
                if (open.IsCompletedSuccessfully)
                    open.Result.Dispose();
                else
                    _ = open.Exception; // observed: the check already gave up
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw;
        }
    }

    /// <summary>Ends walsender <paramref name="walSender"/> over <paramref name="admin"/>, an ordinary connection to the
    /// same server: only a walsender of this role with that pid (a connection string with several hosts could have
    /// reached another server, where the pid is another backend's).</summary>
    public static async Task TerminateWalSenderAsync(NpgsqlConnection admin, int walSender, CancellationToken cancellationToken = default)
    {
        await using var terminate = new NpgsqlCommand(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_type = 'walsender' AND usename = current_user", admin);
        terminate.Parameters.Add(new NpgsqlParameter { Value = walSender });
        await terminate.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
