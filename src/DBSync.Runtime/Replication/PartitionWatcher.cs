using DBSync.Checkpoints;
using DBSync.Internal;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Replication;

/// <summary>
/// Follows the partitions of the mapped partitioned tables, which PostgreSQL changes without any change event: a table
/// attached with rows brings them into the partitioned table, a partition detached or dropped takes its rows out, and a
/// TRUNCATE of one partition is not published under <c>publish_via_partition_root</c>. Every <see cref="DBSyncOptions.StatusInterval"/>
/// (and when a stream session starts) it reads the partition trees on an ordinary connection and compares them with the
/// last reading: a partition that appeared with rows gets a snapshot of the table restricted to it (its rows arrive as
/// Read), one detached with its rows gets a job that delivers them as deletes, and one dropped or truncated is logged as
/// a warning. Each is also raised as <see cref="Changed"/>. What it reads comes from <see cref="PartitionCatalog"/>.
/// It also answers the stream's question of which mapped table an unmapped relation belongs to.
/// </summary>
/// <remarks>
/// The readings live as long as the client, so a partition attached while the stream reconnects is still noticed, and
/// each is recorded in the checkpoint, so that what changed while no instance streamed is noticed by the next run's first
/// reading, or the first of the instance that takes over (a checkpoint of an older DBSync has none: then it is not,
/// docs/limits.md). A partition's storage is replaced by a TRUNCATE of the table as
/// a whole too, which is published: such a replacement is judged only once the stream has passed the reading that saw it,
/// and ignored when a truncate of the table (or of the partition, under a publication that sends partitions) was
/// delivered in between.
/// </remarks>
internal sealed class PartitionWatcher : IPartitionTracker
{
    private readonly DBSyncOptions _options;
    private readonly PartitionCatalog _catalog;
    private readonly ConnectionPool _connections;
    private readonly Func<IEnumerable<SnapshotTable>, CancellationToken, Task> _requestSnapshot;
    private readonly Action<SyncTableInfo, string> _requestDeletes;
    private readonly Func<IReadOnlyList<SavedPartition>?> _takeRestored;
    private readonly Action<IReadOnlyList<SavedPartition>> _record;
    private readonly IReadOnlyDictionary<(string Schema, string Name), TableRegistration> _tables;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly Dictionary<string, List<ulong>> _truncates = [];
    private readonly List<Pending> _pending = [];
    private readonly HashSet<uint> _foreignWarned = [];
    private Dictionary<uint, Partition>? _known;
    private ulong _lastStart;

    /// <param name="options">The reading interval (<see cref="DBSyncOptions.StatusInterval"/>).</param>
    /// <param name="connections">Ordinary connections to the source.</param>
    /// <param name="tables">The mapped tables.</param>
    /// <param name="requestSnapshot">Queues the snapshot of a partition attached with rows.</param>
    /// <param name="requestDeletes">Queues the deletes of the rows of a partition detached with them.</param>
    /// <param name="takeRestored">The partitions the loaded checkpoint recorded, once after each load (null otherwise):
    /// the next reading is compared with them, so what changed while no instance streamed is seen.</param>
    /// <param name="record">Records each reading in the checkpoint.</param>
    /// <param name="logger">Reports what changed.</param>
    public PartitionWatcher(DBSyncOptions options, ConnectionPool connections, IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables,
        Func<IEnumerable<SnapshotTable>, CancellationToken, Task> requestSnapshot, Action<SyncTableInfo, string> requestDeletes,
        Func<IReadOnlyList<SavedPartition>?> takeRestored, Action<IReadOnlyList<SavedPartition>> record, ILogger logger)
    {
        _options = options;
        _connections = connections;
        _tables = tables;
        _catalog = new PartitionCatalog(tables);
        _requestSnapshot = requestSnapshot;
        _requestDeletes = requestDeletes;
        _takeRestored = takeRestored;
        _record = record;
        _logger = logger;
    }

    /// <summary>
    /// Raised for every partition change seen, after it was logged (and, for an attached partition with rows, after its
    /// snapshot was queued), on the watcher's task or, for a partition's TRUNCATE that the stream carries, on the stream's
    /// thread. Handlers must be quick and must not throw.
    /// </summary>
    public event Action<PartitionChange>? Changed;

