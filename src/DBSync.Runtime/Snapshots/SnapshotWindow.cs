namespace DBSync.Snapshots;

/// <summary>
/// The DBLog window of one table while its snapshot runs. The stream records the key of every change it delivers for
/// the table, with its transaction id; at the high watermark the chunk drops every row whose key was changed after the
/// low watermark, or by a transaction the chunk's snapshot does not see (it may have been delivered before the low
/// watermark yet be newer than the chunk: the commit-visibility race). What remains is emitted as Read changes.
/// </summary>
/// <remarks>
/// <para>Recording and the watermarks run on the stream's thread; the chunk arrives from the coordinator's, always
/// before the high watermark is written, so it is in hand when the stream reaches it. The coordinator reads the next
/// chunk while the stream delivers the last one, so two chunks can be in hand at once; their windows never overlap in
/// the stream (the next low watermark is written after the last high one). Only the chunks are shared between the
/// threads (under a lock); everything else the stream's thread alone touches, and what the coordinator must know it
/// gets in the <see cref="ChunkOutcome"/> of the high watermark.</para>
/// <para>"The stream's change is at least as new as the chunk's row" holds for the columns the change carries. An update
/// that left an out-of-line TOAST value unchanged does not carry it: when such a change makes the window drop a row of
/// the chunk, the row's key is read again once that change is visible (<see cref="ChunkFollowUp.Repair"/>), so a
/// consumer whose first sight of the row was that update still gets every column.</para>
/// <para>At most <c>maxChanges</c> touches are kept. Past that (one huge transaction on the table while a chunk is in
/// its window) only the transaction ids are kept: the chunk is read again once those transactions are visible to new
/// snapshots, and from then on any chunk reflects them, so their touches are not needed.</para>
/// </remarks>
internal sealed class SnapshotWindow<T>(int maxChanges) where T : ISyncTable<T>
{
    private readonly List<Touch> _touches = [];
    private readonly HashSet<uint> _overflowXids = [];
    private readonly object _chunkLock = new();
    private readonly List<PendingChunk> _chunks = [];
    private long _sequence;
    private long _lowSequence = -1;
    private long _lowChunk = -1;
    private bool _shapeChanged;

    /// <summary>Records the keys a delivered change touched.</summary>
    public void Record(uint xid, in Change<T> change)
    {
        _sequence++;
        if (_touches.Count >= maxChanges)
        {
            _overflowXids.Add(xid);
            return;
        }
        switch (change.Kind)
        {
            case ChangeKind.Truncate:
                _touches.Add(new Touch(xid, _sequence, default, IsTruncate: true, LacksColumns: false));
                break;
            default:
                if (change.New is not null)
                    _touches.Add(new Touch(xid, _sequence, change.New, IsTruncate: false, LacksColumns: !change.UnchangedToast.IsEmpty));
                // A key update (or delete) also clears the old key.
                if (change.Old is not null)
                    _touches.Add(new Touch(xid, _sequence, change.Old, IsTruncate: false, LacksColumns: false));
                break;
        }
    }

    /// <summary>The stream saw the table's shape change (a Relation message with other columns or types).</summary>
    public void OnShapeChanged()
    {
        if (_lowChunk >= 0)
            _shapeChanged = true;
    }

    /// <summary>The chunk read between the watermarks of <paramref name="chunk"/> (each window's id is new). With
    /// <paramref name="repairKeys"/> (a <see cref="ChunkOutcome.RepairKeys"/>), it is a chunk read again for the keys a
    /// window left without some of their columns: only those rows are kept. With <paramref name="asDeletes"/>, the rows
    /// are ones that left the table (<see cref="Checkpoints.JobState.DeletesFrom"/>), to be delivered as deletes.</summary>
    public void SetChunk(long chunk, List<T> rows, SnapshotVisibility visibility, object? repairKeys, bool asDeletes = false)
    {
        if (repairKeys is HashSet<T> keys)
            rows.RemoveAll(row => !keys.Contains(row));
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
        if (_lowChunk >= 0)
            throw new DBSyncException($"Snapshot of {T.TableInfo.DisplayName}: low watermark of chunk {chunk} arrived while chunk {_lowChunk} was still open.");
        _lowChunk = chunk;
        _lowSequence = _sequence;
    }

