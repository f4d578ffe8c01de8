using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using DBSync.Bench;
using static DBSync.Bench.Stats;
using DBSync.Testing;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.StreamBench;

/// <summary>The whole benchmark against one server: the backlog, the drains, the latency, then the figures and ratios.</summary>
internal static partial class FullRun
{
    // dbsync-npgsql: DBSync on Npgsql's replication connection (its fallback), to show what its own connection changes.
    private static readonly string[] s_consumers = ["pg_recvlogical", "npgsql", "dbsync", "dbsync-npgsql"];

    public static async Task<int> RunAsync(StreamSettings settings)
    {
        var total = Stopwatch.StartNew();
        await using var server = await PostgresServer.StartAsync();
        var version = await server.ScalarAsync<string>("SHOW server_version");
        Log($"PostgreSQL {version} ({(server.IsThrowaway ? "throwaway" : "POSTGRES_HOST")}, port {server.Port}); {Environment.ProcessorCount} cores; .NET {Environment.Version}");
        var database = await server.CreateDatabaseAsync("dbsync_stream_bench");
        try
        {
            var connectionString = server.ConnectionStringFor(database);
            var pgbench = new Pgbench(Pgbench.Find(server.BinDirectory), connectionString);
            var watch = Stopwatch.StartNew();
            var backlog = await Backlog.BuildAsync(connectionString, pgbench, settings.Rows, settings.Batch, settings.Updates);
            Log($"backlog: {settings.Rows:N0} users rows in {settings.Rows / settings.Batch:N0} transactions, then {settings.Updates:N0} single-row update transactions; ends at {backlog.End}; built in {watch.Elapsed.TotalSeconds:0} s");

            var results = s_consumers.ToDictionary(c => c, _ => new List<DrainResult>());
            for (var round = 1; round <= settings.Rounds; round++)
            {
                // The order turns every round, so that no consumer always runs first (cold caches) or last.
                for (var i = 0; i < s_consumers.Length; i++)
                {
                    var consumer = s_consumers[(i + round - 1) % s_consumers.Length];
                    var slot = $"dbsync_e2e_{consumer.Replace("pg_", "", StringComparison.Ordinal).Replace('-', '_')}_{round}";
                    await Backlog.CopyAsync(connectionString, slot);
                    await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
                    var (result, inProcessWall) = consumer == "pg_recvlogical"
                        ? (await RecvlogicalAsync(server.BinDirectory, connectionString, slot, backlog), double.NaN)
                        : await DotnetDrainAsync(consumer, connectionString, slot, backlog);
                    await Slots.DropAsync(connectionString, slot);
                    if (consumer != "pg_recvlogical" && result.Events != backlog.Rows)
                        throw new InvalidOperationException($"{consumer} saw {result.Events} row events; the backlog has {backlog.Rows}.");
                    results[consumer].Add(result);
                    Log($"round {round}: {consumer,-14} wall {result.WallSeconds,7:0.000} s, cpu {result.CpuSeconds,7:0.000} s, {result.AllocatedBytes / (double)backlog.Rows,8:0.0} B allocated per event{(double.IsNaN(inProcessWall) ? "" : $" (in-process, from connecting: {inProcessWall:0.000} s)")}");
                }
            }

            // Twice, in processes of their own, with .NET's defaults: on DBSync's own replication connection, and on Npgsql's.
            string[] Latency(ReplicationTransport transport) =>
                ["latency", pgbench.Executable, settings.LatencyRate.ToString(CultureInfo.InvariantCulture), settings.LatencySeconds.ToString(CultureInfo.InvariantCulture), transport.ToString()];
            var latency = LatencyResult.Parse((await RunChildAsync(Latency(ReplicationTransport.Auto), connectionString, LatencyResult.Prefix, null)).Line);
            var npgsqlLatency = LatencyResult.Parse((await RunChildAsync(Latency(ReplicationTransport.Npgsql), connectionString, LatencyResult.Prefix, null)).Line);
            Print(settings, backlog, results, latency, npgsqlLatency, total.Elapsed);
        }
        finally
        {
            await server.DropDatabaseAsync(database);
        }
        return 0;
    }

