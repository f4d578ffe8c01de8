using Npgsql;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// One row of <c>pg_replication_slots</c> as DBSync reads it, with the walsender streaming from the slot: one query for
/// the setup (does the slot exist, is it usable), the stand-by poll (is it free) and the log (who holds it). Columns a
/// server version lacks (<c>conflicting</c> before 16, <c>invalidation_reason</c>, <c>failover</c> and <c>synced</c> before
/// 17) read as null.
/// </summary>
internal sealed record ReplicationSlot(
    string? Plugin,
    string SlotType,
    string? Database,
    bool Active,
    int? ActivePid,
    NpgsqlLogSequenceNumber? ConfirmedFlush,
    string? WalStatus,
    string? InvalidationReason,
    bool? Conflicting,
    bool? Failover,
    bool? Synced,
    string? HolderApplication,
    string? HolderClient,
    DateTime? HolderSince)
{
    private const string Sql = """
        SELECT s.plugin, s.slot_type, s.database, s.active, s.active_pid, s.confirmed_flush_lsn::text,
               j.v->>'wal_status', j.v->>'invalidation_reason', (j.v->>'conflicting')::boolean, (j.v->>'failover')::boolean,
               (j.v->>'synced')::boolean, a.application_name, host(a.client_addr) || coalesce(':' || a.client_port, ''), a.backend_start
        FROM pg_replication_slots s
        CROSS JOIN LATERAL (SELECT row_to_json(s) AS v) j
        LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
        WHERE s.slot_name = $1
        """;

    /// <summary>Whether the server gave the slot up: the WAL it needs is gone (<c>wal_status = lost</c>), or (16 and later)
    /// it was invalidated for another reason, such as a conflict with recovery.</summary>
    public bool Invalidated => WalStatus == "lost" || InvalidationReason is not null || Conflicting == true;

    /// <summary>Why the server gave the slot up, for people.</summary>
    public string InvalidationDescription
        => InvalidationReason is { } reason ? $"the server invalidated it ({reason})"
            : WalStatus == "lost" ? "the server invalidated it (wal_status = lost): it held back more WAL than max_slot_wal_keep_size allows, and the WAL it needed is gone"
            : "the server invalidated it (a conflict with recovery)";

    /// <summary>Who streams from the slot, for the log: its server process, application name, client address and since when.</summary>
    public string DescribeHolder()
    {
        if (ActivePid is not { } pid)
            return "a consumer that has just let go of it";
        var application = string.IsNullOrEmpty(HolderApplication) ? "none" : $"'{HolderApplication}'";
        var client = HolderClient ?? "a local socket";
        var since = HolderSince is { } start ? $", connected since {start.ToUniversalTime():yyyy-MM-dd HH:mm:ss} UTC" : "";
        return $"server process {pid}, application name {application}, client {client}{since}";
    }

    /// <summary>The slot, or null when it does not exist.</summary>
    public static async Task<ReplicationSlot?> ReadAsync(NpgsqlConnection connection, string slot, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(Sql, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = slot });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            return null;
        return new ReplicationSlot(
            Text(reader, 0),
            reader.GetString(1),
            Text(reader, 2),
            reader.GetBoolean(3),
            reader.IsDBNull(4) ? null : reader.GetInt32(4),
            reader.IsDBNull(5) ? null : NpgsqlLogSequenceNumber.Parse(reader.GetString(5)),
            Text(reader, 6),
            Text(reader, 7),
            reader.IsDBNull(8) ? null : reader.GetBoolean(8),
            reader.IsDBNull(9) ? null : reader.GetBoolean(9),
            reader.IsDBNull(10) ? null : reader.GetBoolean(10),
            Text(reader, 11),
            Text(reader, 12),
            reader.IsDBNull(13) ? null : reader.GetDateTime(13));
    }

    private static string? Text(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
