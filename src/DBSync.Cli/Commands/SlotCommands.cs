using System.CommandLine;
using DBSync.Cli.Database;
using DBSync.Cli.Output;
using DBSync.Replication;
using Npgsql;

namespace DBSync.Cli.Commands;

/// <summary><c>slot drop</c>: drops a replication slot that no consumer holds, after a confirmation, and optionally the
/// checkpoint DBSync kept for it.</summary>
internal static class SlotCommands
{
    private const string ObjectInUse = "55006";
    private const string UndefinedObject = "42704";

    public static Command Create(CommandContext context)
    {
        var slotOption = CommonOptions.Slot(required: true);
        var yes = new Option<bool>("--yes", "-y") { Description = "Drop without asking for confirmation" };
        var deleteCheckpoint = new Option<bool>("--delete-checkpoint") { Description = "Also delete the slot's checkpoint (a new slot then starts without one)" };
        var tableOption = CommonOptions.CheckpointTable();
        var drop = new Command("drop", "Drop a replication slot no consumer holds: the server stops keeping WAL for it, and its undelivered changes are lost")
        {
            slotOption, yes, deleteCheckpoint, tableOption,
        };
        context.Handle(drop, async (parse, server, cancellationToken) =>
        {
            var name = parse.GetValue(slotOption)!;
            var store = parse.GetValue(deleteCheckpoint) ? CommonOptions.Store(server.ConnectionString, parse.GetValue(tableOption)!) : null;
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            var slot = await Slots.FindAsync(connection, name, cancellationToken).ConfigureAwait(false);
            if (slot is { Active: true, ActivePid: { } pid })
                throw await InUseAsync(connection, name, pid, cancellationToken).ConfigureAwait(false);
            if (store is not null && slot.Database is { } database && database != connection.Database)
            {
                throw new CliException(ExitCodes.Usage,
                    $"Slot \"{name}\" belongs to database {database}, and its checkpoint is kept there: connect to that database (Database={database}) to drop it with --delete-checkpoint.");
            }

            if (!parse.GetValue(yes))
            {
                var behind = slot.LagBytes is { } lag ? $"{Units.Bytes(lag)} of WAL it has not confirmed" : "what it has not confirmed";
                await context.ConfirmAsync(
                    $"Drop slot \"{name}\"{(slot.Database is null ? "" : $" of database {slot.Database}")}? Changes in {behind} can no longer be read through it.",
                    $"Slot \"{name}\" was not dropped", cancellationToken).ConfigureAwait(false);
            }

            await using (var command = new NpgsqlCommand("SELECT pg_drop_replication_slot($1)", connection))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = name });
                try
                {
                    await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (PostgresException e) when (e.SqlState == ObjectInUse)
                {
                    // A consumer took the slot since it was looked at.
                    var holder = await Slots.FindAsync(connection, name, cancellationToken).ConfigureAwait(false);
                    throw holder.ActivePid is { } holderPid ? await InUseAsync(connection, name, holderPid, cancellationToken).ConfigureAwait(false)
                        : new CliException(ExitCodes.Refused, $"Slot \"{name}\" is in use: {e.MessageText}.", e);
                }
                catch (PostgresException e) when (e.SqlState == UndefinedObject)
                {
                    throw new CliException(ExitCodes.NotFound, $"Slot \"{name}\" was dropped by someone else meanwhile.", e);
                }
            }
            await context.Out.WriteLineAsync($"Slot \"{name}\" dropped.").ConfigureAwait(false);

            if (store is not null)
            {
                var deleted = await store.DeleteAsync(name, cancellationToken).ConfigureAwait(false);
                await context.Out.WriteLineAsync(deleted
                    ? $"Checkpoint of slot \"{name}\" deleted from {store.Table}."
                    : $"Slot \"{name}\" had no checkpoint in {store.Table}.").ConfigureAwait(false);
            }
            return ExitCodes.Success;
        });
        return new Command("slot", "Manage a replication slot") { drop };
    }

    private static async Task<CliException> InUseAsync(NpgsqlConnection connection, string name, int pid, CancellationToken cancellationToken)
    {
        // Described as the runtime describes the holder of a slot it stands by for (event 2030).
        var slot = await ReplicationSlot.ReadAsync(connection, name, cancellationToken).ConfigureAwait(false);
        var holder = slot?.ActivePid == pid ? slot.DescribeHolder() : $"server process {pid}";
        return new CliException(ExitCodes.Refused,
            $"Slot \"{name}\" is in use by {holder}; refusing to drop it. Stop that consumer first (or end it with SELECT pg_terminate_backend({pid})), then drop the slot.");
    }
}
