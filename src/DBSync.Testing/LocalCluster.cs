using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace DBSync.Testing;

/// <summary>An initdb cluster (or a physical standby copied from one) in a temporary directory.</summary>
internal sealed class LocalCluster : IAsyncDisposable
{
    private static readonly TimeSpan s_exitWait = TimeSpan.FromSeconds(30);

    private LocalCluster(string binDirectory, string root, int port)
    {
        BinDirectory = binDirectory;
        Root = root;
        Port = port;
    }

    public string BinDirectory { get; }

    public string Root { get; }

    public string DataDirectory => Path.Combine(Root, "data");

    public int Port { get; private set; }

    private string LogFile => Path.Combine(Root, "server.log");

    private string PgCtl => Path.Combine(BinDirectory, "pg_ctl");

    public static async Task<LocalCluster> CreateAsync(IReadOnlyDictionary<string, string>? settings, int? majorVersion, CancellationToken cancellationToken)
    {
        var bin = await PostgresBinaries.FindAsync(majorVersion, cancellationToken).ConfigureAwait(false);
        var cluster = await NewRootAsync(bin, cancellationToken).ConfigureAwait(false);
        try
        {
            await ToolProcess.RunAsync(Path.Combine(bin, "initdb"),
                ["-D", cluster.DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                asPostgres: ToolProcess.IsRoot, cancellationToken).ConfigureAwait(false);

            var conf = new Dictionary<string, string>
            {
                ["listen_addresses"] = "'127.0.0.1'",
                ["unix_socket_directories"] = $"'{cluster.Root}'",
                ["wal_level"] = "logical",
                ["max_replication_slots"] = "40",
                ["max_wal_senders"] = "40",
                ["max_connections"] = "200",
                ["fsync"] = "off",
                ["full_page_writes"] = "off",
                ["shared_buffers"] = "256MB",
                ["log_min_messages"] = "warning",
            };
            if (settings is not null)
            {
                foreach (var (key, value) in settings)
                    conf[key] = value;
            }

            await cluster.AppendSettingsAsync(conf, cancellationToken).ConfigureAwait(false);
            await cluster.StartServerAsync(cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A physical standby of this cluster from a cold copy of its data directory: this cluster is stopped (fast) for the
    /// copy and started again, the copy streams from it (through <paramref name="physicalSlot"/> when given, which must
    /// exist here) with <paramref name="settings"/> added to its own.
    /// </summary>
    public async Task<LocalCluster> CreateStandbyAsync(string? physicalSlot, IReadOnlyDictionary<string, string>? settings, CancellationToken cancellationToken)
    {
        var standby = await NewRootAsync(BinDirectory, cancellationToken).ConfigureAwait(false);
        try
        {
            await ToolProcess.RunAsync(PgCtl, ["-D", DataDirectory, "-m", "fast", "-w", "stop"], ToolProcess.IsRoot, cancellationToken).ConfigureAwait(false);
            try
            {
                await ToolProcess.RunAsync("cp", ["-a", DataDirectory, standby.DataDirectory], ToolProcess.IsRoot, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                await StartServerAsync(cancellationToken).ConfigureAwait(false);
            }

            // As pg_basebackup leaves them out: the primary's slots (a standby's own would clash with synchronized
            // ones of the same name) and its lock files.
            foreach (var slot in Directory.GetDirectories(Path.Combine(standby.DataDirectory, "pg_replslot")))
                Directory.Delete(slot, recursive: true);
            foreach (var file in new[] { "postmaster.pid", "postmaster.opts" })
                File.Delete(Path.Combine(standby.DataDirectory, file));

            var conf = new Dictionary<string, string>
            {
                ["unix_socket_directories"] = $"'{standby.Root}'",
                ["primary_conninfo"] = $"'host=127.0.0.1 port={Port} user=postgres dbname=postgres application_name=dbsync_standby'",
            };
            if (physicalSlot is not null)
                conf["primary_slot_name"] = $"'{physicalSlot}'";
            if (settings is not null)
            {
                foreach (var (key, value) in settings)
                    conf[key] = value;
            }
            // Appended after the primary's lines: the last line of a setting wins.
            await standby.AppendSettingsAsync(conf, cancellationToken).ConfigureAwait(false);
            await standby.WriteServerFileAsync("standby.signal", "", cancellationToken).ConfigureAwait(false);
            await standby.StartServerAsync(cancellationToken).ConfigureAwait(false);
            return standby;
        }
        catch
        {
            await standby.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Writes a file into the data directory, owned by the server's user and readable by it alone.</summary>
    public async Task WriteServerFileAsync(string name, string content, CancellationToken cancellationToken)
    {
        var path = Path.Combine(DataDirectory, name);
        await File.WriteAllTextAsync(path, content, cancellationToken).ConfigureAwait(false);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (ToolProcess.IsRoot)
            await ToolProcess.RunAsync("chown", ["postgres:postgres", path], asPostgres: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the server (fast) when it runs, and starts it.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken)
    {
        if (PostmasterPid() is { } pid && IsRunning(pid))
        {
            await ToolProcess.RunAsync(PgCtl, ["-D", DataDirectory, "-m", "fast", "-w", "stop"], ToolProcess.IsRoot, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await WaitForExitAsync(ServerProcesses(), cancellationToken).ConfigureAwait(false);
            // Left by a killed postmaster. The server would refuse to start while that process id exists, even as a
            // zombie its parent (here init, which reaps every few seconds) has not collected yet.
            File.Delete(Path.Combine(DataDirectory, "postmaster.pid"));
        }
        await StartServerAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ends recovery on a standby (<c>pg_ctl promote</c>), waiting until it accepts writes.</summary>
    public Task PromoteAsync(CancellationToken cancellationToken)
        => ToolProcess.RunAsync(PgCtl, ["-D", DataDirectory, "-w", "-t", "60", "promote"], ToolProcess.IsRoot, cancellationToken);

    /// <summary>
    /// SIGKILL to the postmaster, as a crash of the machine would end it (no shutdown checkpoint, no goodbye to clients),
    /// then waits until its children, which notice their postmaster's death, have exited.
    /// </summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        var pid = PostmasterPid() is { } p && IsRunning(p) ? p : throw new InvalidOperationException($"The server of {DataDirectory} is not running.");
        var processes = ServerProcesses();
        using (var postmaster = Process.GetProcessById(pid))
            postmaster.Kill(); // SIGKILL on Unix
        await WaitForExitAsync(processes, cancellationToken).ConfigureAwait(false);
    }

    private async Task StartServerAsync(CancellationToken cancellationToken)
    {
        // A port found free can be taken by someone else before the server binds it; try a few.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await ToolProcess.RunAsync(PgCtl,
                    ["-D", DataDirectory, "-l", LogFile, "-o", $"-p {Port}", "-w", "-t", "60", "start"],
                    asPostgres: ToolProcess.IsRoot, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                Port = FreePort();
            }
            catch (InvalidOperationException e)
            {
                var log = File.Exists(LogFile) ? string.Join('\n', (await File.ReadAllLinesAsync(LogFile, cancellationToken).ConfigureAwait(false)).TakeLast(20)) : "(none)";
                throw new InvalidOperationException($"{e.Message}\nThe end of {LogFile}:\n{log}", e);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (PostmasterPid() is { } pid && IsRunning(pid))
            {
                try
                {
                    await ToolProcess.RunAsync(PgCtl, ["-D", DataDirectory, "-m", "immediate", "-w", "stop"], ToolProcess.IsRoot, CancellationToken.None).ConfigureAwait(false);
                }
                catch (InvalidOperationException) when (!IsRunning(pid))
                {
                    // It ended between the look and pg_ctl's.
                }
            }
            // Children of a postmaster that was killed, should any outlive it: they would keep the directory in use.
            await WaitForExitAsync(ServerProcesses(), CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
                // A leftover temp directory is harmless; the server is already stopped.
            }
        }
    }

    private static async Task<LocalCluster> NewRootAsync(string binDirectory, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), "dbsync-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        if (ToolProcess.IsRoot)
            await ToolProcess.RunAsync("chown", ["postgres:postgres", root], asPostgres: false, cancellationToken).ConfigureAwait(false);
        return new LocalCluster(binDirectory, root, FreePort());
    }

    private async Task AppendSettingsAsync(IReadOnlyDictionary<string, string> settings, CancellationToken cancellationToken)
        => await File.AppendAllLinesAsync(Path.Combine(DataDirectory, "postgresql.auto.conf"),
            settings.Select(kv => $"{kv.Key} = {kv.Value}"), cancellationToken).ConfigureAwait(false);

    /// <summary>The postmaster's process id from the first line of postmaster.pid, or null without the file.</summary>
    private int? PostmasterPid()
    {
        try
        {
            using var reader = new StreamReader(Path.Combine(DataDirectory, "postmaster.pid"));
            return int.TryParse(reader.ReadLine(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private bool IsRunning(int pid) => ServerProcesses().Contains(pid);

    /// <summary>
    /// The live processes of this cluster's server: the postmaster and every child chdir into the data directory, which
    /// no other server shares. (A zombie has no working directory left, so it does not count.)
    /// </summary>
    private List<int> ServerProcesses()
    {
        var pids = new List<int>();
        if (!OperatingSystem.IsLinux())
            return pids;
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                continue;
            try
            {
                if (new DirectoryInfo(Path.Combine(entry, "cwd")).LinkTarget == DataDirectory)
                    pids.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile, or not ours to look at.
            }
        }
        return pids;
    }

    /// <summary>
    /// Waits until none of <paramref name="pids"/> runs in this cluster; what still does after 30 s gets SIGKILL, and what
    /// survives that for 10 s more is an error.
    /// </summary>
    private async Task WaitForExitAsync(List<int> pids, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + s_exitWait;
        var killed = false;
        while (true)
        {
            var left = ServerProcesses().Intersect(pids).ToList();
            if (left.Count == 0)
                return;
            if (DateTime.UtcNow > deadline)
            {
                if (killed)
                    throw new InvalidOperationException($"Server processes {string.Join(", ", left)} of {DataDirectory} did not exit, even after SIGKILL.");
                foreach (var pid in left)
                {
                    try
                    {
                        using var process = Process.GetProcessById(pid);
                        process.Kill();
                    }
                    catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                    {
                        // Exited meanwhile.
                    }
                }
                killed = true;
                deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            }
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
