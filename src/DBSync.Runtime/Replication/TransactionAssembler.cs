using System.Buffers;
using DBSync.Protocol;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// The pgoutput transaction state machine: frames in, in stream order; whole transactions out, in commit order. A
/// transaction's row changes go to the mapped tables (through <see cref="RelationMap"/>) between its
/// <see cref="ITransactionSink.OnBegin"/> and <see cref="ITransactionSink.OnCommitAsync"/>; a streamed transaction's frames
/// (<c>streaming 'on'</c>) are kept in <see cref="StreamedTransactions"/> until its Stream Commit delivers them, in order,
/// as one transaction, or its Stream Abort drops them. Frames out of order are a <see cref="ProtocolException"/>.
/// </summary>
/// <remarks>
/// No I/O of its own (but asking the <see cref="IPartitionTracker"/> about a relation no type maps), no handlers: the
/// session composes it with the transport and the commit pipeline, and tests drive it with recorded frames. Frames are
/// decoded in the caller's buffer; the methods are not async, so a frame's span never crosses an await. With a
/// <c>ddlPrefix</c> (schema changes followed), the DDL capture trigger's messages go to
/// <see cref="ITransactionSink.OnSchemaMessageAsync"/>, not to the message handlers.
/// </remarks>
internal sealed class TransactionAssembler(RelationMap relations, StreamedTransactions streams, byte[] pipelinePrefix, ITransactionSink sink, byte[]? ddlPrefix = null) : IDisposable
{
    private readonly ChangeCounter _changes = new();
    private bool _inTransaction;
    private TransactionContext _transaction;
    private string? _origin;
    private bool _internal;
    private StreamedTransactions.Transaction? _streamBlock;
    private byte[] _replayBuffer = [];

    /// <summary>Inside a transaction, or between the Stream Start and Stream Stop of a streamed one: more frames of it follow.</summary>
    public bool InTransaction => _inTransaction || _streamBlock is not null;

    /// <summary>Between a transaction's Begin and Commit: its changes so far went to the handlers, the rest are to come.
    /// (A stream block is not: its changes wait here for the Stream Commit.)</summary>
    public bool DeliveringTransaction => _inTransaction;

    /// <summary>Whether the transaction being delivered (or the last one) carries one of the pipeline's own messages.</summary>
    public bool IsInternal => _internal;

    /// <summary>Handles one frame; the task is what the mapped tables' handlers or the sink still do with it.</summary>
    public ValueTask HandleAsync(ReadOnlySpan<byte> frame, ulong lsn, CancellationToken cancellationToken)
        => Handle(frame, lsn, inStream: false, cancellationToken);

    /// <summary>Drops the streamed transactions not yet committed (the next session receives them again from their start).</summary>
    public void Dispose()
    {
        streams.Dispose();
        _streamBlock = null;
        if (_replayBuffer.Length > 0)
            ArrayPool<byte>.Shared.Return(_replayBuffer);
        _replayBuffer = [];
    }

