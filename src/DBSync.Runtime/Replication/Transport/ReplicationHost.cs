using DBSync.Internal;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>
/// A replication connection goes to one server, and neither transport picks among several hosts (Npgsql refuses a
/// replication connection with several). With a connection string that lists the servers of a cluster
/// (<c>Host=a,b;Target Session Attributes=primary</c>), the stream is pinned, each time it connects, to the server that
/// DBSync's ordinary connections reach then: Npgsql chose it by its Target Session Attributes, so after a failover it is the
/// promoted standby.
/// </summary>
internal static class ReplicationHost
{
    /// <summary>Whether <paramref name="builder"/> lists several hosts.</summary>
    public static bool ListsSeveral(NpgsqlConnectionStringBuilder builder) => builder.Host?.Contains(',', StringComparison.Ordinal) == true;

    /// <summary><paramref name="connectionString"/> itself when it names one server; else the same settings with the one
    /// server an ordinary connection from <paramref name="connections"/> reaches now.</summary>
    public static async Task<string> PinAsync(ConnectionPool connections, string connectionString, CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!ListsSeveral(builder))
            return connectionString;
        await using var connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        return PinnedTo(builder, connection.Host!, connection.Port);
    }

    /// <summary><paramref name="builder"/>'s settings for the one server <paramref name="host"/>:<paramref name="port"/>,
    /// without the settings that choose among several.</summary>
    internal static string PinnedTo(NpgsqlConnectionStringBuilder builder, string host, int port)
    {
        builder.Host = host;
        builder.Port = port;
        builder.Remove("Target Session Attributes");
        builder.Remove("Load Balance Hosts");
        builder.Remove("Host Recheck Seconds");
        return builder.ConnectionString;
    }
}
