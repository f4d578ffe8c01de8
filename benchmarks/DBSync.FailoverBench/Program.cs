// The failover benchmark (issue 19); benchmarks/run-failover.sh builds and runs it.
//
// Three DBSync instances (processes of tests/DBSync.CrashConsumer, SlotInUse.Wait) on one slot of a throwaway
// PostgreSQL, applying into a replica database; a writer commits single-row inserts at a steady rate. Again and again
// the active instance (the process that delivered the last transaction) is killed with SIGKILL and a new process is
// started so that three are alive again; or, with --silent N, its network goes silent instead (its own TCP relay stops
// carrying anything without closing), the server's wal_sender_timeout ends its walsender, and the network comes back
// once the deposed instance has noticed. Each time: the seconds from the kill (or silence) to the first transaction the
// next active instance delivered, from the delivery log every instance appends to (UTC ticks, one clock for all).
// At the end: the replica equals the source, and the log shows one delivering instance at a time. Prints, last:
//   failover seconds p50 = X.XX
//   failover seconds p99 = X.XX
// (with --silent: "failover seconds (silent network, wal_sender_timeout = N s) p50 = ..." and p99.)
using System.Diagnostics;
using System.Globalization;
using DBSync.Bench;
using DBSync.FailoverBench;
using DBSync.Testing;
using Npgsql;

Settings settings;
try
{
    settings = Settings.Parse(args);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    await Console.Error.WriteLineAsync(Settings.Usage);
    return 2;
}
var culture = CultureInfo.InvariantCulture;
var silent = settings.Silent > 0;

await using var server = await PostgresServer.StartAsync(new Dictionary<string, string>
{
    ["wal_sender_timeout"] = $"{settings.WalSenderTimeoutSeconds}s",
}, forceLocal: true);
var version = await server.ScalarAsync<string>("SHOW server_version");
var sourceName = await server.CreateDatabaseAsync("failover_source");
var replicaName = await server.CreateDatabaseAsync("failover_replica");
var source = server.ConnectionStringFor(sourceName);
var replica = server.ConnectionStringFor(replicaName);
await server.ExecuteAsync(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "seed-schema.sql")), sourceName);
// The consumer's replica tables (tests/DBSync.CrashConsumer/replica-schema.sql).
await server.ExecuteAsync(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "replica-schema.sql")), replicaName);

var work = Directory.CreateTempSubdirectory("dbsync-failover-");
var log = Path.Combine(work.FullName, "deliveries.log");
var eventsPath = Path.Combine(work.FullName, "events.log");
var deliveries = new LineTail(log);
var eventLines = new LineTail(eventsPath);
var delivered = new List<(int Run, long Ticks, int Pid)>();
var events = new List<(int Run, int Pid, long Ticks, string Text)>();
void Look()
{
    foreach (var f in deliveries.ReadNew().Select(line => line.Split(' ')))
        delivered.Add((int.Parse(f[0], culture), long.Parse(f[3], culture), int.Parse(f[4], culture)));
    foreach (var f in eventLines.ReadNew().Select(line => line.Split(' ', 4)))
        events.Add((int.Parse(f[0], culture), int.Parse(f[1], culture), long.Parse(f[2], culture), f[3]));
}

Console.WriteLine(string.Create(culture,
    $"failover: three DBSync instances (tests/DBSync.CrashConsumer processes, SlotInUse.Wait, StandbyPollInterval {settings.StandbyPollMilliseconds} ms, " +
    $"ReceiveTimeout {settings.ReceiveTimeoutSeconds} s) on one slot of a throwaway PostgreSQL {version} (wal_sender_timeout {settings.WalSenderTimeoutSeconds} s), " +
    $"a writer at {settings.Rate} single-row transactions/s; {settings.Failovers} {(silent ? "silenced networks" : "SIGKILLs")} of the active instance"));
Console.WriteLine(string.Create(culture, $"machine: {Environment.ProcessorCount} cores, load average {LoadAverage()} at the start"));