    /// <summary>One pgoutput message. <paramref name="inStream"/>: a frame of a streamed transaction, replayed at its
    /// Stream Commit (its message carries the transaction id).</summary>
    private ValueTask Handle(ReadOnlySpan<byte> frame, ulong lsn, bool inStream, CancellationToken cancellationToken)
    {
        var kind = PgOutputParser.KindOf(frame);
        if (_streamBlock is { } block && !inStream)
        {
            // Between Stream Start and Stream Stop: a part of an in-progress transaction, kept until it commits.
            if (kind == PgOutputMessageKind.StreamStop)
            {
                PgOutputParser.ReadStreamStop(frame);
                _streamBlock = null;
            }
            else if (kind is PgOutputMessageKind.Begin or PgOutputMessageKind.Commit or PgOutputMessageKind.StreamStart
                     or PgOutputMessageKind.StreamCommit or PgOutputMessageKind.StreamAbort)
            {
                throw new ProtocolException($"pgoutput message '{(char)kind}' at {new NpgsqlLogSequenceNumber(lsn)} arrived inside the stream block of transaction {block.Xid}.");
            }
            else
            {
                block.Append(frame, lsn);
            }
            return default;
        }

        switch (kind)
        {
            case PgOutputMessageKind.Begin when !inStream:
            {
                var begin = PgOutputParser.ReadBegin(frame);
                if (_inTransaction)
                    throw new ProtocolException($"Begin of transaction {begin.Xid} at {new NpgsqlLogSequenceNumber(lsn)} arrived inside transaction {_transaction.Xid}.");
                Begin(begin.Xid, begin.FinalLsn, begin.CommitTime);
                return default;
            }
            case PgOutputMessageKind.Commit when !inStream:
            {
                var commit = PgOutputParser.ReadCommit(frame);
                RequireTransaction(kind, lsn);
                if (commit.CommitLsn != (ulong)_transaction.CommitLsn)
                {
                    throw new ProtocolException(
                        $"Commit at {new NpgsqlLogSequenceNumber(commit.CommitLsn)} does not match the Begin of transaction {_transaction.Xid} (final LSN {_transaction.CommitLsn}).");
                }
                return Commit(commit.EndLsn, cancellationToken);
            }
            case PgOutputMessageKind.StreamStart when !inStream:
            {
                var start = PgOutputParser.ReadStreamStart(frame);
                if (_inTransaction)
                    throw new ProtocolException($"Stream Start of transaction {start.Xid} at {new NpgsqlLogSequenceNumber(lsn)} arrived inside transaction {_transaction.Xid}.");
                _streamBlock = streams.Open(start.Xid);
                return default;
            }
            case PgOutputMessageKind.StreamCommit when !inStream:
            {
                var commit = PgOutputParser.ReadStreamCommit(frame);
                if (_inTransaction)
                    throw new ProtocolException($"Stream Commit of transaction {commit.Xid} at {new NpgsqlLogSequenceNumber(lsn)} arrived inside transaction {_transaction.Xid}.");
                var streamed = streams.Take(commit.Xid)
                    ?? throw new ProtocolException($"Stream Commit of transaction {commit.Xid} at {new NpgsqlLogSequenceNumber(lsn)}, whose changes were never streamed.");
                return ReplayAsync(streamed, commit, cancellationToken);
            }
            case PgOutputMessageKind.StreamAbort when !inStream:
            {
                var abort = PgOutputParser.ReadStreamAbort(frame);
                streams.Abort(abort.Xid, abort.SubXid);
                return default;
            }
            case PgOutputMessageKind.Origin:
                _origin = PgOutputParser.ReadOrigin(frame).Name;
                return default;
            case PgOutputMessageKind.Relation:
                relations.Bind(PgOutputParser.ReadRelation(frame, inStream));
                return default;
            case PgOutputMessageKind.Type:
                relations.OnType(PgOutputParser.ReadType(frame, inStream));
                return default;
            case PgOutputMessageKind.Insert:
            {
                var insert = PgOutputParser.ReadInsert(frame, inStream);
                var relation = ChangedRelation(insert.RelationId, kind, lsn);
                return relation.Registration is { } table
                    ? table.OnInsertAsync(insert.NewTuple, relation.Binding!, _transaction, lsn, cancellationToken)
                    : OnUnmappedAsync(relation, frame, lsn, inStream, cancellationToken);
            }
            case PgOutputMessageKind.Update:
            {
                var update = PgOutputParser.ReadUpdate(frame, inStream);
                var relation = ChangedRelation(update.RelationId, kind, lsn);
                return relation.Registration is { } table
                    ? table.OnUpdateAsync(update.NewTuple, update.OldKind, update.OldTuple, relation.Binding!, _transaction, lsn, cancellationToken)
                    : OnUnmappedAsync(relation, frame, lsn, inStream, cancellationToken);
            }
            case PgOutputMessageKind.Delete:
            {
                var delete = PgOutputParser.ReadDelete(frame, inStream);
                var relation = ChangedRelation(delete.RelationId, kind, lsn);
                return relation.Registration is { } table
                    ? table.OnDeleteAsync(delete.OldKind, delete.OldTuple, relation.Binding!, _transaction, lsn, cancellationToken)
                    : OnUnmappedAsync(relation, frame, lsn, inStream, cancellationToken);
            }
            case PgOutputMessageKind.Truncate:
            {
                var truncate = PgOutputParser.ReadTruncate(frame, inStream);
                RequireTransaction(kind, lsn);
                return relations.TruncateAsync(truncate.RelationIds, _transaction, lsn, cancellationToken);
            }
            case PgOutputMessageKind.Message:
            {
                var message = PgOutputParser.ReadMessage(frame, inStream);
                if (message.Transactional && message.Prefix.SequenceEqual(pipelinePrefix))
                {
                    // This pipeline's snapshot watermark or heartbeat: its transaction is the pipeline's own, never shown
                    // to message or transaction handlers.
                    RequireTransaction(kind, lsn);
                    _internal = true;
                    return sink.OnPipelineMessageAsync(message.Content, _transaction, lsn, cancellationToken);
                }
                if (ddlPrefix is not null && message.Transactional && message.Prefix.SequenceEqual(ddlPrefix))
                {
                    // A DDL statement, at its place among the transaction's row changes.
                    RequireTransaction(kind, lsn);
                    return sink.OnSchemaMessageAsync(message.Content, _transaction, lsn, cancellationToken);
                }
                var xid = message.Transactional && _inTransaction ? _transaction.Xid : message.Xid;
                return sink.OnMessageAsync(message, xid, cancellationToken);
            }
            default:
                throw new ProtocolException(
                    $"Unexpected pgoutput message '{(char)kind}' at {new NpgsqlLogSequenceNumber(lsn)}{(inStream ? " inside a streamed transaction" : "")}: DBSync did not request two-phase decoding.");
        }
    }

