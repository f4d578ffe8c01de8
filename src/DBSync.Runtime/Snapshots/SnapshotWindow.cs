namespace DBSync.Snapshots;

/// <summary>
/// The DBLog window of one table while its snapshot runs. The stream records the key of every change it delivers for
/// the table, with its transaction id; at the high watermark the chunk drops every row whose key was changed after the
/// low watermark, or by a transaction the chunk's snapshot does not see (it may have been delivered before the low
/// watermark yet be newer than the chunk: the commit-visibility race). What remains is emitted as Read changes.
/// </summary>
/// <remarks>Recording and the watermarks run on the stream's thread; the chunk arrives from the coordinator's, always
/// before the high watermark is written, so it is in hand when the stream reaches it. The coordinator reads the next
/// chunk while the stream delivers the last one, so two chunks can be in hand at once; their windows never overlap in
/// the stream (the next low watermark is written after the last high one).</remarks>
/// <remarks>At most <c>maxChanges</c> touches are kept. Past that (one huge transaction on the table while a chunk is
/// in its window) only the transaction ids are kept: the chunk is read again once those transactions are visible to
/// new snapshots, and from then on any chunk reflects them, so their touches are not needed.</remarks>
internal sealed class SnapshotWindow<T>(int maxChanges) where T : ISyncTable<T>
{
    private readonly List<Touch> _touches = [];
    private readonly HashSet<uint> _overflowXids = [];
    private readonly object _chunkLock = new();
    private long _sequence;
    private long _lowSequence = -1;
    private long _lowChunk = -1;
    private readonly List<PendingChunk> _chunks = [];
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
                _touches.Add(new Touch(xid, _sequence, default, IsTruncate: true));
                break;
            default:
                if (change.New is not null)
                    _touches.Add(new Touch(xid, _sequence, change.New, IsTruncate: false));
                // A key update (or delete) also clears the old key.
                if (change.Old is not null)
                    _touches.Add(new Touch(xid, _sequence, change.Old, IsTruncate: false));
                break;
        }
    }

    /// <summary>After a high watermark that asked for the chunk to be read again: the transactions whose changes were not
    /// recorded because the window was full (empty when it was not). They must be visible before the chunk is read.</summary>
    public uint[] TakeOverflowXids()
    {
        var xids = _overflowXids.ToArray();
        _overflowXids.Clear();
        return xids;
    }

    /// <summary>The stream saw the table's shape change (a Relation message with other columns or types).</summary>
    public void OnShapeChanged()
    {
        if (_lowChunk >= 0)
            _shapeChanged = true;
    }

    /// <summary>The chunk read between the watermarks of <paramref name="chunk"/> (each window's id is new).</summary>
    public void SetChunk(long chunk, List<T> rows, SnapshotVisibility visibility)
    {
        lock (_chunkLock)
            _chunks.Add(new PendingChunk(chunk, rows, visibility));
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

    /// <summary>The stream reached the high watermark of <paramref name="chunk"/>: the rows to emit as Read changes, or
    /// null when the chunk must be read again: the table's shape changed inside the window, or more changes arrived than
    /// the window keeps (<see cref="TakeOverflowXids"/>).</summary>
    public List<T>? OnHigh(long chunk)
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
        var truncated = false;
        foreach (var touch in _touches)
        {
            if (touch.Sequence <= _lowSequence && pending.Visibility.Sees(touch.Xid))
                continue; // older than the chunk: the chunk already reflects it
            if (touch.IsTruncate)
                truncated = true;
            else
                stale.Add(touch.Key!);
        }

        // Only changes the chunk's snapshot did not see can matter to a later chunk: visible ones stay visible.
        _touches.RemoveAll(t => pending.Visibility.Sees(t.Xid));
        _lowChunk = -1;
        if (_shapeChanged || _overflowXids.Count > 0)
        {
            _shapeChanged = false;
            return null;
        }
        if (truncated)
            return [];
        pending.Rows.RemoveAll(stale.Contains);
        return pending.Rows;
    }

    private readonly record struct Touch(uint Xid, long Sequence, T? Key, bool IsTruncate);

    private sealed record PendingChunk(long Chunk, List<T> Rows, SnapshotVisibility Visibility);
}
