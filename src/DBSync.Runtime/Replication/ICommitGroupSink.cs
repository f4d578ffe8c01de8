using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// Something the delivered changes go into that may hold source transactions unacknowledged until a commit of its own:
/// the <see cref="PostgresApplier"/>'s target transaction, the JetStream publisher's acknowledgements from the broker.
/// The <see cref="CommitPipeline"/> acknowledges a transaction a sink holds (and every one after it) only once the sink
/// committed it, so nothing is confirmed to the server before the sink has it.
/// </summary>
internal interface ICommitGroupSink
{
    /// <summary>A replication session starts: whatever was held from the last one is dropped (it is delivered again).</summary>
    ValueTask OnSessionStartAsync(CancellationToken cancellationToken);

    /// <summary>The source transaction's handlers all completed. Returns true when the sink holds it, open for the
    /// transactions that follow, until <see cref="CommitGroupAsync"/>; false when everything the sink did for it is
    /// committed now (with every transaction it held before). <paramref name="mayGroup"/> is false for DBSync's own
    /// transactions (snapshot chunks), which the sink commits at once.</summary>
    ValueTask<bool> OnTransactionEndAsync(NpgsqlLogSequenceNumber commitLsn, NpgsqlLogSequenceNumber endLsn, uint xid, bool mayGroup,
        CancellationToken cancellationToken);

    /// <summary>Commits what the sink holds; nothing when it holds nothing.</summary>
    ValueTask CommitGroupAsync(CancellationToken cancellationToken);
}
