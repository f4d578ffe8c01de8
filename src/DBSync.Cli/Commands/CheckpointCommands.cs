using System.CommandLine;
using DBSync.Cli.Database;
using DBSync.Cli.Output;

namespace DBSync.Cli.Commands;

/// <summary><c>checkpoint show</c>: a pipeline's checkpoint, read through the runtime's <see cref="CheckpointInfo"/>.</summary>
internal static class CheckpointCommands
{
    public static Command Create(CommandContext context)
    {
        var slotOption = CommonOptions.Slot();
        var tableOption = CommonOptions.CheckpointTable();
        var show = new Command("show", "Show a slot's checkpoint: the confirmed position saved with it and the slot's confirmed position now, the snapshot queue with the current table's last key, chunks and rows, the pause state, and how the last snapshots ended")
        {
            slotOption, tableOption,
        };
        context.Handle(show, async (parse, server, cancellationToken) =>
        {
            var slot = parse.GetValue(slotOption)!;
            var store = CommonOptions.Store(server.ConnectionString, parse.GetValue(tableOption)!);
            await server.EnsureReachableAsync(cancellationToken).ConfigureAwait(false);
            var checkpoint = await LoadAsync(store, slot, cancellationToken).ConfigureAwait(false);
            // The slot's own position moves on with every confirmed transaction; the checkpoint's only when it is saved.
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            var slotRow = (await Slots.ListAsync(connection, slot, cancellationToken).ConfigureAwait(false)).FirstOrDefault();
            Write(context.Out, checkpoint, store.Table, slotRow);
            return ExitCodes.Success;
        });
        return new Command("checkpoint", "Inspect the checkpoint DBSync keeps per slot") { show };
    }

    /// <summary>The checkpoint of <paramref name="slot"/>; a <see cref="ExitCodes.NotFound"/> error when there is none.</summary>
    public static async Task<CheckpointInfo> LoadAsync(PostgresCheckpointStore store, string slot, CancellationToken cancellationToken)
        => await CheckpointInfo.LoadAsync(store, slot, cancellationToken).ConfigureAwait(false)
           ?? throw new CliException(ExitCodes.NotFound,
               $"No checkpoint for slot \"{slot}\" in {store.Table}. DBSync saves one when a snapshot is requested or a signal arrives; " +
               "pass --slot or --checkpoint-table if the pipeline uses others.");

    private static void Write(TextWriter output, CheckpointInfo checkpoint, string table, SlotRow? slot)
    {
        output.WriteLine($"Checkpoint of slot \"{checkpoint.Slot}\" ({table})");
        output.WriteLine($"  saved at                    {Units.Time(checkpoint.SavedAt)}");
        output.WriteLine($"  confirmed LSN when saved    {checkpoint.ConfirmedLsn}");
        output.WriteLine($"  slot's confirmed LSN now    {(slot is null ? "(no such slot on this server)" : slot.ConfirmedFlushLsn ?? "(none)")}");
        output.WriteLine($"  last signal LSN             {checkpoint.LastSignalLsn}");
        output.WriteLine($"  paused                      {Units.YesNo(checkpoint.Paused)}");

        output.WriteLine(checkpoint.Queue.Count == 0 ? "Snapshot queue: empty" : $"Snapshot queue: {checkpoint.Queue.Count} table(s)");
        if (checkpoint.Queue.Count > 0)
        {
            var queue = new TextTable("TABLE", "STATE", "CHUNKS", "ROWS READ", "ROWS EMITTED", "LAST KEY", "MAX KEY", "CHUNK KEY", "FILTER");
            foreach (var entry in checkpoint.Queue)
            {
                var state = !entry.Started ? "queued" : checkpoint.Paused ? "paused" : "running";
                var filter = entry.Filter is null ? null : entry.FilterParameters.Count == 0
                    ? entry.Filter
                    : $"{entry.Filter} [{string.Join(", ", entry.FilterParameters.Select(p => p ?? "NULL"))}]";
                queue.Add(entry.Table, state, Units.Number(entry.Chunks), Units.Number(entry.RowsRead), Units.Number(entry.RowsEmitted),
                    Units.Key(entry.LastKey), Units.Key(entry.MaxKey), entry.ChunkKey, filter);
            }
            queue.WriteTo(output, "  ");
        }

        if (checkpoint.Finished.Count > 0)
        {
            output.WriteLine("Finished snapshots (most recent last):");
            var finished = new TextTable("TABLE", "OUTCOME", "CHUNKS", "ROWS READ", "ROWS EMITTED", "FINISHED AT", "DETAIL");
            foreach (var entry in checkpoint.Finished)
            {
                finished.Add(entry.Table, Outcome(entry.Outcome), Units.Number(entry.Chunks), Units.Number(entry.RowsRead), Units.Number(entry.RowsEmitted),
                    Units.Time(entry.FinishedAt), entry.Detail);
            }
            finished.WriteTo(output, "  ");
        }
    }

    public static string Outcome(SnapshotOutcome outcome) => outcome.ToString().ToLowerInvariant();
}
