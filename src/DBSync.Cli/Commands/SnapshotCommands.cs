using System.CommandLine;
using DBSync.Cli.Database;
using DBSync.Cli.Output;
using DBSync.Cli.Snapshots;
using Npgsql;

namespace DBSync.Cli.Commands;

/// <summary>
/// <c>snapshot start|pause|resume|cancel</c> insert a row into the signal table and wait until the pipeline's checkpoint
/// shows that DBSync acted on it; <c>snapshot progress</c> (and <c>start --follow</c>) draw a progress bar from the
/// checkpoint until the snapshot ends.
/// </summary>
internal static class SnapshotCommands
{
    public static Command Create(CommandContext context) => new("snapshot", "Start, pause, resume, cancel and follow snapshots through the signal table")
    {
        Start(context),
        Control(context, "pause", "Pause snapshots after the chunk in flight (the stream goes on)", paused: true),
        Control(context, "resume", "Resume paused snapshots", paused: false),
        Cancel(context),
        Progress(context),
    };

    /// <summary>The options of every command that sends a signal.</summary>
    private sealed class SignalOptions
    {
        public Option<string> Slot { get; } = CommonOptions.Slot();
        public Option<string> SignalTable { get; } = CommonOptions.SignalTable();
        public Option<string> CheckpointTable { get; } = CommonOptions.CheckpointTable();
        public Option<int> Timeout { get; } = CommonOptions.Timeout();
        public Option<bool> NoWait { get; } = new("--no-wait") { Description = "Insert the signal and return, without waiting for DBSync to act on it" };

        public void AddTo(Command command)
        {
            command.Options.Add(Slot);
            command.Options.Add(SignalTable);
            command.Options.Add(CheckpointTable);
            command.Options.Add(Timeout);
            command.Options.Add(NoWait);
        }

        /// <summary>Sends a signal; unless <c>--no-wait</c>, waits until the checkpoint shows <paramref name="done"/> and
        /// returns it with the checkpoint read before the signal (null with <c>--no-wait</c>).</summary>
        public async Task<(CheckpointInfo? Before, CheckpointInfo? After)> SendAsync(ParseResult parse, ServerConnection server, CommandContext context,
            string kind, IReadOnlyList<string>? tables, Func<CheckpointInfo?, CheckpointInfo, bool> done, CancellationToken cancellationToken,
            string? filter = null, IReadOnlyList<string>? filterParameters = null, string? chunkKey = null)
        {
            var signals = new Signals(parse.GetValue(SignalTable)!);
            var store = CommonOptions.Store(server.ConnectionString, parse.GetValue(CheckpointTable)!);
            var slot = parse.GetValue(Slot)!;
            var wait = !parse.GetValue(NoWait);
            var timeout = parse.GetValue(Timeout);
            if (timeout <= 0)
                throw new CliException(ExitCodes.Usage, $"--timeout must be a positive number of seconds (was {timeout}).");

            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            CheckpointInfo? before = null;
            if (wait)
            {
                await Database.Slots.FindAsync(connection, slot, cancellationToken).ConfigureAwait(false);
                before = await CheckpointInfo.LoadAsync(store, slot, cancellationToken).ConfigureAwait(false);
            }
            foreach (var table in tables ?? [])
                await EnsureTableExistsAsync(connection, table, cancellationToken).ConfigureAwait(false);
            var signal = await signals.SendAsync(connection, kind, tables, filter, filterParameters, chunkKey, cancellationToken).ConfigureAwait(false);
            var what = tables is { Count: > 0 } ? $"{kind} {string.Join(", ", tables.Select(Qualified))}" : kind;
            await context.Out.WriteLineAsync($"Signal {signal.Id} sent through {signals.Table}: {what}.").ConfigureAwait(false);
            if (!wait)
                return (null, null);
            var after = await signals.WaitAsync(store, slot, signal, checkpoint => done(before, checkpoint), TimeSpan.FromSeconds(timeout), cancellationToken)
                .ConfigureAwait(false);
            return (before, after);
        }

