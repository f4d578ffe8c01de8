// benchmarks/run-broker.sh [--rows N] [--batch N] [--updates N] [--rate N] [--seconds N] [--single-drain]
// (--single-drain: only pg_recvlogical and the single node's drain, for quick comparisons; the last line is the ratio.)
// 1. run-e2e.sh's backlog (1M users rows in 1,000-row transactions, then 200k single-row updates) behind a template slot;
// 2. drained by pg_recvlogical into /dev/null (process start to exit), then by DBSync publishing every change into
//    JetStream (in this process, from RunAsync to the slot confirmed at the backlog's end: every message acknowledged),
//    once into a single node (file storage) and once into a three-node cluster (three replicas);
// 3. commit-to-acknowledgement latency (DBSync's dbsync.jetstream.commit_to_ack) while pgbench commits single-row inserts
//    at a steady rate, on the cluster and on the single node.
// Last lines: "ratio wall jetstream/pg_recvlogical = X.XX" (the single node) and "p99 commit-to-ack ms = X.X" (the cluster).
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using DBSync;
using DBSync.Bench;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Nats;
using DBSync.Sample;
using DBSync.StreamBench;
using DBSync.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Npgsql;

int Option(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}
var rows = Option("--rows", 1_000_000);
var batch = Option("--batch", 1_000);
var updates = Option("--updates", 200_000);
var rate = Option("--rate", 5_000);
var seconds = Option("--seconds", 20);
var singleDrainOnly = args.Contains("--single-drain");

void Log(string text) => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {text}");

await using var server = await PostgresServer.StartAsync();
Log($"PostgreSQL {await server.ScalarAsync<string>("SHOW server_version")}, {Environment.ProcessorCount} cores, nats-server from Debian");
var database = await server.CreateDatabaseAsync("dbsync_broker_bench");
var results = new List<string>();
try
{
    var connectionString = server.ConnectionStringFor(database);
    var pgbench = new Pgbench(Pgbench.Find(server.BinDirectory), connectionString);
    var watch = Stopwatch.StartNew();
    var backlog = await Backlog.BuildAsync(connectionString, pgbench, rows, batch, updates);
    Log($"backlog: {backlog.Rows:N0} row events in {backlog.Transactions:N0} transactions, ends at {backlog.End}; built in {watch.Elapsed.TotalSeconds:0} s");

    await Backlog.CopyAsync(connectionString, "broker_recvlogical");
    var recvlogical = await RecvlogicalAsync(server.BinDirectory, connectionString, "broker_recvlogical", backlog.End.ToString());
    await Slots.DropAsync(connectionString, "broker_recvlogical");
    Log($"pg_recvlogical: {recvlogical:0.000} s (process start to exit)");

    await using var single = await NatsServer.StartNewAsync();
    var cluster = await NatsServer.StartClusterAsync(3);
    try
    {
        var singleWall = await DrainAsync(connectionString, backlog, single.Url, replicas: 1, "broker_single");
        Log($"DBSync into JetStream, single node: {singleWall:0.000} s ({backlog.Rows / singleWall:N0} row events/s)");
        if (singleDrainOnly)
        {
            results.Add(string.Create(CultureInfo.InvariantCulture, $"ratio wall jetstream/pg_recvlogical = {singleWall / recvlogical:0.00}"));
        }
        else
        {
            var clusterWall = await DrainAsync(connectionString, backlog, NatsServer.ClusterUrl(cluster), replicas: 3, "broker_cluster");
            Log($"DBSync into JetStream, three-node cluster (R3): {clusterWall:0.000} s ({backlog.Rows / clusterWall:N0} row events/s)");

            var (singleP50, singleP99, singleCount, singleRate) = await LatencyAsync(connectionString, pgbench, single.Url, replicas: 1, "latency_single", rate, seconds);
            Log($"commit-to-ack, single node, {singleRate:N0} tx/s achieved: p50 {singleP50:0.0} ms, p99 {singleP99:0.0} ms ({singleCount:N0} messages)");
            var (clusterP50, clusterP99, clusterCount, clusterRate) = await LatencyAsync(connectionString, pgbench, NatsServer.ClusterUrl(cluster), replicas: 3, "latency_cluster", rate, seconds);
            Log($"commit-to-ack, three-node cluster, {clusterRate:N0} tx/s achieved: p50 {clusterP50:0.0} ms, p99 {clusterP99:0.0} ms ({clusterCount:N0} messages)");
            var (bareP50, bareP99, bareCount, bareRate) = await BareLatencyAsync(connectionString, pgbench, NatsServer.ClusterUrl(cluster), rate, seconds);
            Log($"baseline, NATS.Net alone publishing {rate:N0} msg/s into the cluster (R3) while pgbench commits {bareRate:N0} tx/s: publish-to-ack p50 {bareP50:0.0} ms, p99 {bareP99:0.0} ms ({bareCount:N0} messages)");

            results.Add(string.Create(CultureInfo.InvariantCulture, $"ratio wall jetstream-cluster/pg_recvlogical = {clusterWall / recvlogical:0.00} (not the goal's line: the cluster)"));
            results.Add(string.Create(CultureInfo.InvariantCulture, $"p99 commit-to-ack ms, single node = {singleP99:0.0} (not the goal's line: the single node)"));
            results.Add(string.Create(CultureInfo.InvariantCulture, $"p99 publish-to-ack ms, NATS.Net alone into the cluster = {bareP99:0.0} (not the goal's line: the broker's own floor here)"));
            results.Add(string.Create(CultureInfo.InvariantCulture, $"ratio wall jetstream/pg_recvlogical = {singleWall / recvlogical:0.00}"));
            results.Add(string.Create(CultureInfo.InvariantCulture, $"p99 commit-to-ack ms = {clusterP99:0.0}"));
        }
    }
    finally
    {
        foreach (var node in cluster)
            await node.DisposeAsync();
    }
}
finally
{
    await server.DropDatabaseAsync(database);
}
foreach (var line in results)
    Console.WriteLine(line);
