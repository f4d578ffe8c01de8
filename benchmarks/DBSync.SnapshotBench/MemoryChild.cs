using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace DBSync.SnapshotBench;

/// <summary>The peak memory of one DBSync snapshot, in a process of its own.</summary>
internal static partial class MemoryChild
{
    public const string ConnectionVariable = "DBSYNC_BENCH_CONNECTION";

    private const string ResultPrefix = "memory-result";

    /// <summary>The child: snapshots users once and prints one result line.</summary>
    public static async Task<int> RunAsync(BenchSettings settings)
    {
        var connectionString = Environment.GetEnvironmentVariable(ConnectionVariable);
        if (string.IsNullOrEmpty(connectionString))
        {
            await Console.Error.WriteLineAsync($"Set {ConnectionVariable} to the connection string of the database holding the users table.");
            return 2;
        }

        double seconds;
        long rows;
        long managedPeak;
        long committedPeak;
        using (var sampler = new ManagedMemorySampler())
        {
            await using (var runner = await DbSyncRunner.StartAsync(connectionString, $"dbsync_bench_mem_{Environment.ProcessId}", settings.ChunkSize, settings.BusyShare))
            {
                seconds = await runner.SnapshotAsync();
                rows = runner.Counter.Rows;
            }
            (managedPeak, committedPeak) = sampler.Stop();
        }

        using var self = Process.GetCurrentProcess();
        self.Refresh();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{ResultPrefix} rows={rows} seconds={seconds:0.000} peak_working_set={self.PeakWorkingSet64} managed_peak={managedPeak} gc_committed_peak={committedPeak}"));
        if (rows != settings.Rows)
        {
            await Console.Error.WriteLineAsync($"Expected {settings.Rows} rows, the snapshot delivered {rows}.");
            return 1;
        }
        return 0;
    }

    /// <summary>The parent: runs the child for <paramref name="rows"/> rows and parses its result line.</summary>
    public static async Task<MemoryResult> MeasureAsync(string connectionString, int rows, int chunkSize)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var (fileName, prefix) = ChildCommand();
        start.FileName = fileName;
        foreach (var argument in prefix.Concat([BenchSettings.MemoryMode, "--rows", rows.ToString(CultureInfo.InvariantCulture), "--chunk-size", chunkSize.ToString(CultureInfo.InvariantCulture)]))
            start.ArgumentList.Add(argument);
        start.Environment[ConnectionVariable] = connectionString;

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var output = await stdout;
        var errors = await stderr;
        var match = ResultPattern().Match(output);
        if (process.ExitCode != 0 || !match.Success)
            throw new InvalidOperationException($"The memory child for {rows} rows exited with {process.ExitCode}:\n{output}\n{errors}");

        long Field(string name) => long.Parse(match.Groups[name].Value, CultureInfo.InvariantCulture);
        return new MemoryResult(
            Field("rows"),
            double.Parse(match.Groups["seconds"].Value, CultureInfo.InvariantCulture),
            Field("ws"),
            Field("managed"),
            Field("committed"),
            $"{ConnectionVariable}='<connection string>' {fileName} {string.Join(' ', start.ArgumentList)}");
    }

    /// <summary>This program again: through the dotnet host when it runs as a dll, else its own executable.</summary>
    private static (string FileName, string[] Prefix) ChildCommand()
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("The process path is unknown.");
        var assembly = typeof(MemoryChild).Assembly.Location;
        return Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase)
            ? (host, [assembly])
            : (host, []);
    }

    [GeneratedRegex(@"^memory-result rows=(?<rows>\d+) seconds=(?<seconds>[0-9.]+) peak_working_set=(?<ws>\d+) managed_peak=(?<managed>\d+) gc_committed_peak=(?<committed>\d+)",
        RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex ResultPattern();
}

/// <summary>One memory child's figures (bytes).</summary>
internal sealed record MemoryResult(long Rows, double Seconds, long PeakWorkingSet, long ManagedPeak, long CommittedPeak, string Command);

/// <summary>
/// Samples the managed heap every 10 ms on a thread of its own: the runtime keeps no managed peak, so the largest
/// <see cref="GC.GetTotalMemory(bool)"/> and GC committed size seen are the estimate.
/// </summary>
internal sealed class ManagedMemorySampler : IDisposable
{
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _stop = new();
    private long _managedPeak;
    private long _committedPeak;

    public ManagedMemorySampler()
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = "memory sampler" };
        _thread.Start();
    }

    public (long ManagedPeak, long CommittedPeak) Stop()
    {
        _stop.Set();
        _thread.Join();
        Sample();
        return (_managedPeak, _committedPeak);
    }

    public void Dispose()
    {
        if (!_stop.IsSet)
            Stop();
        _stop.Dispose();
    }

    private void Loop()
    {
        do
        {
            Sample();
        }
        while (!_stop.Wait(10));
    }

    private void Sample()
    {
        _managedPeak = Math.Max(_managedPeak, GC.GetTotalMemory(forceFullCollection: false));
        _committedPeak = Math.Max(_committedPeak, GC.GetGCMemoryInfo().TotalCommittedBytes);
    }
}