using var stopWriter = new CancellationTokenSource();
var committed = 0L; // by the writer
var writer = Task.CompletedTask;
var alive = new List<Instance>();
var nextRun = 0;
var failovers = new List<double>();
var periods = 1; // delivering periods expected in the log: the first active instance's, then one per failover
var exitCode = 0;
try
{
    for (; nextRun < 3; nextRun++)
        alive.Add(Instance.Start(settings, source, replica, log, eventsPath, nextRun));
    await WaitUntil(() => events.Any(e => e.Text == "role Active") && events.Count(e => e.Text == "role Standby") >= 2, "an active instance and two standing by", 120);
    // The writer begins once the slot streams, so that each of its transactions is delivered as a change (none is
    // read by the initial snapshot of the empty tables): the replica's applied_change must have one row for each.
    writer = Task.Run(() => WriteAsync(stopWriter.Token));
    await WaitUntil(() => delivered.Count > 0, "a delivery", 60);
    await Task.Delay(3000); // past the start-up
    var random = new Random(19);
    for (var failover = 1; failover <= settings.Failovers; failover++)
    {
        await Task.Delay(random.Next(1000, 2000));
        Look();
        alive.ForEach(i => i.ThrowIfExited());
        var active = alive.Single(i => i.ProcessId == delivered[^1].Pid);
        var at = DateTime.UtcNow.Ticks;
        if (silent)
            active.Network!.Silence();
        else
            active.Kill();

        // The next active instance: the first delivery of another process from now on.
        var seen = delivered.Count;
        (int Run, long Ticks, int Pid) first = default;
        await WaitUntil(() =>
        {
            first = delivered.Skip(seen).FirstOrDefault(d => d.Pid != active.ProcessId);
            return first != default;
        }, $"a delivery by another instance after failover {failover}", settings.WalSenderTimeoutSeconds + 60, except: active);
        periods++;
        failovers.Add(Seconds(first.Ticks - at));
        var tookSlot = events.FirstOrDefault(e => e.Pid == first.Pid && e.Ticks > at && e.Text == "role Active");
        var line = string.Create(culture,
            $"{(silent ? "silence" : "kill")} {failover,2}: run {active.Run} (pid {active.ProcessId}); run {first.Run} (pid {first.Pid}) active after {Seconds(tookSlot.Ticks - at):F2} s, first change delivered {failovers[^1]:F2} s after the {(silent ? "silence" : "kill")}");

        if (!silent)
        {
            Console.WriteLine(line);
            await active.DisposeAsync();
            alive.Remove(active);
            var replacement = Instance.Start(settings, source, replica, log, eventsPath, nextRun++);
            alive.Add(replacement);
            await WaitUntil(() => events.Any(e => e.Pid == replacement.ProcessId && e.Text == "role Standby"), $"run {replacement.Run} standing by", 120);
            continue;
        }

        // The deposed instance: when does it notice (its role leaves Active), and what does it do once the network is back?
        var deadline = DateTime.UtcNow.AddSeconds(settings.ReceiveTimeoutSeconds + 60);
        while (!events.Any(e => e.Pid == active.ProcessId && e.Ticks > at && e.Text != "role Active") && !active.HasExited && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
            Look();
        }
        var noticed = events.FirstOrDefault(e => e.Pid == active.ProcessId && e.Ticks > at && e.Text != "role Active");
        var deposedLate = delivered.Where(d => d.Pid == active.ProcessId && d.Ticks > at).ToList();
        line += noticed == default
            ? "; the deposed instance had not noticed when the network came back"
            : string.Create(culture, $"; the deposed instance left the role Active after {Seconds(noticed.Ticks - at):F2} s ({noticed.Text})");
        if (deposedLate.Count > 0)
            line += string.Create(culture, $", delivered {deposedLate.Count} transaction(s) it had already received (the last {Seconds(deposedLate.Max(d => d.Ticks) - at):F2} s after the silence)");
        var restored = DateTime.UtcNow.Ticks;
        active.Network!.Restore();
        deadline = DateTime.UtcNow.AddSeconds(60);
        while (!events.Any(e => e.Pid == active.ProcessId && e.Ticks > restored && e.Text == "role Standby") && !active.HasExited && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
            Look();
        }
        var standby = events.FirstOrDefault(e => e.Pid == active.ProcessId && e.Ticks > restored && e.Text == "role Standby");
        if (standby != default)
        {
            line += string.Create(culture, $"; network back {Seconds(restored - at):F2} s after the silence, standing by {Seconds(standby.Ticks - restored):F2} s later");
        }
        else
        {
            line += active.HasExited
                ? string.Create(culture, $"; network back, the process ended with code {active.ExitCode}: {active.Output().Split('\n').FirstOrDefault(l => l.Length > 0)}")
                : "; network back, not standing by within 60 s: replaced";
            await active.DisposeAsync();
            alive.Remove(active);
            var replacement = Instance.Start(settings, source, replica, log, eventsPath, nextRun++);
            alive.Add(replacement);
            await WaitUntil(() => events.Any(e => e.Pid == replacement.ProcessId && e.Text == "role Standby"), $"run {replacement.Run} standing by", 120);
        }
        Console.WriteLine(line);
        foreach (var (ticks, text) in active.LogSince(at).Take(8))
            Console.WriteLine(string.Create(culture, $"    deposed instance's log, {Seconds(ticks - at),6:F2} s: {(text.Length > 300 ? text[..300] + "..." : text)}"));
    }

    // The checks: the replica caught up with the source, and one instance delivered at a time.
    await stopWriter.CancelAsync();
    await writer;
    var rows = await server.ScalarAsync<long>("SELECT count(*) FROM restaurant", sourceName);
    await WaitUntilAsync(async () => await server.ScalarAsync<long>("SELECT count(*) FROM restaurant", replicaName) == rows, "the replica catching up", 120);
    await WaitUntilAsync(async () => await server.ScalarAsync<long>("SELECT count(*) FROM applied_change", replicaName) == committed, "every change applied", 60);
    var sourceHash = await server.ScalarAsync<string>("SELECT md5(string_agg(r::text, ',' ORDER BY id)) FROM restaurant r", sourceName);
    var replicaHash = await server.ScalarAsync<string>("SELECT md5(string_agg(r::text, ',' ORDER BY id)) FROM restaurant r", replicaName);
    Check(sourceHash == replicaHash, "the replica's restaurant table differs from the source's");
    Look();
    var runs = 1;
    for (var i = 1; i < delivered.Count; i++)
    {
        if (delivered[i].Pid == delivered[i - 1].Pid)
            continue;
        runs++;
        Check(delivered[i].Ticks > delivered[i - 1].Ticks,
            $"pid {delivered[i].Pid} delivered at {new DateTime(delivered[i].Ticks):HH:mm:ss.fffffff}, before pid {delivered[i - 1].Pid}'s delivery logged before it");
    }
    Check(runs == periods, $"the log has {runs} delivering periods (a change of process), {periods} expected: two instances delivered in turns");
    Console.WriteLine(string.Create(culture,
        $"check: the replica equals the source ({rows:N0} rows, {committed:N0} transactions each applied once); {runs} delivering periods, one instance at a time"));
    Console.WriteLine(string.Create(culture, $"load average {LoadAverage()} at the end"));
    var label = silent ? $"failover seconds (silent network, wal_sender_timeout = {settings.WalSenderTimeoutSeconds} s)" : "failover seconds";
    Console.WriteLine(string.Create(culture, $"{label} per {(silent ? "silence" : "kill")}: {Stats.Runs(failovers, "F2")}"));
    Console.WriteLine(string.Create(culture, $"{label} p50 = {Stats.Median(failovers):F2}"));
    Console.WriteLine(string.Create(culture, $"{label} p99 = {Percentile(failovers, 0.99):F2}"));
}
catch (Exception e) when (e is InvalidOperationException or TimeoutException)
{
    await Console.Error.WriteLineAsync("failover benchmark failed: " + e.Message);
    exitCode = 1;
}
finally
{
    await stopWriter.CancelAsync();
    await writer;
    foreach (var instance in alive)
        await instance.DisposeAsync();
    work.Delete(recursive: true);
}
return exitCode;