return 0;

static async Task<double> RecvlogicalAsync(string? binDirectory, string connectionString, string slot, string end)
{
    var target = new NpgsqlConnectionStringBuilder(connectionString);
    var start = new ProcessStartInfo(Pgbench.FindTool(binDirectory, "pg_recvlogical")) { UseShellExecute = false, RedirectStandardError = true };
    foreach (var argument in new[]
             {
                 "-h", target.Host!, "-p", target.Port.ToString(CultureInfo.InvariantCulture), "-U", target.Username!, "-d", target.Database!,
                 "--slot", slot, "--start", "--no-loop", "-f", "/dev/null", "--endpos", end,
                 "-o", "proto_version=2", "-o", $"publication_names={Backlog.Publication}", "-o", "binary=true",
             })
    {
        start.ArgumentList.Add(argument);
    }
    if (!string.IsNullOrEmpty(target.Password))
        start.Environment["PGPASSWORD"] = target.Password;
    var watch = Stopwatch.StartNew();
    using var process = Process.Start(start)!;
    var errors = process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    if (process.ExitCode != 0)
        throw new InvalidOperationException($"pg_recvlogical exited with {process.ExitCode}: {await errors}");
    return watch.Elapsed.TotalSeconds;
}

// The backlog drained into a stream of its own: from RunAsync until the slot's confirmed position reaches the backlog's
// end, which DBSync confirms only once JetStream acknowledged every message up to it.
static async Task<double> DrainAsync(string connectionString, Backlog backlog, string url, int replicas, string slot)
{
    await Backlog.CopyAsync(connectionString, slot);
    await using var connection = new NatsConnection(new NatsOpts { Url = url });
    await connection.ConnectAsync();
    var client = new DBSyncClient(new DBSyncOptions { ConnectionString = connectionString, SlotName = slot, PublicationName = Backlog.Publication, InitialSnapshot = false });
    client.On<User>(_ => { });
    await using var publisher = new JetStreamPublisher(client, connection, new JetStreamPublisherOptions { Replicas = replicas, SubjectPrefix = slot });
    using var stop = new CancellationTokenSource();
    var watch = Stopwatch.StartNew();
    var run = client.RunAsync(stop.Token);
    while ((ulong)client.ConfirmedLsn < (ulong)backlog.End)
    {
        if (run.IsCompleted)
            await run;
        await Task.Delay(20);
    }
    var wall = watch.Elapsed.TotalSeconds;
    await stop.CancelAsync();
    await run;
    var messages = (await new NATS.Client.JetStream.NatsJSContext(connection).GetStreamAsync(publisher.StreamName)).Info.State.Messages;
    if (messages != backlog.Rows)
        throw new InvalidOperationException($"Stream {publisher.StreamName} holds {messages:N0} messages; the backlog has {backlog.Rows:N0} row events in {backlog.Transactions:N0} transactions.");
    await Slots.DropAsync(connectionString, slot);
    return wall;
}

