using DBSync.Protocol;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// What <see cref="TransactionAssembler"/> hands on, besides the row changes it hands to the mapped tables: each
/// transaction's begin and end, with every change of it in between, and the logical decoding messages. Methods that
/// return a task are awaited before the next frame is handled.
/// </summary>
internal interface ITransactionSink
{
    /// <summary>A transaction begins: its Begin message, or the Stream Commit of a streamed one, whose changes follow.</summary>
    void OnBegin(in TransactionContext transaction);

    /// <summary>One of this pipeline's own transactional messages (a snapshot watermark or a heartbeat), inside
    /// <paramref name="transaction"/>, which then counts as the pipeline's own.</summary>
    ValueTask OnPipelineMessageAsync(ReadOnlySpan<byte> content, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken);

    /// <summary>A DDL message of the capture trigger (<see cref="DBSyncOptions.CaptureSchemaChanges"/>), inside
    /// <paramref name="transaction"/>.</summary>
    ValueTask OnSchemaMessageAsync(ReadOnlySpan<byte> content, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken);

    /// <summary>Any other logical decoding message; <paramref name="xid"/> is its transaction's (0 for one outside a
    /// transaction on protocol 1).</summary>
    ValueTask OnMessageAsync(in LogicalDecodingMessage message, uint xid, CancellationToken cancellationToken);

    /// <summary>The transaction committed, and every change of it was handed on.</summary>
    ValueTask OnCommitAsync(TransactionEnd end, CancellationToken cancellationToken);
}

/// <summary>A transaction whose every change was handed on.</summary>
/// <param name="Transaction">The transaction.</param>
/// <param name="EndLsn">The end of its commit record: the position to confirm once it is handled.</param>
/// <param name="Origin">The replication origin it came from, if any.</param>
/// <param name="IsInternal">Whether it carries one of the pipeline's own messages (watermarks, heartbeats).</param>
internal readonly record struct TransactionEnd(TransactionContext Transaction, ulong EndLsn, string? Origin, bool IsInternal)
{
    /// <summary>What transaction handlers receive.</summary>
    public CommittedTransaction ToCommitted()
        => new(Transaction.Xid, Transaction.CommitLsn, new NpgsqlLogSequenceNumber(EndLsn), Transaction.CommitTime, Transaction.Changes.Count, Origin);
}
