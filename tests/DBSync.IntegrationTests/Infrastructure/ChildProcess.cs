using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using DBSync.Testing;
using Npgsql;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>Programs the tests run as processes of their own (dotnet publish, pack, build, a tool; a sample or a
/// published binary against the test server), and where the repository is.</summary>
public static class ChildProcess
{
    /// <summary>Runs <paramref name="file"/> to its end and returns its exit code and output (standard output, then
    /// standard error); kills it and throws after <paramref name="timeout"/>.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] arguments, TimeSpan timeout, Dictionary<string, string?>? environment = null,
        string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? [])
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
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish within {timeout}.");
        }
        return (process.ExitCode, await output + await error);
    }

    /// <summary>The POSTGRES_* variables that point a sample at <paramref name="server"/>.</summary>
    public static Dictionary<string, string?> ServerEnvironment(PostgresServer server)
    {
        var admin = new NpgsqlConnectionStringBuilder(server.ConnectionString);
        return new()
        {
            ["POSTGRES_HOST"] = admin.Host,
            ["POSTGRES_PORT"] = admin.Port.ToString(CultureInfo.InvariantCulture),
            ["POSTGRES_USER"] = admin.Username,
            ["POSTGRES_PASSWORD"] = admin.Password,
            ["POSTGRES_NAME"] = admin.Database,
        };
    }

    /// <summary>The built output of another project of the repository, in this test assembly's configuration
    /// (<c>bin/Release/net10.0</c>, say).</summary>
    public static string OutputOf(string project, string file)
    {
        var tests = Path.Combine(RepositoryRoot(), "tests", "DBSync.IntegrationTests");
        return Path.Combine(RepositoryRoot(), project, Path.GetRelativePath(tests, AppContext.BaseDirectory), file);
    }

    /// <summary>The full path of <paramref name="name"/> in a directory of PATH, or null.</summary>
    public static string? FindOnPath(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    /// <summary>The repository's root directory (where this file was compiled from).</summary>
    public static string RepositoryRoot() => RootAbove();

    private static string RootAbove([CallerFilePath] string path = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", ".."));
}