// pgbench commits single-row inserts at a steady rate while DBSync publishes them; every message's commit-to-ack time.
static async Task<(double P50, double P99, int Count, double Achieved)> LatencyAsync(string connectionString, Pgbench pgbench, string url, int replicas, string slot,
    int rate, int seconds)
{
    var samples = new List<double>();
    var measuring = false;
    using var listener = new MeterListener();
    listener.InstrumentPublished = (instrument, l) =>
    {
        if (instrument.Name == DBSyncDiagnostics.Metrics.JetStreamCommitToAck)
            l.EnableMeasurementEvents(instrument);
    };
    listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
    {
        if (Volatile.Read(ref measuring))
        {
            lock (samples)
                samples.Add(value * 1000);
        }
    });
    listener.Start();
    await using var connection = new NatsConnection(new NatsOpts { Url = url });
    var client = new DBSyncClient(new DBSyncOptions { ConnectionString = connectionString, SlotName = slot, PublicationName = Backlog.Publication, InitialSnapshot = false });
    client.On<User>(_ => { });
    await using var publisher = new JetStreamPublisher(client, connection, new JetStreamPublisherOptions { Replicas = replicas, SubjectPrefix = slot });
    using var stop = new CancellationTokenSource();
    var run = client.RunAsync(stop.Token);
    await Task.WhenAny(client.Streaming, run);
    await client.Streaming;
    var script = Path.Combine(Path.GetTempPath(), $"dbsync-broker-insert-{Environment.ProcessId}.sql");
    await File.WriteAllTextAsync(script, "INSERT INTO users (first_name, user_name, email) VALUES ('Latency', 'latency', 'latency' || txid_current() || '@example.com');\n");
    double achieved;
    try
    {
        Volatile.Write(ref measuring, true);
        achieved = await pgbench.RunScriptAtRateAsync(script, clients: 4, threads: 2, rate, seconds);
        await Task.Delay(2000); // the last acknowledgements
        Volatile.Write(ref measuring, false);
    }
    finally
    {
        File.Delete(script);
        await stop.CancelAsync();
        await run;
        await Slots.DropAsync(connectionString, slot);
    }
    double[] sorted;
    lock (samples)
        sorted = [.. samples.Order()];
    double Percentile(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    return (Percentile(0.50), Percentile(0.99), sorted.Length, achieved);
}

// The broker's own floor on this machine: NATS.Net alone publishes a users-sized message at the same steady rate into a
// three-replica stream on the same cluster (each publish awaiting its own acknowledgement, many in flight), while pgbench
// commits the same inserts as in LatencyAsync (no slot, so nothing decodes them). Every message's publish-to-ack time.
static async Task<(double P50, double P99, int Count, double Achieved)> BareLatencyAsync(string connectionString, Pgbench pgbench, string url, int rate, int seconds)
{
    await using var connection = new NatsConnection(new NatsOpts { Url = url });
    var js = new NATS.Client.JetStream.NatsJSContext(connection);
    await js.CreateStreamAsync(new NATS.Client.JetStream.Models.StreamConfig("BARE_LATENCY", ["bare.>"]) { NumReplicas = 3, Storage = NATS.Client.JetStream.Models.StreamConfigStorage.File });
    var body = new byte[160];
    Random.Shared.NextBytes(body);
    var samples = new List<double>();
    var script = Path.Combine(Path.GetTempPath(), $"dbsync-broker-bare-{Environment.ProcessId}.sql");
    await File.WriteAllTextAsync(script, "INSERT INTO users (first_name, user_name, email) VALUES ('Latency', 'latency', 'bare' || txid_current() || '@example.com');\n");
    double achieved;
    try
    {
        var writes = pgbench.RunScriptAtRateAsync(script, clients: 4, threads: 2, rate, seconds);
        var inFlight = new List<Task>();
        var clock = Stopwatch.StartNew();
        long sent = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            var due = (long)(clock.Elapsed.TotalSeconds * rate);
            for (; sent < due; sent++)
            {
                var started = Stopwatch.GetTimestamp();
                var publish = js.PublishAsync($"bare.users.{sent % 8}", body).AsTask();
                inFlight.Add(publish.ContinueWith(t =>
                {
                    t.Result.EnsureSuccess();
                    var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    lock (samples)
                        samples.Add(ms);
                }, TaskScheduler.Default));
            }
            await Task.Delay(1);
        }
        await Task.WhenAll(inFlight);
        achieved = await writes;
    }
    finally
    {
        File.Delete(script);
        await js.DeleteStreamAsync("BARE_LATENCY");
    }
    double[] sorted = [.. samples.Order()];
    double Percentile(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    return (Percentile(0.50), Percentile(0.99), sorted.Length, achieved);
}
