namespace DBSync.Snapshots;

/// <summary>
/// The DBLog windows of one table while its snapshot runs. The stream records every change it delivers for the table,
/// with its transaction id; at a chunk's high watermark the chunk drops every row whose key was changed after its own low
/// watermark, or by a transaction the chunk's snapshot does not see (it may have been delivered before the low watermark
/// yet be newer than the chunk: the commit-visibility race). What remains is emitted as Read changes.
/// </summary>
/// <remarks>
/// <para>Recording and the watermarks run on the stream's thread; the chunks arrive from the readers' threads, each before
/// its high watermark is written, so it is in hand when the stream reaches it. Several chunks can be open at once (read in
/// parallel, <see cref="DBSyncOptions.SnapshotParallelism"/>): their windows overlap in the stream, and each chunk is
/// reconciled against exactly the changes between its own watermarks and those its own snapshot does not see. Only the
/// chunks are shared between the threads (under a lock); everything else the stream's thread alone touches, and what a
/// reader must know it gets in the <see cref="ChunkOutcome"/> of its high watermark.</para>
/// <para>A change is forgotten once no chunk can need it: every open window's low watermark came after it and every open
/// chunk's snapshot sees it. A chunk whose low watermark comes later in the stream than the high watermark being passed
/// was read after that high watermark was written, so with a snapshot that sees at least as much.</para>
/// <para>"The stream's change is at least as new as the chunk's row" holds for the columns the change carries. An update
/// that left an out-of-line TOAST value unchanged does not carry it, so a consumer whose first sight of the row was that
/// update would never get the value. Such a row is not dropped: its state at the high watermark is rebuilt from the
/// chunk's row and the changes its snapshot did not see, in stream order (each taking the values it carries, the
/// unchanged ones from the state before it), and emitted whole. A key update moves that state to the new key; a delete
/// ends it.</para>
/// <para>At most <c>maxChanges</c> changes are kept. Past that (one huge transaction on the table while a chunk is in
/// its window) only the transaction ids are kept: a chunk that needed one of them is read again once those transactions
/// are visible to new snapshots, and from then on any chunk reflects them, so their changes are not needed.</para>
/// </remarks>
internal sealed class SnapshotWindow<T>(int maxChanges, long firstWindow = 1) where T : ISyncTable<T>
{
    private readonly List<Touch> _touches = [];
    // Transactions whose changes were not kept (the window was full), with the sequence of the last one not kept.
    private readonly Dictionary<uint, long> _lost = [];
    private readonly object _chunkLock = new();
    private readonly Dictionary<long, PendingChunk> _chunks = [];
    // Windows whose low watermark the stream passed and whose high one it did not, with where the low one was.
    private readonly Dictionary<long, OpenWindow> _open = [];
    private long _sequence;

    /// <summary>Records a delivered change of the table.</summary>
    public void Record(uint xid, in Change<T> change)
    {
        _sequence++;
        if (_touches.Count >= maxChanges)
        {
            _lost[xid] = _sequence;
            return;
        }
        _touches.Add(change.Kind == ChangeKind.Truncate
            ? new Touch(xid, _sequence, default, default, ColumnSet.Empty, IsTruncate: true)
            : new Touch(xid, _sequence, change.New, change.Old, change.UnchangedToast, IsTruncate: false));
    }

    /// <summary>The stream saw the table's shape change (a Relation message with other columns or types): every open
    /// window's chunk is read again.</summary>
    public void OnShapeChanged()
    {
        foreach (var window in _open.Values)
            window.ShapeChanged = true;
    }

    /// <summary>The chunk read between the watermarks of <paramref name="chunk"/> (each window's id is new). With
    /// <paramref name="asDeletes"/>, the rows are ones that left the table (<see cref="Checkpoints.JobState.DeletesFrom"/>),
    /// to be delivered as deletes.</summary>
    public void SetChunk(long chunk, List<T> rows, SnapshotVisibility visibility, bool asDeletes = false)
    {
        lock (_chunkLock)
            _chunks[chunk] = new PendingChunk(chunk, rows, visibility, asDeletes);
    }

    /// <summary>Empties the rows of <paramref name="chunk"/>, read but given up (the chunk before it is read again): its
    /// window still closes at its high watermark, and emits nothing.</summary>
    public void Discard(long chunk)
    {
        lock (_chunkLock)
        {
            if (_chunks.TryGetValue(chunk, out var pending))
                _chunks[chunk] = pending with { Rows = [] };
        }
    }