// One single-row insert per transaction at the given rate (on schedule: a late one does not shift the next).
async Task WriteAsync(CancellationToken stop)
{
    await using var connection = new NpgsqlConnection(source);
    await connection.OpenAsync(CancellationToken.None);
    await using var insert = new NpgsqlCommand("INSERT INTO restaurant (id, name, rating) VALUES ($1, 'w', 1)", connection);
    insert.Parameters.Add(new NpgsqlParameter { Value = "" });
    var interval = TimeSpan.FromSeconds(1.0 / settings.Rate);
    var clock = Stopwatch.StartNew();
    while (!stop.IsCancellationRequested)
    {
        insert.Parameters[0].Value = $"w-{committed + 1:D8}";
        await insert.ExecuteNonQueryAsync(CancellationToken.None);
        committed++;
        var wait = interval * committed - clock.Elapsed;
        if (wait > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(wait, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}

async Task WaitUntilAsync(Func<ValueTask<bool>> condition, string what, int seconds, Instance? except = null)
{
    var deadline = DateTime.UtcNow.AddSeconds(seconds);
    while (true)
    {
        Look();
        if (await condition())
            return;
        foreach (var instance in alive.Where(i => i != except))
            instance.ThrowIfExited();
        if (DateTime.UtcNow > deadline)
            throw new TimeoutException($"No {what} within {seconds} s.");
        await Task.Delay(10);
    }
}

Task WaitUntil(Func<bool> condition, string what, int seconds, Instance? except = null)
    => WaitUntilAsync(() => ValueTask.FromResult(condition()), what, seconds, except);

static double Seconds(long ticks) => ticks / (double)TimeSpan.TicksPerSecond;

// Nearest rank: the smallest value with at least that share of the values at or below it (of 20 values, p99 is the largest).
static double Percentile(List<double> values, double share)
{
    var sorted = values.Order().ToArray();
    return sorted[Math.Max(0, (int)Math.Ceiling(share * sorted.Length) - 1)];
}

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

static void Check(bool condition, string failure)
{
    if (!condition)
        throw new InvalidOperationException("check failed: " + failure);
}
