using System.Net.Sockets;
using DBSync.Replication.Transport;
using Npgsql;

namespace DBSync.Internal;

/// <summary>Tells a lost connection (the server restarted, the backend was terminated, the network dropped) from other
/// errors: DBSync reconnects after the first and stops on the others.</summary>
internal static class ConnectionLoss
{
    public static bool Is(Exception exception) => exception switch
    {
        // 08: connection exceptions; 57P01/57P02/57P03: terminated, crash shutdown, cannot connect now (starting up);
        // 53300: too many connections (a restart's backends not yet gone).
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState is "57P01" or "57P02" or "57P03" or "53300",
        NpgsqlException n => n.InnerException is IOException or SocketException or EndOfStreamException or TimeoutException
                             || (n.InnerException is { } inner && Is(inner))
                             || n.IsTransient
                             || NoPrimaryNow(n),
        // Several hosts listed, each failed: lost if every one of them was.
        AggregateException a => a.InnerExceptions.Count > 0 && a.InnerExceptions.All(Is),
        IOException or SocketException or EndOfStreamException => true,
        // The direct replication connection's connect timeout, as Npgsql's (an NpgsqlException around a TimeoutException).
        ConnectTimeoutException => true,
        // Another instance holds the slot now: this one's stream is gone, whether or not its socket says so yet.
        SlotNotHeldException => true,
        _ => false,
    };

    /// <summary>Several hosts listed (Host=a,b with Target Session Attributes=primary), and every one that answered is a
    /// standby: a failover under way, whose promotion the reconnects wait for. Npgsql says so with this message alone (no
    /// inner exception, no SQLSTATE).</summary>
    private static bool NoPrimaryNow(NpgsqlException exception)
        => exception.GetType() == typeof(NpgsqlException) && exception.InnerException is null
           && exception.Message == "No suitable host was found.";
}

/// <summary>A fenced checkpoint save (<see cref="DBSync.IFencedCheckpointStore"/>) found that this session's walsender
/// no longer streams from the slot: another instance took it over. Handled as a lost connection: the stream reconnects
/// and, finding the slot held, stands by.</summary>
internal sealed class SlotNotHeldException(string slot, int pid, bool takenOver = true)
    : Exception(takenOver
        ? $"Slot \"{slot}\" no longer streams to this instance's walsender (server process {pid}): another instance took it over, so this one does not write the snapshot checkpoint."
        : $"Slot \"{slot}\" does not stream to this instance's walsender (server process {pid}) yet: the stream is starting (Npgsql's replication connection starts it with its first read), or another instance is taking over.")
{
    /// <summary>Another walsender holds the slot: this instance was deposed.</summary>
    public bool TakenOver { get; } = takenOver;
}

/// <summary>The replication stream, or an applier's target, lost its connection; the run reconnects and resumes from the
/// confirmed position.</summary>
internal sealed class StreamInterruptedException(Exception inner) : Exception($"The stream lost a connection: {inner.Message}", inner)
{
    /// <summary>The same loss again, nothing having been done since the last: the run's reconnect delay keeps growing even
    /// though the stream had started (a target that answers, then loses every transaction).</summary>
    public bool Repeated { get; init; }
}
