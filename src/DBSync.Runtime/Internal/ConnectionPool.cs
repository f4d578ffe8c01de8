using Npgsql;

namespace DBSync.Internal;

/// <summary>
/// A pool of ordinary connections of DBSync's own (an Npgsql data source): setup, snapshots, checkpoints and the side
/// connections of a session. It is never the pool that <c>new NpgsqlConnection(connectionString)</c> uses in the host
/// application, so clearing it after a lost connection closes only DBSync's idle connections.
/// </summary>
internal sealed class ConnectionPool(string connectionString)
{
    private readonly object _lock = new();
    private NpgsqlDataSource? _source;

    public string ConnectionString { get; } = connectionString;

    /// <summary>Opens a connection from the pool.</summary>
    public ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken) => Source.OpenConnectionAsync(cancellationToken);

    /// <summary>Closes the idle connections (after the server restarted, they are dead); connections in use are closed
    /// when they are returned.</summary>
    public void Clear()
    {
        lock (_lock)
            _source?.Clear();
    }

    private NpgsqlDataSource Source
    {
        get
        {
            lock (_lock)
                return _source ??= NpgsqlDataSource.Create(ConnectionString);
        }
    }
}
