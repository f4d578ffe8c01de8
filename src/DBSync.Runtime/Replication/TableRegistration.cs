using System.Data;
using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Mapping;
using DBSync.Protocol;
using DBSync.Snapshots;
using Npgsql;
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

    /// <summary>The table's pre-built metric tags (none for the signal table, which is not measured).</summary>
    public TableTelemetry? MetricTags { get; protected init; }

    /// <summary>The database's types (enums, domains, citext), read when the run starts; the stream's column bindings and
    /// the snapshot queries resolve type oids through it.</summary>
    public PgTypeCatalog Types { get; set; } = PgTypeCatalog.BuiltIn;

    /// <summary>Whether snapshot queries ask for text-format results (<see cref="DBSyncOptions.TextFormat"/>).</summary>
    public bool TextFormat { get; set; }

    public abstract ValueTask OnInsertAsync(ReadOnlySpan<byte> newTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    public abstract ValueTask OnUpdateAsync(ReadOnlySpan<byte> newTuple, OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    public abstract ValueTask OnDeleteAsync(OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    public abstract ValueTask OnTruncateAsync(in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    /// <summary>Starts recording the keys of delivered changes for a snapshot of this table, at most
    /// <paramref name="maxChanges"/> at a time; watermarks of windows before <paramref name="firstWindow"/> are stale.</summary>
    public abstract void BeginSnapshot(int maxChanges, long firstWindow);

    public abstract void EndSnapshot();

    public abstract void OnLowWatermark(long chunk);

    /// <summary>Sets the (empty) chunk of a fence: a watermark pair that only marks a point in the stream.</summary>
    public abstract void SetFence(long chunk, SnapshotVisibility visibility);

    /// <summary>Gives up a chunk read ahead (the chunk before it is read again): its high watermark emits nothing.</summary>
    public abstract void DiscardChunk(long chunk);

    /// <summary>Emits the chunk's remaining rows as Read changes, at the high watermark's place in the stream; returns
    /// how many, and whether the chunk (or some of its keys) must be read again.</summary>
    public abstract ValueTask<ChunkOutcome> OnHighWatermarkAsync(long chunk, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    /// <summary>The stream saw a Relation message that changes the table's shape.</summary>
    public virtual void OnShapeChanged()
    {
    }

    /// <summary>Reads one chunk in a read-only REPEATABLE READ transaction with its snapshot, hands it to the window, and
    /// returns how many rows it had and the last chunk key (as text).</summary>
    public abstract Task<(int Count, IReadOnlyList<string>? LastKey)> ReadChunkAsync(NpgsqlConnection connection, SnapshotQuery query,
        IReadOnlyList<string>? lastKey, int chunkSize, long chunk, CancellationToken cancellationToken);
}

internal sealed class TableRegistration<T> : TableRegistration where T : ISyncTable<T>
{
    private readonly List<Func<Change<T>, CancellationToken, ValueTask>> _handlers = [];
    private readonly HandlerInvoker _invoker;
    private readonly TableTelemetry _telemetry;
    private volatile SnapshotWindow<T>? _window;

    public TableRegistration(HandlerInvoker invoker, PipelineTelemetry telemetry)
    {
        _invoker = invoker;
        _telemetry = telemetry.ForTable(T.TableInfo.DisplayName);
        MetricTags = _telemetry;
    }

    public override SyncTableInfo Table => T.TableInfo;

    public void Add(Func<Change<T>, CancellationToken, ValueTask> handler) => _handlers.Add(handler);

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

    public override void BeginSnapshot(int maxChanges, long firstWindow) => _window = new SnapshotWindow<T>(maxChanges, firstWindow);

    public override void EndSnapshot() => _window = null;

    // A watermark can outlive its snapshot (cancelled, or the run ended while it was in flight): it is stale, ignored.
    public override void OnLowWatermark(long chunk) => _window?.OnLow(chunk);

    public override ValueTask<ChunkOutcome> OnHighWatermarkAsync(long chunk, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        if (_window is not { } window)
            return new(ChunkOutcome.Delivered(0));
        var (rows, asDeletes, outcome) = window.OnHigh(chunk);
        outcome = outcome with { Emitted = rows.Count };
        return rows.Count == 0 ? new(outcome) : DeliverRowsAsync(rows, asDeletes, outcome, tx, lsn, cancellationToken);
    }

    public override void OnShapeChanged() => _window?.OnShapeChanged();

    public override async Task<(int Count, IReadOnlyList<string>? LastKey)> ReadChunkAsync(NpgsqlConnection connection, SnapshotQuery query,
        IReadOnlyList<string>? lastKey, int chunkSize, long chunk, CancellationToken cancellationToken)
    {
        var rows = new List<T>();
        string[]? last = null;
        SnapshotVisibility visibility;
        await using (var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false))
        {
            // Read only (a filter is SQL of the caller's); the first query fixes the transaction's snapshot, and the chunk
            // SELECT below reads with the same one.
            await using (var snapshot = new NpgsqlCommand("SET TRANSACTION READ ONLY; SELECT pg_current_snapshot()::text", connection, transaction))
                visibility = SnapshotVisibility.Parse((string)(await snapshot.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);

            await using var command = new NpgsqlCommand(query.ChunkSql(lastKey is not null, chunkSize), connection, transaction) { AllResultTypesAreUnknown = TextFormat };
            query.AddParameters(command, lastKey);
            await using (var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken).ConfigureAwait(false))
            {
                var columns = T.TableInfo.Columns.Length;
                using var values = SnapshotColumns.Create(reader, T.TableInfo, Types, TextFormat);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var row = new SnapshotRowReader(reader, values);
                    rows.Add(T.ReadRow(ref row));
                    // Only the last row's key is needed: reading every row's would cost a string per row.
                    if (rows.Count == chunkSize)
                        last = ReadKey(reader, columns, query.KeyColumns.Length);
                }
            }
            if (rows.Count is > 0 && rows.Count < chunkSize)
            {
                // A short chunk read the whole rest of the range: its last row has the range's highest key.
                await using var highest = new NpgsqlCommand(query.LastKeySql(lastKey is not null), connection, transaction);
                query.AddParameters(highest, lastKey);
                await using var reader = await highest.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                last = ReadKey(reader, 0, query.KeyColumns.Length);
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        var count = rows.Count;
        ActiveWindow(chunk).SetChunk(chunk, rows, visibility, query.EmitsDeletes);
        return (count, last);
    }

    private static string[] ReadKey(NpgsqlDataReader reader, int first, int count)
    {
        var key = new string[count];
        for (var i = 0; i < count; i++)
            key[i] = reader.GetString(first + i);
        return key;
    }

    public override void SetFence(long chunk, SnapshotVisibility visibility) => ActiveWindow(chunk).SetChunk(chunk, [], visibility);

    public override void DiscardChunk(long chunk) => ActiveWindow(chunk).Discard(chunk);

    private SnapshotWindow<T> ActiveWindow(long chunk)
        => _window ?? throw new DBSyncException($"Watermark of chunk {chunk} for {T.TableInfo.DisplayName}, whose snapshot is not running.");

    /// <summary>A chunk's rows: Read changes, or deletes of rows that left the table (the whole row as the old one).</summary>
    private async ValueTask<ChunkOutcome> DeliverRowsAsync(List<T> rows, bool asDeletes, ChunkOutcome outcome, TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        foreach (var row in rows)
        {
            var change = asDeletes
                ? new Change<T>(ChangeKind.Delete, default, row, OldRowKind.Full, ColumnSet.Empty,
                    new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next())
                : new Change<T>(ChangeKind.Read, row, default, OldRowKind.None, ColumnSet.Empty,
                    new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next());
            await DeliverAsync(change, cancellationToken, fromSnapshot: true).ConfigureAwait(false);
        }
        return outcome;
    }

    /// <summary>Hands a change to the handlers; with listeners, counts it and times them (pre-built tags, no allocation).
    /// The window records the stream's changes, not the snapshot's own.</summary>
    private ValueTask DeliverAsync(Change<T> change, CancellationToken cancellationToken, bool fromSnapshot = false)
    {
        if (!fromSnapshot)
            _window?.Record(change.Xid, change);
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
