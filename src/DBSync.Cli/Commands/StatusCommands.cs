using System.CommandLine;
using DBSync.Cli.Database;
using DBSync.Cli.Output;
using Npgsql;

namespace DBSync.Cli.Commands;

/// <summary><c>slots</c>, <c>publications</c> and <c>lag</c>: what the server holds for replication, read-only.</summary>
internal static class StatusCommands
{
    public static Command Slots(CommandContext context)
    {
        var command = new Command("slots", "List the server's replication slots: plugin, database, whether a consumer holds them and which, confirmed position, lag and WAL status");
        context.Handle(command, async (_, server, cancellationToken) =>
        {
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            var slots = await Database.Slots.ListAsync(connection, null, cancellationToken).ConfigureAwait(false);
            if (slots.Count == 0)
            {
                await context.Out.WriteLineAsync("No replication slots.").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            var table = new TextTable("SLOT", "PLUGIN", "DATABASE", "ACTIVE", "PID", "CONFIRMED FLUSH", "LAG BYTES", "WAL STATUS", "HELD BY");
            foreach (var slot in slots)
            {
                table.Add(slot.Name, slot.Plugin ?? $"({slot.Type})", slot.Database, Units.YesNo(slot.Active), Units.Number(slot.ActivePid),
                    slot.ConfirmedFlushLsn, Units.Number(slot.LagBytes), slot.WalStatus, slot.HeldBy);
            }
            table.WriteTo(context.Out);
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command Lag(CommandContext context)
    {
        var slotOption = new Option<string?>("--slot", "-s") { Description = "Only this slot (default: every slot)" };
        var natsOption = new Option<string?>("--nats") { Description = "Also show how far each slot's JetStream stream is behind (DBSync.Nats): the NATS server's URL(s), comma-separated" };
        var streamOption = new Option<string?>("--stream") { Description = "The stream, with --nats and --slot (default: DBSYNC_ and the slot name in upper case)" };
        var command = new Command("lag", "Show how far each slot is behind the server's current WAL position, and how much WAL it keeps") { slotOption, natsOption, streamOption };
        context.Handle(command, async (parse, server, cancellationToken) =>
        {
            var name = parse.GetValue(slotOption);
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            var slots = name is null
                ? await Database.Slots.ListAsync(connection, null, cancellationToken).ConfigureAwait(false)
                : [await Database.Slots.FindAsync(connection, name, cancellationToken).ConfigureAwait(false)];
            if (slots.Count == 0)
            {
                await context.Out.WriteLineAsync("No replication slots.").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            var table = new TextTable("SLOT", "DATABASE", "ACTIVE", "CONFIRMED FLUSH", "SERVER WAL", "LAG BYTES", "LAG", "RETAINED WAL");
            foreach (var slot in slots)
            {
                table.Add(slot.Name, slot.Database, Units.YesNo(slot.Active), slot.ConfirmedFlushLsn, slot.CurrentLsn,
                    Units.Number(slot.LagBytes), Units.Bytes(slot.LagBytes), Units.Bytes(slot.RetainedBytes));
            }
            table.WriteTo(context.Out);
            if (parse.GetValue(natsOption) is { } nats)
                return await StreamLagAsync(context, connection, slots, nats, name is null ? null : parse.GetValue(streamOption), cancellationToken).ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Per slot, its JetStream stream: the last message's sequence and commit position, and how far that is behind
    /// the server's WAL position (what the stream lacks, in bytes of WAL).</summary>
    private static async Task<int> StreamLagAsync(CommandContext context, Npgsql.NpgsqlConnection connection, IReadOnlyList<Database.SlotRow> slots, string url,
        string? stream, CancellationToken cancellationToken)
    {
        await using var nats = new NATS.Client.Core.NatsConnection(new NATS.Client.Core.NatsOpts { Url = url, Name = "dbsync cli", MaxReconnectRetry = 0 });
        try
        {
            await nats.ConnectAsync().ConfigureAwait(false);
        }
        catch (NATS.Client.Core.NatsException e)
        {
            await context.Console.Error.WriteLineAsync($"Cannot reach NATS at {url} ({e.Message}). Check --nats.").ConfigureAwait(false);
            return ExitCodes.Connection;
        }
        await using var position = new Npgsql.NpgsqlCommand("SELECT pg_current_wal_lsn()", connection);
        var current = (NpgsqlTypes.NpgsqlLogSequenceNumber)(await position.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        await context.Out.WriteLineAsync().ConfigureAwait(false);
        var table = new TextTable("SLOT", "STREAM", "MESSAGES", "LAST COMMIT", "COMMITTED AT", "SERVER WAL", "STREAM LAG BYTES", "STREAM LAG");
        foreach (var slot in slots)
        {
            var name = stream ?? "DBSYNC_" + slot.Name.ToUpperInvariant();
            Nats.JetStreamPosition? last;
            try
            {
                last = await Nats.JetStreamPublisher.ReadLastPositionAsync(nats, name, cancellationToken).ConfigureAwait(false);
            }
            catch (NATS.Client.JetStream.NatsJSApiException e) when (e.Error.ErrCode == 10059)
            {
                table.Add(slot.Name, name, "no such stream", "", "", current.ToString(), "", "");
                continue;
            }
            if (last?.CommitLsn is not { } commit)
            {
                table.Add(slot.Name, name, Units.Number(last?.Messages ?? 0), "-", "-", current.ToString(), "", "");
                continue;
            }
            var behind = Math.Max(0, (long)((ulong)current - (ulong)commit));
            table.Add(slot.Name, name, Units.Number(last.Messages), commit.ToString(), last.CommitTime?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                current.ToString(), Units.Number(behind), Units.Bytes(behind));
        }
        table.WriteTo(context.Out);
        return ExitCodes.Success;
    }

    public static Command Publications(CommandContext context)
    {
        var command = new Command("publications", "List the publications of the connection's database, with their operations and tables");
        context.Handle(command, async (_, server, cancellationToken) =>
        {
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var query = new NpgsqlCommand(
                """
                SELECT p.pubname::text, p.puballtables,
                       concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END,
                                       CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END),
                       array_remove(array_agg(t.schemaname || '.' || t.tablename ORDER BY t.schemaname, t.tablename), NULL)
                FROM pg_publication p LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname AND NOT p.puballtables
                GROUP BY p.pubname, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate
                ORDER BY p.pubname
                """, connection);
            await using var reader = await query.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            var any = false;
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                any = true;
                await context.Out.WriteLineAsync($"{reader.GetString(0)}  ({reader.GetString(2)})").ConfigureAwait(false);
                var tables = reader.GetFieldValue<string[]>(3);
                if (reader.GetBoolean(1))
                    await context.Out.WriteLineAsync("  (all tables)").ConfigureAwait(false);
                else if (tables.Length == 0)
                    await context.Out.WriteLineAsync("  (no tables)").ConfigureAwait(false);
                foreach (var table in tables)
                    await context.Out.WriteLineAsync($"  {table}").ConfigureAwait(false);
            }
            if (!any)
                await context.Out.WriteLineAsync($"No publications in database {server.Database}.").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }
}