    /// <summary>The stream reached the low watermark of <paramref name="chunk"/>.</summary>
    public void OnLow(long chunk)
    {
        if (chunk < firstWindow)
            return; // a watermark written before this snapshot began (the stream may hand it over just as it begins)
        if (!_open.TryAdd(chunk, new OpenWindow(_sequence)))
            throw new DBSyncException($"Snapshot of {T.TableInfo.DisplayName}: low watermark of chunk {chunk} arrived twice.");
    }

    /// <summary>The stream reached the high watermark of <paramref name="chunk"/>: the rows to emit, whether they are to be
    /// delivered as deletes, and what the reader must do before the chunk counts as delivered (the rows' count is not
    /// set yet).</summary>
    public (List<T> Rows, bool AsDeletes, ChunkOutcome Outcome) OnHigh(long chunk)
    {
        if (chunk < firstWindow)
            return ([], false, ChunkOutcome.Delivered(0)); // stale, as in OnLow
        if (!_open.Remove(chunk, out var window))
        {
            throw new DBSyncException($"Snapshot of {T.TableInfo.DisplayName}: high watermark of chunk {chunk} arrived without its low watermark " +
                $"(open: {(_open.Count == 0 ? "none" : string.Join(", ", _open.Keys))}).");
        }
        PendingChunk pending;
        lock (_chunkLock)
        {
            if (!_chunks.Remove(chunk, out pending!))
                throw new DBSyncException($"Snapshot of {T.TableInfo.DisplayName}: the stream reached the high watermark of chunk {chunk} before its rows were read.");
        }

        var lost = LostFor(pending.Visibility, window.LowSequence);
        var outcome = window.ShapeChanged || lost.Length > 0
            ? new ChunkOutcome(0, ChunkFollowUp.ReadAgain, lost) // read the chunk again once every transaction it could not see the changes of is visible
            : ChunkOutcome.Delivered(0);
        var rows = outcome.FollowUp == ChunkFollowUp.None ? Close(pending, window.LowSequence) : [];
        Forget(pending.Visibility);
        return (rows, pending.AsDeletes, outcome);
    }

    /// <summary>The transactions whose changes were not kept and that the chunk (low watermark at
    /// <paramref name="lowSequence"/>, read with <paramref name="visibility"/>) would have needed.</summary>
    private uint[] LostFor(SnapshotVisibility visibility, long lowSequence)
    {
        if (_lost.Count == 0)
            return [];
        var lost = new List<uint>();
        foreach (var (xid, sequence) in _lost)
        {
            if (sequence > lowSequence || !visibility.Sees(xid))
                lost.Add(xid);
        }
        return [.. lost];
    }

    /// <summary>Drops what no chunk can need any more (see the remarks): the chunk just closed, read with
    /// <paramref name="closed"/>, and those still open all saw it, before their windows.</summary>
    private void Forget(SnapshotVisibility closed)
    {
        var oldestLow = long.MaxValue;
        var visibilities = new List<SnapshotVisibility>(_open.Count + 1) { closed };
        lock (_chunkLock)
        {
            foreach (var (id, open) in _open)
            {
                if (!_chunks.TryGetValue(id, out var pending))
                    return; // a chunk still being read: its snapshot is not known yet (a later high watermark forgets)
                visibilities.Add(pending.Visibility);
                oldestLow = Math.Min(oldestLow, open.LowSequence);
            }
        }
        bool Needed(uint xid, long sequence)
        {
            if (sequence > oldestLow)
                return true;
            foreach (var visibility in visibilities)
            {
                if (!visibility.Sees(xid))
                    return true;
            }
            return false;
        }
        _touches.RemoveAll(t => !Needed(t.Xid, t.Sequence));
        foreach (var (xid, sequence) in _lost)
        {
            if (!Needed(xid, sequence))
                _lost.Remove(xid);
        }
    }

    /// <summary>The chunk's rows as of its high watermark: those no change touched after the low watermark or unseen by
    /// the chunk's snapshot, and those whose changes left columns out, completed (see the remarks).</summary>
    private List<T> Close(PendingChunk pending, long lowSequence)
    {
        var visibility = pending.Visibility;
        var stale = new HashSet<T>(KeyComparer<T>.Instance);
        HashSet<T>? lacking = null;
        foreach (var touch in _touches)
        {
            if (touch.Sequence <= lowSequence && visibility.Sees(touch.Xid))
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

    /// <summary>A window the stream is inside: where its low watermark was, and whether the table's shape changed since.</summary>
    private sealed class OpenWindow(long lowSequence)
    {
        public long LowSequence { get; } = lowSequence;

        public bool ShapeChanged { get; set; }
    }
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
