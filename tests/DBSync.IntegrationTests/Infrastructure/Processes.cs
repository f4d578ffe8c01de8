using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>Runs programs the tests need (dotnet publish, pack, build; a published binary) and finds the repository.</summary>
public static class Processes
{
    /// <summary>Runs <paramref name="file"/> to its end and returns its exit code with stdout and stderr; kills it after
    /// <paramref name="timeout"/>.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, IEnumerable<string> arguments, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            start.Environment[name] = value;
        if (workingDirectory is not null)
            start.WorkingDirectory = workingDirectory;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {file}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', start.ArgumentList)} did not finish within {timeout}.");
        }
        return (process.ExitCode, await output + await error);
    }

    public static string? FindOnPath(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    /// <summary>The repository's root directory (this file is in tests/DBSync.IntegrationTests/Infrastructure).</summary>
    public static string RepositoryRoot() => Path.GetFullPath(Path.Combine(ThisFile(), "..", "..", "..", ".."));

    private static string ThisFile([CallerFilePath] string path = "") => path;
}
