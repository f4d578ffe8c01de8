namespace DBSync.Snapshots;

/// <summary>
/// The DBLog window of one table while its snapshot runs. The stream records every change it delivers for the table,
/// with its transaction id; at the high watermark the chunk drops every row whose key was changed after the low
/// watermark, or by a transaction the chunk's snapshot does not see (it may have been delivered before the low watermark
/// yet be newer than the chunk: the commit-visibility race). What remains is emitted as Read changes.
/// </summary>
/// <remarks>
/// <para>Recording and the watermarks run on the stream's thread; the chunk arrives from the coordinator's, always
/// before the high watermark is written, so it is in hand when the stream reaches it. The coordinator reads the next
/// chunk while the stream delivers the last one, so two chunks can be in hand at once; their windows never overlap in
/// the stream (the next low watermark is written after the last high one). Only the chunks are shared between the
/// threads (under a lock); everything else the stream's thread alone touches, and what the coordinator must know it
/// gets in the <see cref="ChunkOutcome"/> of the high watermark.</para>
/// <para>"The stream's change is at least as new as the chunk's row" holds for the columns the change carries. An update
/// that left an out-of-line TOAST value unchanged does not carry it, so a consumer whose first sight of the row was that
/// update would never get the value. Such a row is not dropped: its state at the high watermark is rebuilt from the
/// chunk's row and the changes its snapshot did not see, in stream order (each taking the values it carries, the
/// unchanged ones from the state before it), and emitted whole. A key update moves that state to the new key; a delete
/// ends it.</para>
/// <para>At most <c>maxChanges</c> changes are kept. Past that (one huge transaction on the table while a chunk is in
/// its window) only the transaction ids are kept: the chunk is read again once those transactions are visible to new
/// snapshots, and from then on any chunk reflects them, so their changes are not needed.</para>
/// </remarks>
internal sealed class SnapshotWindow<T>(int maxChanges, long firstWindow = 1) where T : ISyncTable<T>
{
    private readonly List<Touch> _touches = [];
    private readonly HashSet<uint> _overflowXids = [];
    private readonly object _chunkLock = new();
    private readonly List<PendingChunk> _chunks = [];
    private long _sequence;
    private long _lowSequence = -1;
    private long _lowChunk = -1;
    private bool _shapeChanged;

    /// <summary>Records a delivered change of the table.</summary>
    public void Record(uint xid, in Change<T> change)
    {
        _sequence++;
        if (_touches.Count >= maxChanges)
        {
            _overflowXids.Add(xid);
            return;
        }
        _touches.Add(change.Kind == ChangeKind.Truncate
            ? new Touch(xid, _sequence, default, default, ColumnSet.Empty, IsTruncate: true)
            : new Touch(xid, _sequence, change.New, change.Old, change.UnchangedToast, IsTruncate: false));
    }

    /// <summary>The stream saw the table's shape change (a Relation message with other columns or types).</summary>
    public void OnShapeChanged()
    {
        if (_lowChunk >= 0)
            _shapeChanged = true;
    }

    /// <summary>The chunk read between the watermarks of <paramref name="chunk"/> (each window's id is new). With
    /// <paramref name="asDeletes"/>, the rows are ones that left the table (<see cref="Checkpoints.JobState.DeletesFrom"/>),
    /// to be delivered as deletes.</summary>
    public void SetChunk(long chunk, List<T> rows, SnapshotVisibility visibility, bool asDeletes = false)
    {
        lock (_chunkLock)
            _chunks.Add(new PendingChunk(chunk, rows, visibility, asDeletes));
    }

    /// <summary>Empties the rows of <paramref name="chunk"/>, read but given up (the chunk before it is read again): its
    /// window still closes at its high watermark, and emits nothing.</summary>
    public void Discard(long chunk)
    {
        lock (_chunkLock)
        {
            var index = _chunks.FindIndex(c => c.Chunk == chunk);
            if (index >= 0)
                _chunks[index] = _chunks[index] with { Rows = [] };
        }
    }

    /// <summary>The stream reached the low watermark of <paramref name="chunk"/>.</summary>
    public void OnLow(long chunk)
    {
        if (chunk < firstWindow)
            return; // a watermark written before this snapshot began (the stream may hand it over just as it begins)
        if (_lowChunk >= 0)
            throw new DBSyncException($"Snapshot of {T.TableInfo.DisplayName}: low watermark of chunk {chunk} arrived while chunk {_lowChunk} was still open.");
        _lowChunk = chunk;
        _lowSequence = _sequence;
    }

