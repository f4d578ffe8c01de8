using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using DBSync;
using DBSync.JetStreamSample;
using DBSync.Nats;
using DBSync.Sample;
using NATS.Client.Core;

// ./build.sh jetstream-sample: a throwaway nats-server with JetStream, the publisher streaming the seed tables into it
// (four partitions by key), and two consumer processes that split the restaurants by partition and print what each
// received. With --consume, this program is one of those consumers.
if (args is ["--consume", var partitions])
    return await Consumer.RunAsync(partitions);
return await Orchestrator.RunAsync();

namespace DBSync.JetStreamSample
{
    public static class Orchestrator
    {
        private const string Slot = "dbsync_jetstream_sample";
        private const int Partitions = 4;

        public static async Task<int> RunAsync()
        {
            var exitCode = 1;
            await SeedDatabase.RunAsync(Slot, async (server, database) =>
            {
                await using var nats = NatsProcess.Start();
                Say($"started nats-server with JetStream on port {nats.Port}");
                await using var connection = new NatsConnection(new NatsOpts { Url = nats.Url });
                await connection.ConnectAsync();

                var connectionString = server.ConnectionStringFor(database);
                await Execute(connectionString, "INSERT INTO restaurant (id, name, rating) SELECT 'r' || i, 'Restaurant ' || i, i % 5 + 1 FROM generate_series(1, 8) i");
                var client = new DBSyncClient(new DBSyncOptions { ConnectionString = connectionString, SlotName = Slot, PublicationName = Slot, InitialSnapshot = true });
                client.On<Restaurant>(_ => { }); // published; no handler of its own
                var snapshotDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                client.OnSnapshotProgress(progress =>
                {
                    if (progress is SnapshotsCompleted)
                        snapshotDone.TrySetResult();
                });
                await using var publisher = new JetStreamPublisher(client, connection, new JetStreamPublisherOptions { Partitions = Partitions });
                using var stop = new CancellationTokenSource();
                var run = client.RunAsync(stop.Token);
                await client.Streaming.WaitAsync(TimeSpan.FromSeconds(60));
                Say($"publishing slot {Slot} to stream {publisher.StreamName}, subjects dbsync.public.restaurant.<0-{Partitions - 1}>");

                // The initial snapshot first (its rows reflect the table when each chunk is read), then the writes.
                await snapshotDone.Task.WaitAsync(TimeSpan.FromSeconds(60));
                Say("initial snapshot of 8 restaurants published");
                await using var first = ConsumerProcess.Start("0,1", nats.Url, publisher.StreamName);
                await using var second = ConsumerProcess.Start("2,3", nats.Url, publisher.StreamName);
                await Execute(connectionString, "INSERT INTO restaurant (id, name) VALUES ('r9', 'Restaurant 9'), ('r10', 'Restaurant 10')");
                await Execute(connectionString, "UPDATE restaurant SET rating = 5 WHERE id IN ('r1', 'r2', 'r3')");
                await Execute(connectionString, "DELETE FROM restaurant WHERE id = 'r4'");
                // 8 snapshot rows, 2 inserts, 3 updates, 1 delete: 14 changes between the two consumers.
                const int expected = 14;
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (first.Received + second.Received < expected && DateTime.UtcNow < deadline && !first.Exited && !second.Exited)
                    await Task.Delay(100);
                var ok = first.Received + second.Received == expected;
                Say($"consumer 0,1 received {first.Received} changes of keys {string.Join(", ", first.Keys)}");
                Say($"consumer 2,3 received {second.Received} changes of keys {string.Join(", ", second.Keys)}");
                Say(ok ? $"all {expected} changes received, each key by one consumer" : $"expected {expected} changes, got {first.Received + second.Received}");
                var overlap = first.Keys.Intersect(second.Keys).ToList();
                if (overlap.Count > 0)
                {
                    Say($"keys received by both: {string.Join(", ", overlap)}");
                    ok = false;
                }
                await first.StopAsync();
                await second.StopAsync();
                await stop.CancelAsync();
                await run;
                Say($"stopped; the slot's confirmed position is {client.ConfirmedLsn}");
                exitCode = ok ? 0 : 1;
            });
            return exitCode;
        }

        private static async Task Execute(string connectionString, string sql)
        {
            await using var connection = new Npgsql.NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }

        internal static void Say(string text) => Console.WriteLine($"== {text}");
    }

