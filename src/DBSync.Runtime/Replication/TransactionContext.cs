using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>The transaction whose changes are being delivered (from its Begin message); <paramref name="Changes"/> numbers
/// them as they are delivered.</summary>
internal readonly record struct TransactionContext(uint Xid, NpgsqlLogSequenceNumber CommitLsn, DateTimeOffset CommitTime, ChangeCounter Changes);

/// <summary>
/// Counts the changes delivered in one transaction, all tables and snapshot rows included, in delivery order; the count so
/// far is the next change's <see cref="Change{T}.IndexInTransaction"/>. One per session, reset at each Begin, so numbering a
/// change allocates nothing, and a transaction delivered again is numbered the same.
/// </summary>
internal sealed class ChangeCounter
{
    public int Count { get; private set; }

    /// <summary>The index of the change being delivered.</summary>
    public int Next() => Count++;

    public void Reset() => Count = 0;
}
