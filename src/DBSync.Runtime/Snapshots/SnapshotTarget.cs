using DBSync.Diagnostics;
using DBSync.Mapping;
using DBSync.Replication;
using NpgsqlTypes;

namespace DBSync.Snapshots;

/// <summary>
/// The snapshot side of one mapped table, untyped, as the snapshot runner and the watermark channel see it: its DBLog
/// window while a snapshot runs, filled by the chunks read and closed at the high watermarks.
/// </summary>
internal abstract class SnapshotTarget
{
    public abstract SyncTableInfo Table { get; }

    /// <summary>The table's pre-built metric tags.</summary>
    public abstract TableTelemetry MetricTags { get; }

    /// <summary>Starts recording the keys of delivered changes for a snapshot of this table, at most
    /// <paramref name="maxChanges"/> at a time; watermarks of windows before <paramref name="firstWindow"/> are stale.</summary>
    public abstract void BeginSnapshot(int maxChanges, long firstWindow);

    public abstract void EndSnapshot();

    public abstract void OnLowWatermark(long window);

    /// <summary>Emits the chunk's remaining rows at the high watermark's place in the stream; returns how many, and whether
    /// the chunk (or some of its keys) must be read again.</summary>
    public abstract ValueTask<ChunkOutcome> OnHighWatermarkAsync(long window, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken);

    /// <summary>Sets the (empty) chunk of a fence: a watermark pair that only marks a point in the stream.</summary>
    public abstract void SetFence(long window, SnapshotVisibility visibility);

    /// <summary>Gives up a chunk read ahead (the chunk before it is read again): its high watermark emits nothing.</summary>
    public abstract void DiscardChunk(long window);

    /// <summary>Reads chunk number <paramref name="chunk"/> (rows after <paramref name="after"/>) through
    /// <paramref name="sql"/> and hands it to the window of <paramref name="window"/>; returns how many rows it had and
    /// the last chunk key (as text).</summary>
    public abstract Task<(int Count, IReadOnlyList<string>? LastKey)> ReadChunkAsync(ISnapshotSql sql, SnapshotQuery query, long chunk,
        IReadOnlyList<string>? after, int size, long window, CancellationToken cancellationToken);
}

/// <summary>The snapshot side of the table mapped by <typeparamref name="T"/>.</summary>
/// <param name="types">The database's types, for the chunks' columns (read when the run starts).</param>
/// <param name="metricTags">The table's metric tags.</param>
/// <param name="deliver">Hands a chunk row's change to the table's handlers.</param>
internal sealed class SnapshotTarget<T>(Func<PgTypeCatalog> types, TableTelemetry metricTags, Func<Change<T>, CancellationToken, ValueTask> deliver)
    : SnapshotTarget where T : ISyncTable<T>
{
    private volatile SnapshotWindow<T>? _window;

    /// <summary>Each window's chunk number within its table's snapshot (readers of several chunks at once add to it).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, long> _chunkNumbers = new();

    public override SyncTableInfo Table => T.TableInfo;

    public override TableTelemetry MetricTags => metricTags;

    /// <summary>Stream side: a change of the table was delivered (the window, if any, records it).</summary>
    public void Record(uint xid, in Change<T> change) => _window?.Record(xid, change);

    /// <summary>Stream side: the table's shape changed.</summary>
    public void OnShapeChanged() => _window?.OnShapeChanged();

    public override void BeginSnapshot(int maxChanges, long firstWindow) => _window = new SnapshotWindow<T>(maxChanges, firstWindow);

    public override void EndSnapshot()
    {
        _window = null;
        _chunkNumbers.Clear();
    }

    // A watermark can outlive its snapshot (cancelled, or the run ended while it was in flight): it is stale, ignored.
    public override void OnLowWatermark(long window) => _window?.OnLow(window);

    public override ValueTask<ChunkOutcome> OnHighWatermarkAsync(long window, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        if (_window is not { } open)
            return new(ChunkOutcome.Delivered(0));
        var (rows, asDeletes, outcome) = open.OnHigh(window);
        outcome = outcome with { Emitted = rows.Count };
        _chunkNumbers.TryRemove(window, out var number);
        return rows.Count == 0 ? new(outcome) : DeliverRowsAsync(rows, asDeletes, outcome, number, tx, lsn, cancellationToken);
    }

    public override void SetFence(long window, SnapshotVisibility visibility) => ActiveWindow(window).SetChunk(window, [], visibility);

    public override void DiscardChunk(long window) => ActiveWindow(window).Discard(window);

    public override async Task<(int Count, IReadOnlyList<string>? LastKey)> ReadChunkAsync(ISnapshotSql sql, SnapshotQuery query, long chunk,
        IReadOnlyList<string>? after, int size, long window, CancellationToken cancellationToken)
    {
        var read = await sql.ReadChunkAsync<T>(query, chunk, after, size, types(), cancellationToken).ConfigureAwait(false);
        var count = read.Rows.Count; // the window may drop rows from the list once it has it
        _chunkNumbers[window] = chunk; // for the rows' Change<T>.SnapshotChunk
        ActiveWindow(window).SetChunk(window, read.Rows, read.Visibility, query.EmitsDeletes);
        return (count, read.LastKey);
    }

    private SnapshotWindow<T> ActiveWindow(long window)
        => _window ?? throw new DBSyncException($"Watermark of chunk {window} for {T.TableInfo.DisplayName}, whose snapshot is not running.");

    /// <summary>A chunk's rows: Read changes, or deletes of rows that left the table (the whole row as the old one).</summary>
    private async ValueTask<ChunkOutcome> DeliverRowsAsync(List<T> rows, bool asDeletes, ChunkOutcome outcome, long chunk, TransactionContext tx, ulong lsn,
        CancellationToken cancellationToken)
    {
        foreach (var row in rows)
        {
            var change = asDeletes
                ? new Change<T>(ChangeKind.Delete, default, row, OldRowKind.Full, ColumnSet.Empty,
                    new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next()) { SnapshotChunk = chunk }
                : new Change<T>(ChangeKind.Read, row, default, OldRowKind.None, ColumnSet.Empty,
                    new NpgsqlLogSequenceNumber(lsn), tx.CommitLsn, tx.CommitTime, tx.Xid, tx.Changes.Next()) { SnapshotChunk = chunk };
            await deliver(change, cancellationToken).ConfigureAwait(false);
        }
        return outcome;
    }
}