    /// <summary>One consumer: this program with --consume, printing each change it receives.</summary>
    public static class Consumer
    {
        public static async Task<int> RunAsync(string partitions)
        {
            using var stop = new CancellationTokenSource();
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                stop.Cancel();
            });
            await using var connection = new NatsConnection(new NatsOpts { Url = Environment.GetEnvironmentVariable("NATS_URL")! });
            var consumer = new JetStreamConsumer(connection, new JetStreamConsumerOptions
            {
                Stream = Environment.GetEnvironmentVariable("NATS_STREAM")!,
                Name = "sample",
                Partitions = [.. partitions.Split(',').Select(p => int.Parse(p, CultureInfo.InvariantCulture))],
            });
            consumer.On<Restaurant>(change =>
            {
                var row = change.Row!;
                var values = change.Kind == ChangeKind.Delete ? "(old key)" : $"name={row.Name} rating={row.Rating?.ToString(CultureInfo.InvariantCulture) ?? "-"}";
                Console.WriteLine($"received {change.Kind,-6} restaurant id={row.Id} {values} (commit {change.CommitLsn})");
            });
            Console.WriteLine($"consuming partitions {partitions}");
            await consumer.RunAsync(stop.Token);
            return 0;
        }
    }

    /// <summary>A consumer process, its output prefixed with its partitions.</summary>
    public sealed class ConsumerProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _name;
        private readonly SortedSet<string> _keys = new(StringComparer.Ordinal);
        private int _received;

        private ConsumerProcess(string name, Process process)
        {
            _name = name;
            _process = process;
        }

        public int Received => Volatile.Read(ref _received);

        public bool Exited => _process.HasExited;

        public IReadOnlyCollection<string> Keys
        {
            get
            {
                lock (_keys)
                    return [.. _keys];
            }
        }

        public static ConsumerProcess Start(string partitions, string natsUrl, string stream)
        {
            var path = Environment.ProcessPath ?? "dotnet";
            var start = new ProcessStartInfo(path) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            if (Path.GetFileNameWithoutExtension(path) == "dotnet")
                start.ArgumentList.Add(typeof(Orchestrator).Assembly.Location);
            start.ArgumentList.Add("--consume");
            start.ArgumentList.Add(partitions);
            start.Environment["NATS_URL"] = natsUrl;
            start.Environment["NATS_STREAM"] = stream;
            var process = new Process { StartInfo = start };
            var consumer = new ConsumerProcess(partitions, process);
            process.OutputDataReceived += (_, e) => consumer.OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => consumer.OnLine(e.Data);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            Orchestrator.Say($"started consumer {partitions} (process {process.Id})");
            return consumer;
        }

        private void OnLine(string? line)
        {
            if (line is null)
                return;
            Console.WriteLine($"[{_name}] {line}");
            if (!line.StartsWith("received ", StringComparison.Ordinal))
                return;
            var id = line.Split(' ').First(t => t.StartsWith("id=", StringComparison.Ordinal))[3..];
            lock (_keys)
                _keys.Add(id);
            Interlocked.Increment(ref _received);
        }

        /// <summary>SIGTERM: the consumer stops after the message in hand, its acknowledgements confirmed.</summary>
        public async Task StopAsync()
        {
            if (_process.HasExited)
                return;
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])!)
                await kill.WaitForExitAsync();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
        }
    }

    /// <summary>A throwaway nats-server with JetStream: a loopback port and a temporary store, removed at the end.</summary>
    public sealed class NatsProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _store;

        private NatsProcess(Process process, string store, int port)
        {
            _process = process;
            _store = store;
            Port = port;
        }

        public int Port { get; }

        public string Url => $"nats://127.0.0.1:{Port}";

        public static NatsProcess Start()
        {
            var binary = new[] { "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server" }.FirstOrDefault(File.Exists)
                ?? throw new InvalidOperationException("nats-server is not installed: run ./build.sh jetstream-sample, which installs it with apt-get, or apt-get install nats-server.");
            int port;
            using (var listener = new TcpListener(IPAddress.Loopback, 0))
            {
                listener.Start();
                port = ((IPEndPoint)listener.LocalEndpoint).Port;
            }
            var store = Path.Combine(Path.GetTempPath(), "dbsync-jetstream-sample-" + Guid.NewGuid().ToString("N"));
            var start = new ProcessStartInfo(binary) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in (string[])["-js", "-sd", store, "-a", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture)])
                start.ArgumentList.Add(argument);
            var process = Process.Start(start)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (true)
            {
                try
                {
                    using var probe = new TcpClient();
                    probe.Connect(IPAddress.Loopback, port);
                    break;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline && !process.HasExited)
                {
                    Thread.Sleep(100);
                }
            }
            return new NatsProcess(process, store, port);
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
            try
            {
                Directory.Delete(_store, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