        public SnapshotFollower Follower(ParseResult parse, ServerConnection server, CommandContext context)
            => new(server, CommonOptions.Store(server.ConnectionString, parse.GetValue(CheckpointTable)!), parse.GetValue(Slot)!,
                new ProgressView(context.Out, context.Console.IsInteractive));
    }

    private static Command Start(CommandContext context)
    {
        var tables = new Argument<string[]>("tables") { Description = "Tables to snapshot, [schema.]name (schema public when absent)", Arity = ArgumentArity.OneOrMore };
        var filter = new Option<string?>("--filter") { Description = "SQL condition rows must meet, with $1, $2, ... for the --param values" };
        var parameters = new Option<string[]>("--param", "-p") { Description = "A value of the filter's next $n placeholder (repeat the option)" };
        var chunkKey = new Option<string?>("--chunk-key") { Description = "Column to page through the table by instead of the primary key" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Show a progress bar until the snapshot ends" };
        var signal = new SignalOptions();
        var command = new Command("start", "Request a snapshot of tables (a 'snapshot' signal)") { tables, filter, parameters, chunkKey, follow };
        signal.AddTo(command);
        context.Handle(command, async (parse, server, cancellationToken) =>
        {
            if (parse.GetValue(follow) && parse.GetValue(signal.NoWait))
                throw new CliException(ExitCodes.Usage, "--follow waits for the snapshot; it cannot be combined with --no-wait.");
            var requested = parse.GetValue(tables)!;
            var names = requested.Select(Qualified).Distinct().ToList();
            var (before, after) = await signal.SendAsync(parse, server, context, "snapshot", requested,
                (old, checkpoint) => names.All(t => checkpoint.Queue.Any(q => q.Table == t) || NewOutcome(old, checkpoint, t) is not null), cancellationToken,
                parse.GetValue(filter), parse.GetValue(parameters), parse.GetValue(chunkKey)).ConfigureAwait(false);
            if (after is null)
                return ExitCodes.Success;
            var slot = parse.GetValue(signal.Slot);
            if (!parse.GetValue(follow))
            {
                foreach (var table in names)
                {
                    var position = after.Queue.ToList().FindIndex(q => q.Table == table);
                    var state = position >= 0
                        ? position == 0 && after.Queue[0].Started ? "is being snapshotted" : $"is queued (position {position + 1})"
                        : $"is {Describe(NewOutcome(before, after, table)!)}";
                    await context.Out.WriteLineAsync($"DBSync (slot \"{slot}\"): {table} {state}.").ConfigureAwait(false);
                }
                return ExitCodes.Success;
            }
            var outcomes = await signal.Follower(parse, server, context).FollowAsync(names, before?.Finished ?? [], cancellationToken).ConfigureAwait(false);
            return Summary(outcomes);
        });
        return command;
    }

    private static Command Control(CommandContext context, string kind, string description, bool paused)
    {
        var signal = new SignalOptions();
        var command = new Command(kind, description);
        signal.AddTo(command);
        context.Handle(command, async (parse, server, cancellationToken) =>
        {
            var (_, after) = await signal.SendAsync(parse, server, context, kind, null, (_, checkpoint) => checkpoint.Paused == paused, cancellationToken)
                .ConfigureAwait(false);
            if (after is not null)
            {
                await context.Out.WriteLineAsync(paused
                    ? $"Snapshots of slot \"{after.Slot}\" are paused (after the chunk in flight)."
                    : $"Snapshots of slot \"{after.Slot}\" are resumed.").ConfigureAwait(false);
            }
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Cancel(CommandContext context)
    {
        var tables = new Argument<string[]>("tables") { Description = "Tables whose snapshots to cancel (default: every snapshot)", Arity = ArgumentArity.ZeroOrMore };
        var signal = new SignalOptions();
        var command = new Command("cancel", "Cancel snapshots, of some tables or all (a 'cancel' signal); rows already delivered stay delivered") { tables };
        signal.AddTo(command);
        context.Handle(command, async (parse, server, cancellationToken) =>
        {
            var requested = parse.GetValue(tables) ?? [];
            var names = requested.Select(Qualified).ToHashSet();
            // Done when the tables it names (or, for all, those queued before it) have left the queue, and those that were
            // queued have their outcome (a running one is settled after the chunk in flight stops).
            List<string> Targets(CheckpointInfo? old) => names.Count > 0 ? [.. names] : old?.Queue.Select(q => q.Table).ToList() ?? [];
            var (before, after) = await signal.SendAsync(parse, server, context, "cancel", requested.Length == 0 ? null : requested,
                (old, checkpoint) => Targets(old).All(t => checkpoint.Queue.All(q => q.Table != t)
                                                           && (old?.Queue.Any(q => q.Table == t) != true || NewOutcome(old, checkpoint, t) is not null)),
                cancellationToken).ConfigureAwait(false);
            if (after is null)
                return ExitCodes.Success;
            var targets = Targets(before);
            if (targets.Count == 0)
                await context.Out.WriteLineAsync("No snapshot was queued.").ConfigureAwait(false);
            foreach (var table in targets)
            {
                var outcome = NewOutcome(before, after, table);
                await context.Out.WriteLineAsync(outcome is null ? $"{table}: no snapshot was queued." : $"{table}: {Describe(outcome)}.").ConfigureAwait(false);
            }
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Progress(CommandContext context)
    {
        var tables = new Argument<string[]>("tables") { Description = "Tables to follow (default: every queued snapshot until the queue is empty)", Arity = ArgumentArity.ZeroOrMore };
        var slotOption = CommonOptions.Slot();
        var tableOption = CommonOptions.CheckpointTable();
        var command = new Command("progress", "Show a live progress bar of the snapshots of a slot until they end") { tables, slotOption, tableOption };
        context.Handle(command, async (parse, server, cancellationToken) =>
        {
            var slot = parse.GetValue(slotOption)!;
            var store = CommonOptions.Store(server.ConnectionString, parse.GetValue(tableOption)!);
            await server.EnsureReachableAsync(cancellationToken).ConfigureAwait(false);
            var checkpoint = await CheckpointCommands.LoadAsync(store, slot, cancellationToken).ConfigureAwait(false);
            var names = parse.GetValue(tables) is { Length: > 0 } given ? given.Select(Qualified).Distinct().ToList() : null;
            if (names is null && checkpoint.Queue.Count == 0)
            {
                await context.Out.WriteLineAsync($"No snapshot is queued for slot \"{slot}\".").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            var follower = new SnapshotFollower(server, store, slot, new ProgressView(context.Out, context.Console.IsInteractive));
            // Outcomes from before are old, except for a named table that is no longer queued: its last one is the answer.
            var outcomes = await follower.FollowAsync(names, checkpoint.Finished, cancellationToken).ConfigureAwait(false);
            return Summary(outcomes);
        });
        return command;
    }

    private static int Summary(IReadOnlyList<FinishedSnapshot> outcomes)
        => outcomes.All(o => o.Outcome == SnapshotOutcome.Completed) ? ExitCodes.Success : ExitCodes.Failed;

    private static FinishedSnapshot? NewOutcome(CheckpointInfo? before, CheckpointInfo after, string table)
        => after.Finished.LastOrDefault(f => f.Table == table && before?.Finished.Contains(f) != true);

    private static string Describe(FinishedSnapshot outcome)
        => $"{CheckpointCommands.Outcome(outcome.Outcome)} after {Units.Count(outcome.RowsRead)} rows in {outcome.Chunks} chunk(s)" +
           (outcome.Detail is null ? "" : $" ({outcome.Detail})");

    /// <summary>A table as DBSync names it in the checkpoint: <c>schema.name</c>, schema public when absent.</summary>
    private static string Qualified(string table) => TableName.Parse(table).ToString();

    private static async Task EnsureTableExistsAsync(NpgsqlConnection connection, string table, CancellationToken cancellationToken)
    {
        var name = TableName.Parse(table);
        if (!await Signals.ExistsAsync(connection, name, cancellationToken).ConfigureAwait(false))
            throw new CliException(ExitCodes.NotFound, $"Table {name} does not exist in database {connection.Database}.");
    }
}
