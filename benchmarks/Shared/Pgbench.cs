using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace DBSync.Bench;

/// <summary>Runs PostgreSQL's pgbench against the benchmark database.</summary>
internal sealed partial class Pgbench
{
    private readonly NpgsqlConnectionStringBuilder _target;

    public Pgbench(string executable, string connectionString)
    {
        Executable = executable;
        _target = new NpgsqlConnectionStringBuilder(connectionString);
    }

    public string Executable { get; }

    /// <summary>pgbench next to the server's binaries, else the newest /usr/lib/postgresql/*/bin/pgbench, else pgbench on PATH.</summary>
    public static string Find(string? binDirectory) => FindTool(binDirectory, "pgbench");

    /// <summary>A PostgreSQL client program: next to the server's binaries, in PG_BIN, the newest /usr/lib/postgresql/*/bin, else PATH.</summary>
    public static string FindTool(string? binDirectory, string tool)
    {
        var candidates = new List<string>();
        if (binDirectory is not null)
            candidates.Add(Path.Combine(binDirectory, tool));
        if (Environment.GetEnvironmentVariable("PG_BIN") is { Length: > 0 } pgBin)
            candidates.Add(Path.Combine(pgBin, tool));
        if (Directory.Exists("/usr/lib/postgresql"))
        {
            candidates.AddRange(Directory.GetDirectories("/usr/lib/postgresql")
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0)
                .Select(d => Path.Combine(d, "bin", tool)));
        }
        return candidates.FirstOrDefault(File.Exists) ?? tool;
    }

    /// <summary>The connection arguments (host, port, user, database).</summary>
    private string[] ConnectionArguments =>
        ["-h", _target.Host!, "-p", _target.Port.ToString(CultureInfo.InvariantCulture), "-U", _target.Username!, _target.Database!];

    public async Task<double> InitializeAsync(int scale)
    {
        var watch = Stopwatch.StartNew();
        await RunAsync(["-i", "-q", "-s", scale.ToString(CultureInfo.InvariantCulture), .. ConnectionArguments]);
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>The default TPC-B-like script; returns its tps (without initial connection time).</summary>
    public async Task<double> RunAsync(int clients, int threads, int seconds)
    {
        var output = await RunAsync(TpcbArguments(clients, threads, seconds));
        var match = TpsPattern().Match(output);
        if (!match.Success)
            throw new InvalidOperationException($"pgbench printed no tps:\n{output}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The default TPC-B-like script with a progress report every second (<c>-P 1</c>); <paramref name="started"/> is
    /// called as the process starts. Returns the tps of each second, indexed from 0 (the report at 1.0 s is second 0).
    /// </summary>
    public async Task<List<double>> RunPerSecondAsync(int clients, int threads, int seconds, Action started)
    {
        var output = await RunAsync([.. TpcbArguments(clients, threads, seconds), "-P", "1"], started, stderrToo: true);
        var perSecond = new List<double>();
        foreach (Match match in ProgressPattern().Matches(output))
        {
            var second = (int)Math.Round(double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture)) - 1;
            while (perSecond.Count <= second)
                perSecond.Add(double.NaN);
            perSecond[second] = double.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        }
        if (perSecond.Count == 0)
            throw new InvalidOperationException($"pgbench printed no progress lines:\n{output}");
        return perSecond;
    }

    /// <summary>A custom script (<c>-n -f</c>, no vacuum of pgbench's own tables): <paramref name="transactionsPerClient"/>
    /// transactions per client.</summary>
    public async Task RunScriptAsync(string script, int clients, int threads, int transactionsPerClient)
        => await RunAsync(["-n", "-f", script, "-c", clients.ToString(CultureInfo.InvariantCulture), "-j", threads.ToString(CultureInfo.InvariantCulture),
            "-t", transactionsPerClient.ToString(CultureInfo.InvariantCulture), .. ConnectionArguments]);

    /// <summary>A custom script at a fixed rate (<c>-R</c>) for <paramref name="seconds"/>; returns the tps achieved.</summary>
    public async Task<double> RunScriptAtRateAsync(string script, int clients, int threads, int rate, int seconds)
    {
        var output = await RunAsync(["-n", "-f", script, "-c", clients.ToString(CultureInfo.InvariantCulture), "-j", threads.ToString(CultureInfo.InvariantCulture),
            "-R", rate.ToString(CultureInfo.InvariantCulture), "-T", seconds.ToString(CultureInfo.InvariantCulture), .. ConnectionArguments]);
        var match = TpsPattern().Match(output);
        return match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : throw new InvalidOperationException($"pgbench printed no tps:\n{output}");
    }

    /// <summary>The command line of <see cref="RunAsync(int, int, int)"/>, for the report.</summary>
    public string CommandLine(int clients, int threads, int seconds) => $"{Executable} {string.Join(' ', TpcbArguments(clients, threads, seconds))}";

    private string[] TpcbArguments(int clients, int threads, int seconds) =>
    [
        "-c", clients.ToString(CultureInfo.InvariantCulture),
        "-j", threads.ToString(CultureInfo.InvariantCulture),
        "-T", seconds.ToString(CultureInfo.InvariantCulture),
        .. ConnectionArguments,
    ];

    private async Task<string> RunAsync(IEnumerable<string> arguments, Action? started = null, bool stderrToo = false)
    {
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        if (!string.IsNullOrEmpty(_target.Password))
            start.Environment["PGPASSWORD"] = _target.Password;

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {Executable}.");
        started?.Invoke();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var output = await stdout;
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{Executable} {string.Join(' ', start.ArgumentList)} exited with {process.ExitCode}:\n{output}\n{await stderr}");
        var errors = await stderr;
        return stderrToo ? output + errors : output;
    }

    [GeneratedRegex(@"^tps = ([0-9.]+)", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex TpsPattern();

    [GeneratedRegex(@"^progress: ([0-9.]+) s, ([0-9.]+) tps", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex ProgressPattern();
}
