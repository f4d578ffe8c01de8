using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Mapping;
using DBSync.Protocol;
using DBSync.Snapshots;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// The handlers of one mapped table, and the bridge from untyped frames to <see cref="Change{T}"/>: the stream loop calls
/// these virtual methods with tuple bytes, the generic subclass decodes with the generated code and calls the handlers.
/// Methods are not async so the tuple span never crosses an await; the returned task is the handlers'.
/// </summary>
internal abstract class TableRegistration
{
    public abstract SyncTableInfo Table { get; }

    /// <summary>The database's types (enums, domains, citext), read when the run starts; the stream's column bindings and
    /// the snapshot queries resolve type oids through it.</summary>
    public PgTypeCatalog Types { get; set; } = PgTypeCatalog.BuiltIn;

    /// <summary>The table's snapshot side; null for the signal table, which is not snapshotted.</summary>
    public abstract SnapshotTarget? Snapshot { get; }

    /// <summary>Why the run goes on without the table (<see cref="SchemaIncompatible.SkipTable"/>): its relation is then
    /// treated as unmapped. Set and read on the stream's thread.</summary>
    public string? SkippedBecause { get; set; }

    public abstract ValueTask OnInsertAsync(ReadOnlySpan<byte> newTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    public abstract ValueTask OnUpdateAsync(ReadOnlySpan<byte> newTuple, OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    public abstract ValueTask OnDeleteAsync(OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    public abstract ValueTask OnTruncateAsync(in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    /// <summary>The stream saw a Relation message that changes the table's shape.</summary>
    public virtual void OnShapeChanged()
    {
    }

    /// <summary>Calls the visitor with the table's entity type (nothing for the signal table, which has none).</summary>
    public virtual void Accept(ITableVisitor visitor)
    {
    }
}

/// <summary>Code generic over the entity type of each mapped table (the JetStream publisher's handler per table), without
/// reflection.</summary>
internal interface ITableVisitor
{
    void Visit<T>() where T : ISyncTable<T>;
}

internal sealed class TableRegistration<T> : TableRegistration where T : ISyncTable<T>
{
    private readonly List<Func<Change<T>, CancellationToken, ValueTask>> _handlers = [];
    private readonly HandlerInvoker _invoker;
    private readonly TableTelemetry _telemetry;
    private readonly SnapshotTarget<T> _snapshot;

    public TableRegistration(HandlerInvoker invoker, PipelineTelemetry telemetry)
    {
        _invoker = invoker;
        _telemetry = telemetry.ForTable(T.TableInfo.DisplayName);
        _snapshot = new SnapshotTarget<T>(() => Types, _telemetry, (change, cancellationToken) => DeliverAsync(change, cancellationToken, fromSnapshot: true));
    }

    public override SyncTableInfo Table => T.TableInfo;

    public override SnapshotTarget Snapshot => _snapshot;

    public void Add(Func<Change<T>, CancellationToken, ValueTask> handler) => _handlers.Add(handler);

    public override void Accept(ITableVisitor visitor) => visitor.Visit<T>();

    public override ValueTask OnInsertAsync(ReadOnlySpan<byte> newTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        var row = Decode(newTuple, binding, keyOnly: false, out var unchanged);
        return DeliverAsync(new Change<T>(ChangeKind.Insert, row, default, OldRowKind.None, unchanged,
            new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next()), cancellationToken);
    }

    public override ValueTask OnUpdateAsync(ReadOnlySpan<byte> newTuple, OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        var row = Decode(newTuple, binding, keyOnly: false, out var unchanged);
        var old = DecodeOld(oldKind, oldTuple, binding, out var oldRowKind);
        return DeliverAsync(new Change<T>(ChangeKind.Update, row, old, oldRowKind, unchanged,
            new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next()), cancellationToken);
    }

    public override ValueTask OnDeleteAsync(OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        var old = DecodeOld(oldKind, oldTuple, binding, out var oldRowKind);
        return DeliverAsync(new Change<T>(ChangeKind.Delete, default, old, oldRowKind, ColumnSet.Empty,
            new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next()), cancellationToken);
    }

    public override ValueTask OnTruncateAsync(in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
        => DeliverAsync(new Change<T>(ChangeKind.Truncate, default, default, OldRowKind.None, ColumnSet.Empty,
            new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next()), cancellationToken);

    private static T Decode(ReadOnlySpan<byte> tuple, ColumnBinding binding, bool keyOnly, out ColumnSet unchangedToast)
    {
        var reader = new TupleReader(tuple, binding, keyOnly);
        var row = T.DecodeTuple(ref reader);
        unchangedToast = reader.UnchangedToast;
        return row;
    }

    private static T? DecodeOld(OldTupleKind kind, ReadOnlySpan<byte> tuple, ColumnBinding binding, out OldRowKind oldRowKind)
    {
        switch (kind)
        {
            case OldTupleKind.Key:
                oldRowKind = OldRowKind.Key;
                return Decode(tuple, binding, keyOnly: true, out _);
            case OldTupleKind.Full:
                oldRowKind = OldRowKind.Full;
                // The old row of REPLICA IDENTITY FULL carries every value, TOASTed ones included.
                return Decode(tuple, binding, keyOnly: false, out _);
            default:
                oldRowKind = OldRowKind.None;
                return default;
        }
    }

    public override void OnShapeChanged() => _snapshot.OnShapeChanged();

    /// <summary>Hands a change to the handlers; with listeners, counts it and times them (pre-built tags, no allocation).
    /// The window records the stream's changes, not the snapshot's own.</summary>
    private ValueTask DeliverAsync(Change<T> change, CancellationToken cancellationToken, bool fromSnapshot = false)
    {
        if (!fromSnapshot)
            _snapshot.Record(change.Xid, change);
        if (Telemetry.Changes.Enabled)
            Telemetry.Changes.Add(1, _telemetry.Changes(change.Kind));
        var start = Telemetry.StartHandlers();
        var handlers = _handlers.Count == 1 ? _invoker.InvokeAsync(_handlers[0], change, cancellationToken) : DeliverToAllAsync(change, cancellationToken);
        return Telemetry.EndHandlers(handlers, start, _telemetry.HandlerTags);
    }

    private async ValueTask DeliverToAllAsync(Change<T> change, CancellationToken cancellationToken)
    {
        foreach (var handler in _handlers)
            await _invoker.InvokeAsync(handler, change, cancellationToken).ConfigureAwait(false);
    }
}
