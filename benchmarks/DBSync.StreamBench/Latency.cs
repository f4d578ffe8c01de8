using System.Globalization;
using DBSync.Bench;
using DBSync.Sample;

namespace DBSync.StreamBench;

internal sealed record LatencyResult(int Rate, long Transactions, double AchievedRate, double P50Milliseconds, double P99Milliseconds, double MaxMilliseconds)
{
    public const string Prefix = "latency-result";

    public string ToLine() => string.Create(CultureInfo.InvariantCulture,
        $"{Prefix} {Rate} {Transactions} {AchievedRate:R} {P50Milliseconds:R} {P99Milliseconds:R} {MaxMilliseconds:R}");

    public static LatencyResult Parse(string line)
    {
        var f = line.Split(' ');
        double D(int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
        return new LatencyResult(int.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[2], CultureInfo.InvariantCulture), D(3), D(4), D(5), D(6));
    }
}

/// <summary>
/// Commit-to-handler latency at a steady rate: DBSync streams a slot of its own while pgbench commits single-row
/// inserts at a fixed rate (<c>-R</c>); each transaction's latency is the time its transaction handler runs minus its
/// commit timestamp (server and client share this machine's clock).
/// </summary>
internal static class Latency
{
    private const string Slot = "dbsync_e2e_latency";

    public static async Task<LatencyResult> MeasureAsync(string connectionString, Pgbench pgbench, int rate, int seconds, ReplicationTransport transport)
    {
        var latencies = new long[(rate * seconds * 2) + 1024];
        var count = 0;
        var measuring = false;
        using var stop = new CancellationTokenSource();
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = connectionString,
            SlotName = Slot,
            PublicationName = Backlog.Publication,
            InitialSnapshot = false,
            ReplicationTransport = transport,
        });
        client.On<User>(_ => { });
        client.OnTransaction((tx, _) =>
        {
            if (Volatile.Read(ref measuring) && count < latencies.Length)
                latencies[count++] = (DateTimeOffset.UtcNow - tx.CommitTime).Ticks;
            return ValueTask.CompletedTask;
        });
        var run = client.RunAsync(stop.Token);
        await Task.WhenAny(client.Streaming, run);
        await client.Streaming;

        var script = Path.Combine(Path.GetTempPath(), $"dbsync-e2e-insert-{Environment.ProcessId}.sql");
        await File.WriteAllTextAsync(script, "INSERT INTO users (first_name, user_name, email) VALUES ('Latency', 'latency', 'latency' || txid_current() || '@example.com');\n");
        double achieved;
        try
        {
            Volatile.Write(ref measuring, true);
            achieved = await pgbench.RunScriptAtRateAsync(script, clients: 4, threads: 2, rate, seconds);
            // The stream catches up with the last commits.
            for (var seen = -1; seen != Volatile.Read(ref count);)
            {
                seen = Volatile.Read(ref count);
                await Task.Delay(500);
            }
            Volatile.Write(ref measuring, false);
        }
        finally
        {
            File.Delete(script);
            await stop.CancelAsync();
            await run;
            await Slots.DropAsync(connectionString, Slot);
        }

        var measured = latencies.AsSpan(0, count).ToArray();
        Array.Sort(measured);
        double Percentile(double p) => TimeSpan.FromTicks(measured[Math.Min(measured.Length - 1, (int)Math.Ceiling(p * measured.Length) - 1)]).TotalMilliseconds;
        return new LatencyResult(rate, measured.Length, achieved, Percentile(0.50), Percentile(0.99), TimeSpan.FromTicks(measured[^1]).TotalMilliseconds);
    }
}
