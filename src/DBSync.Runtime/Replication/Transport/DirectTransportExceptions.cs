namespace DBSync.Replication.Transport;

/// <summary>The server or the connection string needs something only Npgsql's replication connection provides.</summary>
internal sealed class DirectTransportUnsupportedException(string reason) : Exception($"The direct replication connection cannot be used: {reason}.")
{
    public string Reason { get; } = reason;
}

/// <summary>The direct replication connection could not connect, negotiate TLS and log in within the connection string's
/// Timeout: a lost connection (<see cref="DBSync.Internal.ConnectionLoss"/>), which the run tries again.</summary>
internal sealed class ConnectTimeoutException(string message, Exception inner) : TimeoutException(message, inner);
