using System.Security.Authentication;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>Opens the replication connection <see cref="DBSyncOptions.ReplicationTransport"/> asks for.</summary>
internal static class ReplicationTransports
{
    public static async Task<IReplicationTransport> OpenAsync(DBSyncOptions options, ILogger logger, CancellationToken cancellationToken)
    {
        var connectionString = ReplicationSetup.AppendServerOptions(options.ConnectionString);
        if (options.ReplicationTransport != ReplicationTransport.Npgsql)
        {
            var settings = DirectSettings.TryCreate(connectionString, out var unsupported);
            if (settings is null)
            {
                if (options.ReplicationTransport == ReplicationTransport.Direct)
                    throw DirectRequired(unsupported!, null);
                Log.DirectTransportNotUsed(logger, options.SlotName, unsupported!);
            }
            else
            {
                try
                {
                    return await DirectTransport.ConnectAsync(settings, StreamTimings.From(options), cancellationToken).ConfigureAwait(false);
                }
                catch (DirectTransportUnsupportedException e) when (options.ReplicationTransport == ReplicationTransport.Direct)
                {
                    throw DirectRequired(e.Reason, e);
                }
                catch (Exception e) when (options.ReplicationTransport == ReplicationTransport.Auto && CanFallBack(e))
                {
                    // Npgsql supports more ways to authenticate and verify the server; if it fails too, its error is the
                    // one the user sees.
                    Log.DirectTransportNotUsed(logger, options.SlotName, e is DirectTransportUnsupportedException u ? u.Reason : $"its handshake failed ({e.Message})");
                }
            }
        }
        return await NpgsqlTransport.OpenAsync(connectionString, StreamTimings.From(options), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Failures of the handshake that Npgsql's connection might get past: an authentication method or password
    /// source DBSync lacks, a rejected login (28xxx), a TLS handshake or certificate check that failed.</summary>
    private static bool CanFallBack(Exception e)
        => e is DirectTransportUnsupportedException or AuthenticationException
           || (e is PostgresException p && p.SqlState.StartsWith("28", StringComparison.Ordinal));

    private static DBSyncConfigurationException DirectRequired(string reason, Exception? inner)
        => new($"DBSyncOptions.ReplicationTransport is Direct, but DBSync's own replication connection cannot be used: {reason}. " +
               "Set ReplicationTransport to Auto (Npgsql's replication connection then serves what DBSync's cannot) or to Npgsql.", inner);
}