    /// <summary>The stream reached the high watermark of <paramref name="chunk"/>: the rows to emit, whether they are to be
    /// delivered as deletes, and what the coordinator must do before the chunk counts as delivered (the rows' count is not
    /// set yet).</summary>
    public (List<T> Rows, bool AsDeletes, ChunkOutcome Outcome) OnHigh(long chunk)
    {
        if (chunk < firstWindow)
            return ([], false, ChunkOutcome.Delivered(0)); // stale, as in OnLow
        if (_lowChunk != chunk)
            throw new DBSyncException($"Snapshot of {T.TableInfo.DisplayName}: high watermark of chunk {chunk} arrived without its low watermark (open: {_lowChunk}).");
        PendingChunk pending;
        lock (_chunkLock)
        {
            var index = _chunks.FindIndex(c => c.Chunk == chunk);
            if (index < 0)
                throw new DBSyncException($"Snapshot of {T.TableInfo.DisplayName}: the stream reached the high watermark of chunk {chunk} before its rows were read.");
            pending = _chunks[index];
            _chunks.RemoveAt(index);
        }

        var rows = _shapeChanged || _overflowXids.Count > 0 ? [] : Close(pending);
        // Only changes the chunk's snapshot did not see can matter to a later chunk: visible ones stay visible.
        _touches.RemoveAll(t => pending.Visibility.Sees(t.Xid));
        _lowChunk = -1;
        if (_shapeChanged || _overflowXids.Count > 0)
        {
            // Read the chunk again once every transaction the window could not record is visible.
            _shapeChanged = false;
            var overflow = _overflowXids.ToArray();
            _overflowXids.Clear();
            return ([], false, new ChunkOutcome(0, ChunkFollowUp.ReadAgain, overflow));
        }
        return (rows, pending.AsDeletes, ChunkOutcome.Delivered(0));
    }

    /// <summary>The chunk's rows as of its high watermark: those no change touched after the low watermark or unseen by
    /// the chunk's snapshot, and those whose changes left columns out, completed (see the remarks).</summary>
    private List<T> Close(PendingChunk pending)
    {
        var visibility = pending.Visibility;
        var stale = new HashSet<T>(KeyComparer<T>.Instance);
        HashSet<T>? lacking = null;
        foreach (var touch in _touches)
        {
            if (touch.Sequence <= _lowSequence && visibility.Sees(touch.Xid))
                continue; // older than the chunk: the chunk already reflects it
            if (touch.IsTruncate)
                return []; // every row of the chunk is gone; what came after arrived whole (inserts carry every column)
            if (touch.New is { } changed)
                stale.Add(changed);
            if (touch.Old is { } old)
                stale.Add(old); // a key update or a delete also ends the old key
            if (!touch.Unchanged.IsEmpty)
                (lacking ??= new HashSet<T>(KeyComparer<T>.Instance)).Add(touch.New!);
        }
        if (stale.Count == 0)
            return pending.Rows;
        if (lacking is null || pending.AsDeletes) // a delete needs no column an update left out
        {
            pending.Rows.RemoveAll(stale.Contains);
            return pending.Rows;
        }

        // Some change left columns out: follow every stale row of the chunk through the changes its snapshot did not see
        // (a change it saw is in the row already, but may have reached the consumers without all its columns).
        var states = new Dictionary<T, State>(KeyComparer<T>.Instance);
        foreach (var row in pending.Rows)
        {
            if (stale.Contains(row))
                states[row] = new State(row, Lacked: lacking.Contains(row));
        }
        foreach (var touch in _touches)
        {
            if (visibility.Sees(touch.Xid))
                continue; // in the chunk's rows already
            if (touch.New is not { } changed)
            {
                states.Remove(touch.Old!); // deleted
                continue;
            }
            // The state the change applies to: its own key's, or, for a key update, the old key's (which it ends).
            var from = touch.Old is { } old && !T.KeyEquals(old, changed) ? old : changed;
            var known = states.Remove(from, out var before);
            if (!touch.Unchanged.IsEmpty && !known)
            {
                states.Remove(changed); // a row that is not the chunk's: its consumers saw it whole before
                continue;
            }
            // A change that carried every column gave its consumers the whole row; one that did not is completed from the
            // state before it.
            states[changed] = touch.Unchanged.IsEmpty
                ? new State(changed, Lacked: false)
                : new State(T.WithColumns(changed, before.Row, touch.Unchanged), Lacked: true);
        }

        var result = new List<T>(pending.Rows.Count);
        foreach (var row in pending.Rows)
        {
            if (!stale.Contains(row))
                result.Add(row);
        }
        foreach (var state in states.Values)
        {
            if (state.Lacked)
                result.Add(state.Row); // whole, as of this high watermark
        }
        return result;
    }

    /// <summary>A row followed through the changes after the chunk's snapshot; <paramref name="Lacked"/>: one of them left
    /// columns out, so its consumers may not have them.</summary>
    private readonly record struct State(T Row, bool Lacked);

    /// <summary>One delivered change: the new row (null for a delete), the old one (a key, or the whole row under REPLICA
    /// IDENTITY FULL; null when PostgreSQL sent none), and the columns it left out as unchanged TOAST.</summary>
    private readonly record struct Touch(uint Xid, long Sequence, T? New, T? Old, ColumnSet Unchanged, bool IsTruncate);

    private sealed record PendingChunk(long Chunk, List<T> Rows, SnapshotVisibility Visibility, bool AsDeletes);
}

/// <summary>What a chunk's high watermark leaves to do before the chunk counts as delivered.</summary>
internal enum ChunkFollowUp
{
    /// <summary>Nothing: the chunk is delivered.</summary>
    None,

    /// <summary>The table's shape changed in the window, or the window could not record every change: read the chunk
    /// again, emitting nothing of this one.</summary>
    ReadAgain,
}

/// <summary>How the stream closed a chunk's window: rows emitted, what is left to do, and the transactions that must be
/// visible to new snapshots before the chunk is read again.</summary>
internal readonly record struct ChunkOutcome(int Emitted, ChunkFollowUp FollowUp, uint[] WaitFor)
{
    public static ChunkOutcome Delivered(int emitted) => new(emitted, ChunkFollowUp.None, []);
}
