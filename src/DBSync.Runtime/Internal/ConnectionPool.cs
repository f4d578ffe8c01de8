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
                return _source ??= NpgsqlDataSource.Create(ConnectionString);
        }
    }
}