    /// <summary>The stream reached the high watermark of <paramref name="chunk"/>: the rows to emit as Read changes, and
    /// whether they are to be delivered as deletes, and what the coordinator must do before the chunk counts as delivered
    /// (the rows' count is not set yet).</summary>
    public (List<T> Rows, bool AsDeletes, ChunkOutcome Outcome) OnHigh(long chunk)
    {
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

        var stale = new HashSet<T>(KeyComparer<T>.Instance);
        HashSet<T>? lacking = null;
        HashSet<uint>? lackingXids = null;
        var truncated = false;
        foreach (var touch in _touches)
        {
            if (touch.Sequence <= _lowSequence && pending.Visibility.Sees(touch.Xid))
                continue; // older than the chunk: the chunk already reflects it
            if (touch.IsTruncate)
            {
                truncated = true;
                continue;
            }
            stale.Add(touch.Key!);
            if (touch.LacksColumns)
            {
                (lacking ??= new HashSet<T>(KeyComparer<T>.Instance)).Add(touch.Key!);
                (lackingXids ??= []).Add(touch.Xid);
            }
        }

        // Only changes the chunk's snapshot did not see can matter to a later chunk: visible ones stay visible.
        _touches.RemoveAll(t => pending.Visibility.Sees(t.Xid));
        _lowChunk = -1;
        if (_shapeChanged || _overflowXids.Count > 0)
        {
            // Read the chunk again (the same keys, when it was a repair) once every unrecorded transaction is visible.
            _shapeChanged = false;
            var overflow = _overflowXids.ToArray();
            _overflowXids.Clear();
            return ([], false, new ChunkOutcome(0, ChunkFollowUp.ReadAgain, overflow, null));
        }
        if (truncated)
        {
            // Every row of the chunk is gone; whatever came after the truncate arrived whole (inserts carry every column).
            return ([], false, ChunkOutcome.Delivered(0));
        }

        HashSet<T>? repair = null;
        if (lacking is not null && !pending.AsDeletes) // a delete needs no column the update left out
        {
            // Rows dropped for a change that did not carry all their columns: read their keys again once it is visible.
            foreach (var row in pending.Rows)
            {
                if (lacking.Contains(row))
                    (repair ??= new HashSet<T>(KeyComparer<T>.Instance)).Add(row);
            }
        }
        pending.Rows.RemoveAll(stale.Contains);
        return (pending.Rows, pending.AsDeletes, repair is null ? ChunkOutcome.Delivered(0) : new ChunkOutcome(0, ChunkFollowUp.Repair, [.. lackingXids!], repair));
    }

    private readonly record struct Touch(uint Xid, long Sequence, T? Key, bool IsTruncate, bool LacksColumns);

    private sealed record PendingChunk(long Chunk, List<T> Rows, SnapshotVisibility Visibility, bool AsDeletes);
}

/// <summary>What a chunk's high watermark leaves to do before the chunk counts as delivered.</summary>
internal enum ChunkFollowUp
{
    /// <summary>Nothing: the chunk is delivered.</summary>
    None,

    /// <summary>The table's shape changed in the window, or the window could not record every change: read the chunk
    /// (or the keys being repaired) again, emitting nothing of this one.</summary>
    ReadAgain,

    /// <summary>Rows were emitted, but some keys were dropped for changes that left out TOAST columns: read those keys
    /// again once the changes are visible, so their consumers get every column.</summary>
    Repair,
}

/// <summary>How the stream closed a chunk's window: rows emitted, what is left to do, the transactions that must be
/// visible to new snapshots before the chunk is read again, and with <see cref="ChunkFollowUp.Repair"/> the keys to read
/// again (the table's own key set, handed back to <see cref="SnapshotWindow{T}.SetChunk"/> as it is).</summary>
internal readonly record struct ChunkOutcome(int Emitted, ChunkFollowUp FollowUp, uint[] WaitFor, object? RepairKeys)
{
    public static ChunkOutcome Delivered(int emitted) => new(emitted, ChunkFollowUp.None, [], null);
}