    /// <summary>pg_recvlogical into /dev/null with the options DBSync uses (protocol 2, binary), timed like every consumer
    /// (<see cref="TimeProcessAsync"/>).</summary>
    private static async Task<DrainResult> RecvlogicalAsync(string? binDirectory, string connectionString, string slot, Backlog backlog)
    {
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        var start = new ProcessStartInfo(Pgbench.FindTool(binDirectory, "pg_recvlogical"));
        foreach (var argument in new[]
                 {
                     "-h", target.Host!, "-p", target.Port.ToString(CultureInfo.InvariantCulture), "-U", target.Username!, "-d", target.Database!,
                     "--slot", slot, "--start", "--no-loop", "-f", "/dev/null", "--endpos", backlog.End.ToString(),
                     "-o", "proto_version=2", "-o", $"publication_names={Backlog.Publication}", "-o", "binary=true",
                 })
        {
            start.ArgumentList.Add(argument);
        }
        if (!string.IsNullOrEmpty(target.Password))
            start.Environment["PGPASSWORD"] = target.Password;

        var (_, timing) = await TimeProcessAsync(start);
        return new DrainResult("pg_recvlogical", timing.Wall, timing.Cpu, timing.User, 0, backlog.Rows, 0);
    }

    /// <summary>One .NET drain in a child process of its own: its wall and CPU time measured from the outside, as
    /// pg_recvlogical's; the bytes it allocated and the events it saw from its own report.</summary>
    private static async Task<(DrainResult Result, double InProcessWall)> DotnetDrainAsync(string consumer, string connectionString, string slot, Backlog backlog)
    {
        var (line, timing) = await RunChildAsync(["drain", consumer, slot, backlog.End.ToString()], connectionString, DrainResult.Prefix, slot);
        var reported = DrainResult.Parse(line);
        return (reported with { WallSeconds = timing.Wall, CpuSeconds = timing.Cpu, UserSeconds = timing.User }, reported.WallSeconds);
    }

    /// <summary>
    /// Runs a consumer's process to its end. Every consumer is timed the same way, from its process start to its exit:
    /// wall time by a clock around it, CPU time (user plus system, and user) by getrusage(RUSAGE_CHILDREN) around it, so
    /// start-up (the .NET runtime's, connecting) counts for each. Returns its standard output.
    /// </summary>
    private static async Task<(string Output, ProcessTiming Timing)> TimeProcessAsync(ProcessStartInfo start)
    {
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        var (cpuBefore, userBefore) = ChildrenCpuSeconds();
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {start.FileName}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var wall = watch.Elapsed.TotalSeconds;
        var (cpuAfter, userAfter) = ChildrenCpuSeconds();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{start.FileName} {string.Join(' ', start.ArgumentList)} exited with {process.ExitCode}: {await errors}");
        return (await output, new ProcessTiming(wall, cpuAfter - cpuBefore, userAfter - userBefore));
    }

