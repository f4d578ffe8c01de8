using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Snapshots;

namespace DBSync.Replication;

/// <summary>
/// What happens when a transaction's changes were all handed to the row handlers, in this order: the snapshot signals it
/// carried (signal-table rows, and snapshots its DDL statements call for) act (and are checkpointed); the appliers commit their target transactions; the transaction handlers run (never
/// for the pipeline's own watermark and heartbeat transactions); the participants end what they kept for the
/// transaction; then the transaction is acknowledged, and may be confirmed to the server. A failure on the way leaves it
/// unacknowledged: it is delivered again.
/// </summary>
/// <remarks>
/// An applier may keep its target transaction open after a source transaction (several small source transactions then
/// share one target transaction, <see cref="PostgresApplier.MaxGroupedTransactions"/>). Such a transaction, and every one
/// after it, is acknowledged only once that target transaction commits: at <see cref="CommitGroupAsync"/>, which the
/// session calls when no frame is waiting, or when an applier commits by itself (its group is full, or the transaction is
/// one of DBSync's own, which carries snapshot chunks). Nothing is confirmed, and no snapshot chunk counts as delivered,
/// before the target has it.
/// </remarks>
internal sealed class CommitPipeline(
    IReadOnlyList<ICommitGroupSink> appliers,
    IReadOnlyList<Func<CommittedTransaction, CancellationToken, ValueTask>> transactionHandlers,
    IReadOnlyList<ITransactionParticipant> participants,
    HandlerInvoker invoker,
    SnapshotCoordinator snapshots,
    SignalRegistration? signals,
    Schema.SchemaFollower? schema,
    PipelineTelemetry telemetry,
    Action<TransactionEnd> handled,
    Action<TransactionEnd> acknowledge)
{
    /// <summary>Transactions handled whose target transaction is still open, in commit order.</summary>
    private readonly List<TransactionEnd> _uncommitted = [];

    /// <summary>Whether handled transactions wait for an applier's target transaction to commit.</summary>
    public bool HasUncommittedGroup => _uncommitted.Count > 0;

    /// <summary>A transaction begins: signals left over belonged to one that never committed here.</summary>
    public void OnBegin()
    {
        signals?.Reset();
        schema?.OnBegin();
    }

    public ValueTask CommitAsync(TransactionEnd end, CancellationToken cancellationToken)
    {
        snapshots.OnCommitted(end.Transaction.Xid);
        var pending = signals?.TakePending();
        if (schema?.TakePendingSnapshots() is { } snapshotsAfterDdl)
            (pending ??= []).AddRange(snapshotsAfterDdl);
        if (pending is not null)
            return CommitSignalsAsync(pending, end, cancellationToken);
        return DeliverAsync(end, cancellationToken);
    }

    /// <summary>Signals act (and are checkpointed) before their transaction is acknowledged: none is lost in a crash.</summary>
    private async ValueTask CommitSignalsAsync(List<Signal> pending, TransactionEnd end, CancellationToken cancellationToken)
    {
        try
        {
            await snapshots.ApplySignalsAsync(pending, (ulong)end.Transaction.CommitLsn, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (ConnectionLoss.Is(e) && !cancellationToken.IsCancellationRequested)
        {
            // The checkpoint could not be saved: the transaction is not acknowledged and comes again after reconnecting.
            throw new StreamInterruptedException(e);
        }
        await DeliverAsync(end, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask DeliverAsync(TransactionEnd end, CancellationToken cancellationToken)
    {
        if ((transactionHandlers.Count == 0 || end.IsInternal) && appliers.Count == 0 && participants.Count == 0)
        {
            handled(end);
            Acknowledge(end);
            return default;
        }
        return DeliverToHandlersAsync(end, cancellationToken);
    }

    private async ValueTask DeliverToHandlersAsync(TransactionEnd end, CancellationToken cancellationToken)
    {
        var committed = end.ToCommitted();
        var open = false;
        foreach (var applier in appliers)
            open |= await applier.OnTransactionEndAsync(committed.CommitLsn, committed.EndLsn, committed.Xid, mayGroup: !end.IsInternal, cancellationToken).ConfigureAwait(false);
        if (!end.IsInternal && transactionHandlers.Count > 0)
        {
            var start = Telemetry.StartHandlers();
            await Telemetry.EndHandlers(invoker.InvokeAllAsync(transactionHandlers, committed, cancellationToken), start, telemetry.TransactionHandlerTags).ConfigureAwait(false);
        }
        foreach (var participant in participants)
            await participant.OnTransactionEndAsync().ConfigureAwait(false);
        handled(end);
        if (open)
            _uncommitted.Add(end);
        else
            Acknowledge(end);
    }

    /// <summary>Commits the appliers' open target transactions, then acknowledges the transactions they held, in order.</summary>
    public async ValueTask CommitGroupAsync(CancellationToken cancellationToken)
    {
        if (_uncommitted.Count == 0)
            return;
        foreach (var applier in appliers)
            await applier.CommitGroupAsync(cancellationToken).ConfigureAwait(false);
        AcknowledgeUncommitted();
    }

    private void AcknowledgeUncommitted()
    {
        foreach (var held in _uncommitted)
        {
            snapshots.OnTransactionHandled();
            acknowledge(held);
        }
        _uncommitted.Clear();
    }

    /// <summary>Every handler of the transaction completed: a chunk whose high watermark it carried counts as delivered,
    /// and the transaction may be confirmed.</summary>
    private void Acknowledge(TransactionEnd end)
    {
        // Held transactions come first: their target transaction committed with (or before) this one's.
        if (_uncommitted.Count > 0)
            AcknowledgeUncommitted();
        snapshots.OnTransactionHandled();
        acknowledge(end);
    }
}
