using System.ComponentModel;
using System.Diagnostics;

namespace DBSync.Testing;

/// <summary>Runs a command-line tool (initdb, pg_ctl, npm, tar, ...) to its end, as the <c>postgres</c> user when asked.</summary>
internal static class ToolProcess
{
    /// <summary>Whether this process runs as root, so the server's tools must run as <c>postgres</c> (the server refuses root).</summary>
    public static bool IsRoot { get; } = Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root";

    /// <summary>Runs <paramref name="fileName"/> and returns its standard output; a non-zero exit is an exception with both outputs.</summary>
    /// <exception cref="FileNotFoundException">The tool is not installed (not on PATH).</exception>
    public static async Task<string> RunAsync(string fileName, IReadOnlyList<string> arguments, bool asPostgres, CancellationToken cancellationToken,
        string? workingDirectory = null)
    {
        var start = new ProcessStartInfo
        {
            FileName = asPostgres ? "runuser" : fileName,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        if (asPostgres)
        {
            foreach (var a in new[] { "-u", "postgres", "--", fileName })
                start.ArgumentList.Add(a);
        }
        foreach (var a in arguments)
            start.ArgumentList.Add(a);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        }
        catch (Win32Exception e)
        {
            throw new FileNotFoundException($"Could not start {start.FileName}: {e.Message}.", start.FileName, e);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"{Path.GetFileName(fileName)} {string.Join(' ', arguments)} failed with exit code {process.ExitCode}:\n{await stdout.ConfigureAwait(false)}\n{await stderr.ConfigureAwait(false)}");
            }
            return await stdout.ConfigureAwait(false);
        }
    }
}
