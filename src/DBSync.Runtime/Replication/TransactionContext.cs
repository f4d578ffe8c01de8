using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>The transaction whose changes are being delivered (from its Begin message).</summary>
internal readonly record struct TransactionContext(uint Xid, NpgsqlLogSequenceNumber CommitLsn, DateTimeOffset CommitTime);