    /// <summary>
    /// Takes a reading of the partition trees now (so that whatever changes after the stream started is seen), then keeps
    /// reading every <see cref="DBSyncOptions.StatusInterval"/> until cancelled. <paramref name="handledLsn"/> is how far the
    /// stream has delivered. Returns once the first reading is done (a failed one is logged and tried again), with the task
    /// of the readings to come.
    /// </summary>
    public async Task<Task> StartAsync(Func<ulong> handledLsn, CancellationToken cancellationToken)
    {
        var reader = new Reader(this, handledLsn);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            await reader.DisposeAsync().ConfigureAwait(false);
            return Task.CompletedTask;
        }
        return KeepReadingAsync(reader, cancellationToken);
    }

    private async Task KeepReadingAsync(Reader reader, CancellationToken cancellationToken)
    {
        await using (reader.ConfigureAwait(false))
        {
            using var timer = new PeriodicTimer(_options.StatusInterval);
            try
            {
                while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false) && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                }
            }
            catch (OperationCanceledException)
            {
                // The session is ending.
            }
        }
    }

    /// <summary>A truncate of <paramref name="table"/> (a mapped table, or a partition's <c>schema.name</c>) was delivered
    /// or reported by the stream, in the transaction that committed at <paramref name="commitLsn"/>.</summary>
    public void OnTruncated(string table, ulong commitLsn)
    {
        lock (_lock)
        {
            if (!_truncates.TryGetValue(table, out var positions))
                _truncates[table] = positions = [];
            positions.Add(commitLsn);
        }
    }

    /// <summary>Which mapped table the relation <paramref name="relationId"/> belongs to, through partitioning; null when
    /// none. A lost connection ends the stream's session, which asks.</summary>
    public async Task<PartitionOwner?> FindOwnerAsync(uint relationId, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
            return await _catalog.FindOwnerAsync(connection, relationId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (ConnectionLoss.Is(e) && !cancellationToken.IsCancellationRequested)
        {
            throw new StreamInterruptedException(e);
        }
    }

    /// <summary>Whether <paramref name="partitions"/> (oids) are every partition of <paramref name="table"/> the last
    /// reading knew: a TRUNCATE of the table as a whole, sent under its partitions' names.</summary>
    public bool AreAllPartitionsOf(SyncTableInfo table, IReadOnlyCollection<uint> partitions)
    {
        lock (_lock)
        {
            if (_known is null)
                return false;
            var all = _known.Where(p => ReferenceEquals(p.Value.Table, table)).Select(p => p.Key).ToHashSet();
            return all.Count > 0 && all.SetEquals(partitions);
        }
    }

    /// <summary>The stream carried a TRUNCATE of one partition of <paramref name="table"/> under the partition's own name
    /// (a publication that sends partitions): it is not a truncate of the table, and is reported instead of delivered.</summary>
    public void OnPartitionTruncated(SyncTableInfo table, uint oid, string partition, ulong lsn)
    {
        OnTruncated(partition, lsn);
        Partition? known;
        lock (_lock)
            known = _known?.GetValueOrDefault(oid);
        Log.PartitionTruncateNotDelivered(_logger, partition, known?.Bound ?? "?", table.DisplayName, new NpgsqlTypes.NpgsqlLogSequenceNumber(lsn).ToString());
        Changed?.Invoke(new PartitionChange(PartitionChangeKind.Truncated, table, oid, partition, known?.Qualified ?? partition, known?.Bound, null, true, lsn));
    }

    private static async Task<ulong> WalPositionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
        => await ServerWal.PositionAsync(connection, cancellationToken).ConfigureAwait(false)
           ?? throw new InvalidOperationException("The server reports no WAL position (a standby that has replayed nothing yet).");

    private async Task PollAsync(NpgsqlConnection connection, string[] roots, Func<ulong> handledLsn, CancellationToken cancellationToken)
    {
        // The WAL position before the reading bounds the truncates that can explain a replaced storage; the one after is
        // what the stream must pass before that is judged.
        var start = await WalPositionAsync(connection, cancellationToken).ConfigureAwait(false);
        var current = await _catalog.LeafPartitionsAsync(connection, roots, cancellationToken).ConfigureAwait(false);
        var end = await WalPositionAsync(connection, cancellationToken).ConfigureAwait(false);

        Dictionary<uint, Partition>? known;
        ulong previousStart;
        var restored = _takeRestored();
        lock (_lock)
        {
            // A checkpoint just loaded (the run's start, or a take-over) knows better than an earlier session of this
            // client: what changed since it was saved, while no instance streamed, is seen now.
            if (restored is not null)
                _known = FromSaved(restored);
            known = _known;
            previousStart = _lastStart;
        }

        foreach (var (oid, partition) in current)
        {
            if (partition.Kind == 'f' && _foreignWarned.Add(oid))
                Log.ForeignPartition(_logger, partition.Name, partition.Bound ?? "?", partition.Table.DisplayName);
            if (known is null)
                continue;
            if (!known.TryGetValue(oid, out var before) || !ReferenceEquals(before.Table, partition.Table))
                await OnAttachedAsync(connection, oid, partition, end, cancellationToken).ConfigureAwait(false);
            else if (before.FileNode != partition.FileNode && partition.Kind == 'r')
            {
                lock (_lock)
                    _pending.Add(new Pending(oid, partition, previousStart, end));
            }
        }
        if (known is not null)
        {
            foreach (var (oid, partition) in known)
            {
                if (!current.TryGetValue(oid, out var now) || !ReferenceEquals(now.Table, partition.Table))
                    await OnDetachedAsync(connection, oid, partition, end, cancellationToken).ConfigureAwait(false);
            }
        }

        lock (_lock)
        {
            _known = current;
            _lastStart = start;
        }
        // Recorded once what it found is queued (an attached partition's snapshot, a detached one's deletes), so that a
        // checkpoint holding this reading holds those too.
        _record([.. current.OrderBy(p => p.Key).Select(p => new SavedPartition(p.Key, p.Value.Table.Schema, p.Value.Table.Name, p.Value.Name,
            p.Value.Qualified, p.Value.Kind, p.Value.Bound, p.Value.FileNode))]);
        JudgeReplacedStorage(handledLsn());
    }

    /// <summary>The partitions a checkpoint recorded, of the tables still mapped.</summary>
    private Dictionary<uint, Partition> FromSaved(IReadOnlyList<SavedPartition> saved)
    {
        var known = new Dictionary<uint, Partition>();
        foreach (var partition in saved)
        {
            if (_tables.TryGetValue((partition.Schema, partition.Table), out var registration) && registration is not SignalRegistration)
                known[partition.Oid] = new Partition(registration.Table, partition.Qualified, partition.Name, partition.Kind, partition.Bound, null, partition.FileNode);
        }
        return known;
    }

    private async Task OnAttachedAsync(NpgsqlConnection connection, uint oid, Partition partition, ulong lsn, CancellationToken cancellationToken)
    {
        var hasRows = await PartitionCatalog.HasRowsAsync(connection, partition, cancellationToken).ConfigureAwait(false);
        if (hasRows)
        {
            // The same restriction serves the snapshot: its chunk queries then read the new partition only, by key.
            var snapshot = _requestSnapshot([new SnapshotTable(partition.Table.DisplayName) { Filter = partition.Constraint }], CancellationToken.None);
            _ = snapshot.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            Log.PartitionAttachedWithRows(_logger, partition.Name, partition.Bound ?? "?", partition.Table.DisplayName);
        }
        else
        {
            Log.PartitionAttached(_logger, partition.Name, partition.Bound ?? "?", partition.Table.DisplayName);
        }
        Changed?.Invoke(new PartitionChange(PartitionChangeKind.Attached, partition.Table, oid, partition.Name, partition.Qualified, partition.Bound, null, true, lsn));
    }

    private async Task OnDetachedAsync(NpgsqlConnection connection, uint oid, Partition partition, ulong lsn, CancellationToken cancellationToken)
    {
        var (qualified, rows) = await PartitionCatalog.DetachedAsync(connection, oid, cancellationToken).ConfigureAwait(false);
        if (qualified is not null && rows > 0)
        {
            // Its rows are still there to read: they are delivered as deletes of the table (those it does not have again).
            _requestDeletes(partition.Table, qualified);
            Log.PartitionDetachedWithRows(_logger, partition.Name, partition.Bound ?? "?", partition.Table.DisplayName,
                rows > PartitionCatalog.MaxCounted ? $"more than {PartitionCatalog.MaxCounted}" : rows.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            var what = qualified is null ? "was dropped" : "was detached";
            var described = qualified is null ? "its rows" : rows is { } n ? $"its {n} row(s)" : "its rows (not counted: the role cannot read it)";
            Log.PartitionDetached(_logger, partition.Name, partition.Bound ?? "?", partition.Table.DisplayName, what, described);
        }
        Changed?.Invoke(new PartitionChange(PartitionChangeKind.Detached, partition.Table, oid, partition.Name, qualified ?? partition.Qualified, partition.Bound,
            rows, qualified is not null, lsn));
    }

    /// <summary>A partition's storage was replaced: a published truncate of its table (or of it) explains it; anything
    /// else may be a TRUNCATE of the partition alone, whose removed rows no change event announced.</summary>
    private void JudgeReplacedStorage(ulong handled)
    {
        List<(Pending Pending, bool Explained)> judged = [];
        lock (_lock)
        {
            var waiting = new List<Pending>();
            foreach (var pending in _pending)
            {
                if (handled < pending.SeenBy)
                    waiting.Add(pending);
                else
                    judged.Add((pending, Explained(pending.Partition.Table.DisplayName, pending) || Explained(pending.Partition.Name, pending)));
            }
            _pending.Clear();
            _pending.AddRange(waiting);
            // A truncate at or before the start of the last reading can explain no later replacement (the next one found is
            // judged from that start on), nor one still to judge from a later start.
            var useless = _pending.Count == 0 ? _lastStart : Math.Min(_lastStart, _pending.Min(p => p.After));
            foreach (var positions in _truncates.Values)
                positions.RemoveAll(lsn => lsn <= useless);
        }
        foreach (var (pending, explained) in judged)
        {
            var partition = pending.Partition;
            if (explained)
            {
                Log.PartitionStorageReplacedByTruncate(_logger, partition.Name, partition.Table.DisplayName);
                continue;
            }
            Log.PartitionStorageReplaced(_logger, partition.Name, partition.Bound ?? "?", partition.Table.DisplayName);
            Changed?.Invoke(new PartitionChange(PartitionChangeKind.Truncated, partition.Table, pending.Oid, partition.Name, partition.Qualified, partition.Bound,
                null, true, pending.SeenBy));
        }
    }

    private bool Explained(string table, Pending pending)
        => _truncates.TryGetValue(table, out var positions) && positions.Any(lsn => lsn > pending.After && lsn <= pending.SeenBy);

    /// <summary>The readings of one stream session, on a connection of their own (opened again after a failure).</summary>
    private sealed class Reader(PartitionWatcher watcher, Func<ulong> handledLsn) : IAsyncDisposable
    {
        private NpgsqlConnection? _connection;
        private string[]? _roots;

        /// <summary>One reading; false when there is nothing to watch (no mapped table is partitioned).</summary>
        public async Task<bool> ReadAsync(CancellationToken cancellationToken)
        {
            try
            {
                _connection ??= await watcher._connections.OpenAsync(cancellationToken).ConfigureAwait(false);
                // A mapped table cannot become partitioned while it exists: one look per session is enough.
                _roots ??= await watcher._catalog.PartitionedRootsAsync(_connection, cancellationToken).ConfigureAwait(false);
                if (_roots.Length == 0)
                    return false;
                await watcher.PollAsync(_connection, _roots, handledLsn, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not OperationCanceledException)
            {
                Log.PartitionWatchFailed(watcher._logger, e, (long)watcher._options.StatusInterval.TotalMilliseconds);
                await DisposeAsync().ConfigureAwait(false);
            }
            return true;
        }

        public async ValueTask DisposeAsync()
        {
            if (_connection is not null)
                await _connection.DisposeAsync().ConfigureAwait(false);
            _connection = null;
        }
    }

    /// <summary>A replaced storage seen by the reading that ended at <paramref name="SeenBy"/>; the one before began at
    /// <paramref name="After"/>.</summary>
    private sealed record Pending(uint Oid, Partition Partition, ulong After, ulong SeenBy);
}
