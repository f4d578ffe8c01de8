namespace DBSync.Cli;

/// <summary>Where a command writes and reads: the process's console, or writers a test hands in.</summary>
/// <param name="Out">Results.</param>
/// <param name="Error">Errors and warnings.</param>
/// <param name="In">Answers to confirmation prompts.</param>
/// <param name="IsInteractive">Whether <paramref name="Out"/> is a terminal: progress is then redrawn in place rather
/// than written as one line per change.</param>
internal sealed record CliConsole(TextWriter Out, TextWriter Error, TextReader In, bool IsInteractive)
{
    public static CliConsole System => new(Console.Out, Console.Error, Console.In, !Console.IsOutputRedirected);
}
