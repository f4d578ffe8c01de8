namespace DBSync.Cli;

/// <summary>The process exit codes of <c>dbsync</c>, as <c>--help</c> and docs/cli.md list them.</summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>A followed snapshot failed, was cancelled or skipped; a server error the other codes do not cover.</summary>
    public const int Failed = 1;

    /// <summary>Bad arguments or options, no connection string, a malformed connection string.</summary>
    public const int Usage = 2;

    /// <summary>The server cannot be reached, or refuses the login (authentication, missing database).</summary>
    public const int Connection = 3;

    /// <summary>The slot, checkpoint, signal table or snapshot named does not exist.</summary>
    public const int NotFound = 4;

    /// <summary>Refused: the slot is in use by a consumer, or the drop was not confirmed.</summary>
    public const int Refused = 5;

    /// <summary>No DBSync client acted on the signal within <c>--timeout</c>.</summary>
    public const int Timeout = 6;

    /// <summary>Interrupted (Ctrl+C).</summary>
    public const int Interrupted = 130;

    /// <summary>The list shown by <c>dbsync --help</c>.</summary>
    public const string Help =
        """
        Exit codes:
          0    success
          1    a followed snapshot failed, was cancelled or skipped; another server error
          2    usage: bad arguments, no or malformed connection string
          3    cannot connect or log in
          4    not found: slot, checkpoint, signal table or snapshot
          5    refused: the slot is in use, or the drop was not confirmed
          6    timeout: no DBSync client acted on the signal in time
          130  interrupted
        """;
}

/// <summary>A failure the CLI reports with its message alone (no stack trace) and a given exit code.</summary>
internal sealed class CliException(int exitCode, string message, Exception? innerException = null) : Exception(message, innerException)
{
    public int ExitCode { get; } = exitCode;

    /// <summary>A usage error from an argument the runtime refused.</summary>
    public static CliException Usage(string option, ArgumentException e) => new(ExitCodes.Usage, $"{option}: {Plain(e)}", e);

    /// <summary>An exception's message, without the "(Parameter ...)" tail .NET adds to an <see cref="ArgumentException"/>'s.</summary>
    public static string Plain(Exception e)
        => e is ArgumentException { ParamName: { } parameter } ? e.Message.Replace($" (Parameter '{parameter}')", "", StringComparison.Ordinal) : e.Message;
}
