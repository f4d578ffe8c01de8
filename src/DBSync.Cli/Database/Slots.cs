using DBSync.Cli.Output;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Cli.Database;

/// <summary>One replication slot, with its lag behind the server's current WAL position.</summary>
internal sealed record SlotRow(
    string Name, string Type, string? Plugin, string? Database, bool Active, int? ActivePid,
    string? ConfirmedFlushLsn, string? RestartLsn, long? LagBytes, long? RetainedBytes, string? WalStatus, string CurrentLsn, string? HeldBy = null);

/// <summary>The queries on <c>pg_replication_slots</c> that <c>slots</c>, <c>lag</c> and <c>slot drop</c> share.</summary>
internal static class Slots
{
    public static async Task<List<SlotRow>> ListAsync(NpgsqlConnection connection, string? name, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            WITH position AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)
            SELECT s.slot_name::text, s.slot_type, s.plugin::text, s.database::text, s.active, s.active_pid,
                   s.confirmed_flush_lsn::text, s.restart_lsn::text,
                   pg_wal_lsn_diff(position.lsn, s.confirmed_flush_lsn)::bigint, pg_wal_lsn_diff(position.lsn, s.restart_lsn)::bigint,
                   s.wal_status, position.lsn::text, a.application_name, host(a.client_addr), a.client_port
            FROM pg_replication_slots s CROSS JOIN position LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
            WHERE $1::text IS NULL OR s.slot_name = $1
            ORDER BY s.slot_name
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)name ?? DBNull.Value });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var slots = new List<SlotRow>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            slots.Add(new SlotRow(
                reader.GetString(0), reader.GetString(1), Nullable<string>(reader, 2), Nullable<string>(reader, 3), reader.GetBoolean(4),
                reader.IsDBNull(5) ? null : reader.GetInt32(5), Nullable<string>(reader, 6), Nullable<string>(reader, 7),
                reader.IsDBNull(8) ? null : reader.GetInt64(8), reader.IsDBNull(9) ? null : reader.GetInt64(9),
                Nullable<string>(reader, 10), reader.GetString(11), HeldBy(reader)));
        }
        return slots;
    }

    /// <summary>The slot named <paramref name="name"/>; a <see cref="ExitCodes.NotFound"/> error that lists the slots
    /// there are when it does not exist.</summary>
    public static async Task<SlotRow> FindAsync(NpgsqlConnection connection, string name, CancellationToken cancellationToken)
    {
        var slots = await ListAsync(connection, name, cancellationToken).ConfigureAwait(false);
        if (slots.Count == 1)
            return slots[0];
        var all = await ListAsync(connection, null, cancellationToken).ConfigureAwait(false);
        throw new CliException(ExitCodes.NotFound, all.Count == 0
            ? $"No replication slot \"{name}\": the server has no slots."
            : $"No replication slot \"{name}\". Slots on this server: {string.Join(", ", all.Select(s => s.Name))}.");
    }

    /// <summary>Which consumer streams from the slot: its application name and where it connects from (instances of one
    /// pipeline on several machines differ by address, on one machine by port); null when none does.</summary>
    private static string? HeldBy(NpgsqlDataReader reader)
    {
        if (reader.IsDBNull(5))
            return null;
        var application = reader.IsDBNull(12) || reader.GetString(12).Length == 0 ? "no application name" : $"'{reader.GetString(12)}'";
        var client = reader.IsDBNull(13) ? "a Unix socket" : reader.IsDBNull(14) ? reader.GetString(13) : $"{reader.GetString(13)}:{reader.GetInt32(14)}";
        return $"{application} from {client}";
    }

    private static T? Nullable<T>(NpgsqlDataReader reader, int ordinal) where T : class
        => reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<T>(ordinal);
}
