using DBSync.Internal;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>What the server's errors on the replication connection mean for DBSync: a connection to reconnect, a slot that
/// is gone, a slot another consumer holds.</summary>
internal static class StreamErrors
{
    private const string ObjectInUse = "55006";
    private const string UndefinedObject = "42704";
    private const string ObjectNotInPrerequisiteState = "55000";

    // A server shutting down ends the COPY stream with CommandComplete, which Npgsql reports as a protocol error; any
    // client-side NpgsqlException on the replication connection leaves it unusable, so it counts as a lost connection.
    public static bool IsStreamLoss(Exception e) => ConnectionLoss.Is(e) || e is NpgsqlException and not PostgresException;

    /// <summary>DBSync's exception for a server error of the stream, or null when it has none (the error is reported as it is).</summary>
    /// <param name="e">The server's error.</param>
    /// <param name="slot">The slot streamed from.</param>
    /// <param name="reconnecting">Whether an earlier session of this run lost its connection.</param>
    /// <param name="confirmed">The position confirmed so far.</param>
    /// <param name="standBy">Whether a slot held by another consumer is waited for (<see cref="SlotInUse.Wait"/>).</param>
    public static Exception? Translate(PostgresException e, string slot, bool reconnecting, NpgsqlLogSequenceNumber confirmed, bool standBy)
    {
        if (e.SqlState == ObjectInUse && standBy)
            return new SlotHeldException(e); // the run stands by until the slot is free (the holder may be our own lost walsender)
        if (e.SqlState == ObjectInUse && reconnecting)
        {
            // The walsender of the lost connection may hold the slot until it notices (wal_sender_timeout).
            return new StreamInterruptedException(e);
        }
        if (e.SqlState == ObjectNotInPrerequisiteState && IsSynchronizedCopy(e))
        {
            // A standby's synchronized copy of a failover slot (PostgreSQL 17): the address reached a standby that is not
            // promoted yet. Tried again, as a lost connection: after the promotion the copy streams.
            return new StreamInterruptedException(e);
        }
        if (e.SqlState == UndefinedObject || (e.SqlState == ObjectNotInPrerequisiteState && IsSlotInvalidated(e)))
        {
            var what = e.SqlState == UndefinedObject
                ? $"Replication slot \"{slot}\" no longer exists: it was dropped while DBSync was using it, or the server failed over to a standby that had no synchronized copy of it"
                : $"Replication slot \"{slot}\" was invalidated by the server ({e.MessageText}{(e.Detail is { } detail ? ": " + detail : "")}): it held back more WAL than max_slot_wal_keep_size allows, and the WAL it needed is gone";
            return SlotLoss.WhileStreaming(slot, confirmed.ToString(), what, e);
        }
        if (e.SqlState == ObjectInUse)
        {
            return new DBSyncConfigurationException(
                $"Replication slot \"{slot}\" is in use by another connection ({e.MessageText}). " +
                "A slot serves one consumer at a time: stop the other consumer, give this one its own DBSyncOptions.SlotName, " +
                "or set DBSyncOptions.WhenSlotInUse = SlotInUse.Wait to stand by and take over when the other stops.", e);
        }
        return null;
    }

    // PostgreSQL 17: "cannot use replication slot "s" for logical decoding", detail "This replication slot is being
    // synchronized from the primary server." (Npgsql redacts details unless told otherwise: then the message alone, which
    // for a logical pgoutput slot, checked at setup, has no other cause.)
    private static bool IsSynchronizedCopy(PostgresException e)
        => e.Detail?.Contains("being synchronized from the primary", StringComparison.Ordinal) == true
           || (e.MessageText.StartsWith("cannot use replication slot", StringComparison.Ordinal)
               && e.MessageText.EndsWith("for logical decoding", StringComparison.Ordinal)
               && e.Detail?.Contains("redacted", StringComparison.Ordinal) != false);

    // PostgreSQL 13-15 say "cannot read from logical replication slot", 16 and later "can no longer get changes from
    // replication slot"; both explain the invalidation in the detail.
    private static bool IsSlotInvalidated(PostgresException e)
        => e.MessageText.Contains("can no longer get changes", StringComparison.Ordinal)
           || e.MessageText.Contains("cannot read from logical replication slot", StringComparison.Ordinal)
           || e.MessageText.Contains("invalidated", StringComparison.Ordinal)
           || (e.Detail?.Contains("invalidated", StringComparison.Ordinal) ?? false);
}

/// <summary>START_REPLICATION found the slot active in another walsender, and the run stands by
/// (<see cref="SlotInUse.Wait"/>) until it is free.</summary>
internal sealed class SlotHeldException : Exception
{
    public SlotHeldException(PostgresException inner)
        : base(inner.MessageText, inner)
    {
    }

    public SlotHeldException(string slot)
        : base($"Replication slot \"{slot}\" is active for another walsender.")
    {
    }
}
