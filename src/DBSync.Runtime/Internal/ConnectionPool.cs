using System.Collections.Concurrent;
using Npgsql;

namespace DBSync.Internal;

/// <summary>
/// A pool of ordinary connections of DBSync's own (an Npgsql data source): setup, snapshots, checkpoints and the side
/// connections of a session. It is never the pool that <c>new NpgsqlConnection(connectionString)</c> uses in the host
/// application, so clearing it after a lost connection closes only DBSync's idle connections.
/// </summary>
/// <remarks>Disposing it closes its idle connections and lets go of the data source (and its timer); a later
/// <see cref="OpenAsync"/> starts a new one, so a client or store can be used again after a run.</remarks>
internal sealed class ConnectionPool(string connectionString) : IAsyncDisposable
{
    private readonly object _lock = new();
    private NpgsqlDataSource? _source;

    /// <summary>The server processes of DBSync's connections in use now, from every pool of this process: the snapshot
    /// throttle does not count them as the workload (a user's connection string may give them any application name).</summary>
    private static readonly ConcurrentDictionary<int, byte> s_inUse = new();

    public string ConnectionString { get; } = connectionString;

    /// <summary>The server process ids of DBSync's connections in use now.</summary>
    public static int[] InUseProcessIds() => [.. s_inUse.Keys];

    /// <summary>Opens a connection from the pool.</summary>
    public async ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = await Source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var pid = connection.ProcessID;
        s_inUse[pid] = 0;
        connection.StateChange += (_, e) =>
        {
            if (e.CurrentState == System.Data.ConnectionState.Closed)
                s_inUse.TryRemove(pid, out byte _);
        };
        return connection;
    }

    /// <summary>Closes the idle connections (after the server restarted, they are dead); connections in use are closed
    /// when they are returned.</summary>
    public void Clear()
    {
        lock (_lock)
            _source?.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlDataSource? source;
        lock (_lock)
        {
            source = _source;
            _source = null;
        }
        if (source is not null)
            await source.DisposeAsync().ConfigureAwait(false);
    }

    private NpgsqlDataSource Source
    {
        get
        {
            lock (_lock)
                return _source ??= NpgsqlDataSource.Create(Named(ConnectionString));
        }
    }

    /// <summary>Names DBSync's sessions <c>DBSync</c> in <c>pg_stat_activity</c> (as its replication connection) unless the
    /// connection string names them.</summary>
    internal static string Named(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!string.IsNullOrEmpty(builder.ApplicationName))
            return connectionString;
        builder.ApplicationName = "DBSync";
        return builder.ConnectionString;
    }
}
