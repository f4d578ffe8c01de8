using Npgsql;
using NpgsqlTypes;

namespace DBSync.Internal;

/// <summary>The one query of the server's WAL position, for the lag gauge and the partition watcher's readings.</summary>
internal static class ServerWal
{
    /// <summary>The server's WAL position now (on a standby, how far it replayed; null when it has replayed nothing).</summary>
    public static async Task<ulong?> PositionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END", connection);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is NpgsqlLogSequenceNumber position ? (ulong)position : null;
    }
}
