using System.CommandLine;
using DBSync.Cli.Commands;
using DBSync.Cli.Database;
using Npgsql;

namespace DBSync.Cli;

/// <summary>
/// The <c>dbsync</c> command line: parses the arguments, runs the command, and turns every failure into a message and
/// an exit code (<see cref="ExitCodes"/>). Tests call <see cref="RunAsync"/> in-process with their own writers.
/// </summary>
internal static class DBSyncCli
{
    public static async Task<int> RunAsync(IReadOnlyList<string> args, CliConsole console, Func<string, string?> environment, CancellationToken cancellationToken = default)
    {
        var connection = new Option<string?>("--connection", "-c")
        {
            Description = $"Npgsql connection string of the source database (default: the {ServerConnection.EnvironmentVariable} environment variable)",
            Recursive = true,
        };
        ServerConnection? server = null;
        var context = new CommandContext(console, parse => server = ServerConnection.Resolve(parse.GetValue(connection), environment));
        var root = new Command("dbsync", "Inspect and control DBSync change-data-capture pipelines on a PostgreSQL server.\n\n" + ExitCodes.Help)
        {
            new System.CommandLine.Help.HelpOption(),
            new VersionOption(),
            connection,
            StatusCommands.Slots(context),
            StatusCommands.Publications(context),
            StatusCommands.Lag(context),
            CheckpointCommands.Create(context),
            SnapshotCommands.Create(context),
            SlotCommands.Create(context),
            DdlCommands.Create(context),
        };

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
                await console.Error.WriteLineAsync(error.Message).ConfigureAwait(false);
            await console.Error.WriteLineAsync($"See '{CommandPath(parse.CommandResult.Command, root)} --help'.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        try
        {
            var invocation = new InvocationConfiguration { Output = console.Out, Error = console.Error, EnableDefaultExceptionHandler = false };
            return await parse.InvokeAsync(invocation, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            var (code, message) = Classify(e);
            await console.Error.WriteLineAsync(server?.Redact(message) ?? message).ConfigureAwait(false);
            return code;
        }
    }

    /// <summary>The exit code and message of a failure: the CLI's own errors as they are, the server's by kind.</summary>
    private static (int Code, string Message) Classify(Exception e) => e switch
    {
        CliException cli => (cli.ExitCode, cli.Message),
        OperationCanceledException => (ExitCodes.Interrupted, "Interrupted."),
        PostgresException { SqlState: var state } postgres when state.StartsWith("28", StringComparison.Ordinal) || state == "3D000"
            => (ExitCodes.Connection, $"The server refused the login: {ServerConnection.Describe(postgres)}"),
        PostgresException { SqlState: "42501" } postgres
            => (ExitCodes.Failed, $"Permission denied: {postgres.MessageText}. Connect as a role with the privilege, or grant it to this one."),
        PostgresException postgres => (ExitCodes.Failed, $"The server reported an error: {ServerConnection.Describe(postgres)}"),
        NpgsqlException npgsql => (ExitCodes.Connection, $"Lost the connection to the server: {ServerConnection.Describe(npgsql)}"),
        DBSyncException dbsync => (ExitCodes.Failed, dbsync.Message),
        _ => (ExitCodes.Failed, $"Unexpected error: {e}"),
    };

    private static string CommandPath(Command command, Command root)
    {
        var path = new List<string>();
        for (Symbol? symbol = command; symbol is Command current; symbol = current.Parents.FirstOrDefault())
        {
            path.Insert(0, current.Name);
            if (current == root)
                break;
        }
        return string.Join(' ', path);
    }
}

/// <summary>What every command's action needs: the console, and the server (resolved when the action runs, so that
/// <c>--help</c> and parse errors need no connection string).</summary>
internal sealed class CommandContext(CliConsole console, Func<ParseResult, ServerConnection> server)
{
    public CliConsole Console { get; } = console;

    public TextWriter Out => Console.Out;

    /// <summary>Asks <paramref name="question"/> (with <c>[y/N]</c>) and reads the answer: anything but y or yes (or the end
    /// of the input) refuses, with <paramref name="refused"/> and exit code <see cref="ExitCodes.Refused"/>.</summary>
    public async Task ConfirmAsync(string question, string refused, CancellationToken cancellationToken)
    {
        await Out.WriteAsync($"{question} [y/N] ").ConfigureAwait(false);
        await Out.FlushAsync(cancellationToken).ConfigureAwait(false);
        var answer = (await Console.In.ReadLineAsync(cancellationToken).ConfigureAwait(false))?.Trim().ToLowerInvariant();
        if (answer is "y" or "yes")
            return;
        if (answer is null)
            await Out.WriteLineAsync().ConfigureAwait(false);
        throw new CliException(ExitCodes.Refused, $"{refused}: not confirmed (answer y, or pass --yes).");
    }

    /// <summary>Sets <paramref name="command"/>'s action: <paramref name="action"/> with the parse result and the server.</summary>
    public void Handle(Command command, Func<ParseResult, ServerConnection, CancellationToken, Task<int>> action)
        => command.SetAction((parse, cancellationToken) => action(parse, server(parse), cancellationToken));
}
