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
        var command = new Command("lag", "Show how far each slot is behind the server's current WAL position, and how much WAL it keeps") { slotOption };
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
            return ExitCodes.Success;
        });
        return command;
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
