using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace DBSync.Testing;

/// <summary>An initdb cluster in a temporary directory.</summary>
internal sealed class LocalCluster : IAsyncDisposable
{
    private static readonly bool s_isRoot = Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root";

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

    public static async Task<LocalCluster> CreateAsync(IReadOnlyDictionary<string, string>? settings, CancellationToken cancellationToken)
    {
        var bin = FindBinDirectory();
        var root = Path.Combine(Path.GetTempPath(), "dbsync-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        if (s_isRoot)
            await RunAsync("chown", ["postgres:postgres", root], asPostgres: false, cancellationToken).ConfigureAwait(false);

        var cluster = new LocalCluster(bin, root, FreePort());
        try
        {
            await RunAsync(Path.Combine(bin, "initdb"),
                ["-D", cluster.DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                asPostgres: s_isRoot, cancellationToken).ConfigureAwait(false);

            var conf = new Dictionary<string, string>
            {
                ["listen_addresses"] = "'127.0.0.1'",
                ["unix_socket_directories"] = $"'{root}'",
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

            await File.AppendAllLinesAsync(Path.Combine(cluster.DataDirectory, "postgresql.auto.conf"),
                conf.Select(kv => $"{kv.Key} = {kv.Value}"), cancellationToken).ConfigureAwait(false);
            await cluster.StartServerAsync(cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
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
        if (s_isRoot)
            await RunAsync("chown", ["postgres:postgres", path], asPostgres: false, cancellationToken).ConfigureAwait(false);
    }

    public async Task RestartAsync(CancellationToken cancellationToken)
    {
        await RunAsync(Path.Combine(BinDirectory, "pg_ctl"), ["-D", DataDirectory, "-m", "fast", "-w", "stop"], s_isRoot, cancellationToken).ConfigureAwait(false);
        await StartServerAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task StartServerAsync(CancellationToken cancellationToken)
    {
        // A port found free can be taken by someone else before the server binds it; try a few.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RunAsync(Path.Combine(BinDirectory, "pg_ctl"),
                    ["-D", DataDirectory, "-l", LogFile, "-o", $"-p {Port}", "-w", "-t", "60", "start"],
                    asPostgres: s_isRoot, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                Port = FreePort();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                await RunAsync(Path.Combine(BinDirectory, "pg_ctl"), ["-D", DataDirectory, "-m", "immediate", "-w", "stop"],
                    s_isRoot, CancellationToken.None).ConfigureAwait(false);
            }
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

    private static string FindBinDirectory()
    {
        var fromEnv = Environment.GetEnvironmentVariable("PG_BIN");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(Path.Combine(fromEnv, "initdb")))
            return fromEnv;
        const string debianRoot = "/usr/lib/postgresql";
        if (Directory.Exists(debianRoot))
        {
            var best = Directory.GetDirectories(debianRoot)
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0))
                .Where(x => File.Exists(Path.Combine(x.Dir, "initdb")))
                .OrderByDescending(x => x.Version)
                .FirstOrDefault();
            if (best.Dir is not null)
                return best.Dir;
        }
        throw new InvalidOperationException(
            "No PostgreSQL server binaries found (looked for initdb under PG_BIN and /usr/lib/postgresql/*/bin). " +
            "Install them (Debian: apt-get install postgresql-15), set PG_BIN to the directory holding initdb and pg_ctl, " +
            "or point POSTGRES_HOST/PORT/USER/PASSWORD/NAME at a server with wal_level=logical.");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task RunAsync(string fileName, IReadOnlyList<string> arguments, bool asPostgres, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo
        {
            FileName = asPostgres ? "runuser" : fileName,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (asPostgres)
        {
            foreach (var a in new[] { "-u", "postgres", "--", fileName })
                start.ArgumentList.Add(a);
        }
        foreach (var a in arguments)
            start.ArgumentList.Add(a);

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{Path.GetFileName(fileName)} {string.Join(' ', arguments)} failed with exit code {process.ExitCode}:\n{await stdout.ConfigureAwait(false)}\n{await stderr.ConfigureAwait(false)}");
        }
    }
}
