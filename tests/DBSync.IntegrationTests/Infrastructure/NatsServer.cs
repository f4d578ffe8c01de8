using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using NATS.Client.Core;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>
/// A real <c>nats-server</c> process with JetStream on a loopback port and a throwaway store directory (file storage
/// survives <see cref="Kill"/> and <see cref="StartAsync"/> on the same port). build.sh installs the Debian package when
/// it is missing; a test run without it fails with the command to install it.
/// </summary>
public sealed class NatsServer : IAsyncDisposable
{
    private readonly string _store = Path.Combine(Path.GetTempPath(), "dbsync-nats-" + Guid.NewGuid().ToString("N"));
    private string? _config;
    private Process? _process;

    private NatsServer(int port) => Port = port;

    /// <summary>The node's name in a cluster (n1, n2, ...), or null.</summary>
    public string? Name { get; private set; }

    public int Port { get; }

    public string Url => $"nats://127.0.0.1:{Port}";

    public static async Task<NatsServer> StartNewAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            var server = new NatsServer(FreePort());
            try
            {
                await server.StartAsync();
                return server;
            }
            catch (Exception) when (attempt < 3)
            {
                await server.DisposeAsync(); // its port was taken meanwhile: another
            }
        }
    }

    /// <summary>A JetStream cluster of <paramref name="nodes"/> servers on loopback (routes between all of them), started,
    /// with a metadata leader elected. Connect to all with <see cref="ClusterUrl"/>.</summary>
    public static async Task<NatsServer[]> StartClusterAsync(int nodes = 3)
    {
        // A port taken by another process between its choice and the server's bind makes a node exit: start afresh.
        for (var attempt = 1; ; attempt++)
        {
            var ports = FreePorts(2 * nodes);
            var servers = Enumerable.Range(0, nodes).Select(i => new NatsServer(ports[i])).ToArray();
            var routes = ports[nodes..];
            for (var i = 0; i < nodes; i++)
            {
                var server = servers[i];
                server.Name = $"n{i + 1}";
                Directory.CreateDirectory(server._store);
                server._config = Path.Combine(server._store, "nats.conf");
                await File.WriteAllTextAsync(server._config, $$"""
                    server_name: {{server.Name}}
                    listen: 127.0.0.1:{{server.Port}}
                    jetstream { store_dir: "{{server._store}}" }
                    cluster {
                      name: dbsync
                      listen: 127.0.0.1:{{routes[i]}}
                      routes: [{{string.Join(", ", routes.Select(r => $"nats-route://127.0.0.1:{r}"))}}]
                    }
                    """);
            }
            try
            {
                await Task.WhenAll(servers.Select(s => s.StartAsync()));
                return servers;
            }
            catch (Exception)
            {
                foreach (var server in servers)
                    await server.DisposeAsync(); // no node of a cluster that did not start outlives the test
                if (attempt >= 3)
                    throw;
            }
        }
    }

    /// <summary>Every node's URL, for a connection that fails over between them.</summary>
    public static string ClusterUrl(IEnumerable<NatsServer> servers) => string.Join(",", servers.Select(s => s.Url));

    /// <summary>A server on a port of its own that is not started yet (<see cref="StartAsync"/> starts it).</summary>
    public static NatsServer NotStarted() => new(FreePort());

    /// <summary>Stops the process with SIGSTOP: connections stay open, nothing answers (a silent broker).</summary>
    public void Pause() => Signal("STOP");

    /// <summary>Lets a paused process go on (SIGCONT).</summary>
    public void Resume() => Signal("CONT");

    private void Signal(string signal)
    {
        var pid = _process?.Id ?? throw new InvalidOperationException("The server is not running.");
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Starts the server (again, after <see cref="Kill"/>) and waits until it accepts connections.</summary>
    public async Task StartAsync()
    {
        var binary = Binary();
        Directory.CreateDirectory(_store);
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] arguments = _config is null ? ["-js", "-sd", _store, "-a", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture)] : ["-c", _config];
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        _process = Process.Start(start) ?? throw new InvalidOperationException($"{binary} did not start.");
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        _process.OutputDataReceived += (_, e) => { if (e.Data is { } line && output.Count < 200) output.Enqueue(line); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is { } line && output.Count < 200) output.Enqueue(line); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                await using var probe = new NatsConnection(new NatsOpts { Url = Url, ConnectTimeout = TimeSpan.FromSeconds(2) });
                await probe.ConnectAsync();
                // JetStream answers once its store is recovered.
                await new NATS.Client.JetStream.NatsJSContext(probe).GetAccountInfoAsync();
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(100);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException(
                    $"nats-server {(_process.HasExited ? $"exited with {_process.ExitCode}" : "did not answer within 30 s")}: {e.Message}\n{string.Join("\n", output.TakeLast(20))}", e);
            }
        }
    }

    /// <summary>Kills the server with SIGKILL: no goodbye to its clients.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            Signal("CONT"); // a paused process dies only once it runs
            process.Kill();
            process.WaitForExit();
        }
        _process = null;
    }

    public NatsConnection Connect() => new(new NatsOpts { Url = Url, Name = "DBSync tests", MaxReconnectRetry = -1, ReconnectWaitMin = TimeSpan.FromMilliseconds(100), ReconnectWaitMax = TimeSpan.FromMilliseconds(500) });

    public ValueTask DisposeAsync()
    {
        Kill();
        try
        {
            Directory.Delete(_store, recursive: true);
        }
        catch (IOException)
        {
        }
        return ValueTask.CompletedTask;
    }

    private static string Binary()
    {
        foreach (var candidate in (string[])["/usr/bin/nats-server", "/usr/local/bin/nats-server", "/usr/sbin/nats-server"])
        {
            if (File.Exists(candidate))
                return candidate;
        }
        throw new InvalidOperationException("nats-server is not installed. Install it with: apt-get install -y nats-server (./build.sh test does it).");
    }

    /// <summary><paramref name="count"/> distinct free ports (all held open while chosen).</summary>
    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            foreach (var listener in listeners)
                listener.Start();
            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            foreach (var listener in listeners)
                listener.Stop();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