    private void Begin(uint xid, ulong commitLsn, DateTime commitTime)
    {
        _inTransaction = true;
        _changes.Reset();
        _transaction = new TransactionContext(xid, new NpgsqlLogSequenceNumber(commitLsn), new DateTimeOffset(commitTime, TimeSpan.Zero), _changes);
        _origin = null;
        _internal = false;
        sink.OnBegin(_transaction);
    }

    private ValueTask Commit(ulong endLsn, CancellationToken cancellationToken)
    {
        _inTransaction = false;
        return sink.OnCommitAsync(new TransactionEnd(_transaction, endLsn, _origin, _internal), cancellationToken);
    }

    /// <summary>A streamed transaction committed: its frames are delivered now, in order, as one transaction.</summary>
    private async ValueTask ReplayAsync(StreamedTransactions.Transaction streamed, StreamCommitMessage commit, CancellationToken cancellationToken)
    {
        using (streamed)
        {
            Begin(commit.Xid, commit.CommitLsn, commit.CommitTime);
            var reader = streamed.OpenReader();
            while (reader.TryRead(ref _replayBuffer, out var length, out var lsn))
                await Handle(_replayBuffer.AsSpan(0, length), lsn, inStream: true, cancellationToken).ConfigureAwait(false);
        }
        await Commit(commit.EndLsn, cancellationToken).ConfigureAwait(false);
    }

    private void RequireTransaction(PgOutputMessageKind kind, ulong lsn)
    {
        if (!_inTransaction)
            throw new ProtocolException($"pgoutput message '{(char)kind}' at {new NpgsqlLogSequenceNumber(lsn)} arrived outside a transaction.");
    }

    /// <summary>The relation of a row change, which must be inside a transaction.</summary>
    private RelationState ChangedRelation(uint relationId, PgOutputMessageKind kind, ulong lsn)
    {
        RequireTransaction(kind, lsn);
        return relations.Get(relationId, kind);
    }

    /// <summary>A row change of a relation no type maps: the first one (per Relation message) has the relation looked up,
    /// then is handled again. The frame is copied, since it does not outlive the lookup.</summary>
    private ValueTask OnUnmappedAsync(RelationState relation, ReadOnlySpan<byte> frame, ulong lsn, bool inStream, CancellationToken cancellationToken)
    {
        if (relation.Resolved)
            return default;
        var copy = ArrayPool<byte>.Shared.Rent(frame.Length);
        frame.CopyTo(copy);
        return ResolveAndHandleAsync(relation, copy, frame.Length, lsn, inStream, cancellationToken);
    }

    private async ValueTask ResolveAndHandleAsync(RelationState relation, byte[] frame, int length, ulong lsn, bool inStream, CancellationToken cancellationToken)
    {
        try
        {
            await relations.ResolveAsync(relation, cancellationToken).ConfigureAwait(false);
            await Handle(frame.AsSpan(0, length), lsn, inStream, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }
}