    /// <summary>This program in a child process; returns the line of its output that starts with <paramref name="prefix"/>,
    /// and the process's timing.</summary>
    private static async Task<(string Line, ProcessTiming Timing)> RunChildAsync(IEnumerable<string> childArguments, string connectionString, string prefix, string? traceName)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!);
        var arguments = new List<string>();
        if (!Path.GetFileNameWithoutExtension(Environment.ProcessPath!).Equals("DBSync.StreamBench", StringComparison.Ordinal))
            arguments.Add(typeof(FullRun).Assembly.Location); // run through the dotnet host
        arguments.AddRange(childArguments);
        // With DBSYNC_BENCH_TRACE set to a folder, each drain runs under dotnet-trace (thread-time sampling), for profiles.
        if (traceName is not null && Environment.GetEnvironmentVariable("DBSYNC_BENCH_TRACE") is { Length: > 0 } traces)
        {
            arguments.InsertRange(0, ["collect", "--show-child-io", "--profile", "dotnet-sampled-thread-time", "-o", Path.Combine(traces, $"{traceName}.nettrace"), "--", start.FileName]);
            start.FileName = "dotnet-trace";
        }
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        start.Environment["DBSYNC_BENCH_CONNECTION"] = connectionString;
        var (output, timing) = await TimeProcessAsync(start);
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"{string.Join(' ', childArguments)} printed no {prefix} line:\n{output}");
        return (line.Trim(), timing);
    }

    /// <summary>A consumer process's wall and CPU seconds, from its start to its exit.</summary>
    private readonly record struct ProcessTiming(double Wall, double Cpu, double User);

    private static void Print(StreamSettings settings, Backlog backlog, Dictionary<string, List<DrainResult>> results, LatencyResult latency,
        LatencyResult npgsqlLatency, TimeSpan elapsed)
    {
        Console.WriteLine();
        Log($"==== results: medians of {settings.Rounds} rounds in this run; {Environment.ProcessorCount} cores ====");
        Log($"backlog: {backlog.Rows:N0} row events in {backlog.Transactions:N0} transactions");
        Log($"every consumer timed the same way: from its process start to its exit (wall by a clock around the process, CPU by getrusage of the finished child)");
        Log($"{"consumer",-16} {"wall s",8} {"cpu s",8} {"user s",8} {"B/event",9}   wall runs / cpu runs");
        foreach (var (consumer, runs) in results)
        {
            Log($"{consumer,-16} {Median(runs.Select(r => r.WallSeconds)),8:0.000} {Median(runs.Select(r => r.CpuSeconds)),8:0.000} {Median(runs.Select(r => r.UserSeconds)),8:0.000} {Median(runs.Select(r => r.AllocatedBytes / (double)backlog.Rows)),9:0.0}   {Runs(runs.Select(r => r.WallSeconds), "0.000")} / {Runs(runs.Select(r => r.CpuSeconds), "0.000")}");
        }
        foreach (var (setting, result) in new[] { ("DBSync's replication connection", latency), ("DBSync on Npgsql's replication connection", npgsqlLatency) })
            Log($"latency, commit to handler, {setting}: {result.Transactions:N0} transactions at {result.Rate:N0} tx/s requested ({result.AchievedRate:N0} achieved): p50 {result.P50Milliseconds:0.00} ms, p99 {result.P99Milliseconds:0.00} ms, max {result.MaxMilliseconds:0.00} ms");
        Log($"benchmark program time: {elapsed.TotalSeconds:0} s");
        Log($"reproduce: benchmarks/run-e2e.sh {settings.ToArguments()}");
        var wall = Median(results["dbsync"].Select(r => r.WallSeconds)) / Median(results["pg_recvlogical"].Select(r => r.WallSeconds));
        var cpu = Median(results["dbsync"].Select(r => r.CpuSeconds)) / Median(results["npgsql"].Select(r => r.CpuSeconds));
        Log($"ratio wall dbsync/pg_recvlogical = {wall:0.00}");
        Log($"ratio cpu dbsync/npgsql = {cpu:0.00}");
        Log($"alloc bytes per event dbsync = {Median(results["dbsync"].Select(r => r.AllocatedBytes / (double)backlog.Rows)):0}");
    }

    private static void Log(FormattableString message) => Console.WriteLine(message.ToString(CultureInfo.InvariantCulture));

    /// <summary>CPU (user plus system) and user CPU of every child process this process has waited for.</summary>
    private static (double Cpu, double User) ChildrenCpuSeconds()
    {
        const int children = -1; // RUSAGE_CHILDREN
        if (GetRusage(children, out var usage) != 0)
            throw new InvalidOperationException($"getrusage failed ({Marshal.GetLastPInvokeError()}).");
        var user = usage.UserSeconds + (usage.UserMicroseconds / 1e6);
        return (user + usage.SystemSeconds + (usage.SystemMicroseconds / 1e6), user);
    }

    [LibraryImport("libc", EntryPoint = "getrusage", SetLastError = true)]
    private static partial int GetRusage(int who, out Rusage usage);

    /// <summary>struct rusage on 64-bit Linux: two timevals, then fourteen longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Rusage
    {
        public long UserSeconds;
        public long UserMicroseconds;
        public long SystemSeconds;
        public long SystemMicroseconds;
        public long MaxRss, IxRss, IdRss, IsRss, MinFlt, MajFlt, NSwap, InBlock, OuBlock, MsgSnd, MsgRcv, NSignals, NVcsw, NIvcsw;
    }
}
