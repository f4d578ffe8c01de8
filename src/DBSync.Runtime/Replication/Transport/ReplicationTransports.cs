using DBSync.Internal;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>Opens the replication connection <see cref="DBSyncOptions.ReplicationTransport"/> asks for.</summary>
internal static class ReplicationTransports
{
    /// <summary>As <see cref="OpenAsync(DBSyncOptions, ConnectionPool, ILogger, CancellationToken)"/>, with a pool of its own.</summary>
    public static async Task<IReplicationTransport> OpenAsync(DBSyncOptions options, ILogger logger, CancellationToken cancellationToken)
    {
        await using var connections = new ConnectionPool(options.ConnectionString);
        return await OpenAsync(options, connections, logger, cancellationToken).ConfigureAwait(false);
    }

    /// <remarks>
    /// With Auto, Npgsql's connection serves what DBSync's does not: a connection string it cannot serve (an information
    /// log says why), or a server that asks for a method only Npgsql implements (a warning says why; nothing that reveals
    /// the password was sent on the first attempt). Never a refused login, a certificate that fails its check, or a server
    /// that breaks the authentication protocol: those are errors, so a wrong password is tried once.
    /// </remarks>
    /// <param name="options">The connection string and the transport asked for.</param>
    /// <param name="connections">Ordinary connections to the source: with several hosts listed, the server one of them
    /// reaches is the one the stream connects to (<see cref="ReplicationHost"/>).</param>
    /// <param name="logger">Says which transport serves the stream, when it is not the direct one.</param>
    /// <param name="cancellationToken">Cancels the connection.</param>
    public static async Task<IReplicationTransport> OpenAsync(DBSyncOptions options, ConnectionPool connections, ILogger logger, CancellationToken cancellationToken)
    {
        var connectionString = ReplicationSetup.AppendServerOptions(options.ConnectionString);
        try
        {
            connectionString = await ReplicationHost.PinAsync(connections, connectionString, cancellationToken).ConfigureAwait(false);
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
                        var direct = await DirectTransport.ConnectAsync(settings with { MaxMessageSize = options.MaxMessageSize }, StreamTimings.From(options), cancellationToken)
                            .ConfigureAwait(false);
                        if (direct.UnboundReason is { } unbound)
                            Log.ChannelBindingUnavailable(logger, options.SlotName, unbound);
                        return direct;
                    }
                    catch (DirectTransportUnsupportedException e) when (options.ReplicationTransport == ReplicationTransport.Direct)
                    {
                        throw DirectRequired(e.Reason, e);
                    }
                    catch (DirectTransportUnsupportedException e)
                    {
                        Log.DirectTransportFellBack(logger, options.SlotName, e.Reason);
                    }
                }
            }
            return await NpgsqlTransport.OpenAsync(connectionString, StreamTimings.From(options), cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (LoginFailure.Is(e))
        {
            throw LoginFailure.Create(e, connectionString);
        }
    }

    private static DBSyncConfigurationException DirectRequired(string reason, Exception? inner)
        => new($"DBSyncOptions.ReplicationTransport is Direct, but DBSync's own replication connection cannot be used: {reason}. " +
               "Set ReplicationTransport to Auto (Npgsql's replication connection then serves what DBSync's cannot) or to Npgsql.", inner);
}
