using DBSync.Checkpoints;
using DBSync.Mapping;

namespace DBSync.Snapshots;

/// <summary>
/// The SQL a snapshot runs, on one connection of its own: watermarks, chunks with the MVCC snapshot they were read with,
/// and the checks around them. The pieces of <c>Snapshots/</c> talk to the database only through it, so they can be
/// driven without a server; <see cref="NpgsqlSnapshotSql"/> is the real one.
/// </summary>
internal interface ISnapshotSql : IAsyncDisposable
{
    /// <summary>Writes <paramref name="watermark"/> into the WAL as this pipeline's transactional logical message.</summary>
    Task EmitAsync(Watermark watermark, CancellationToken cancellationToken);

    /// <summary>Which transactions a snapshot taken now sees (<c>pg_current_snapshot()</c>).</summary>
    Task<SnapshotVisibility> CurrentSnapshotAsync(CancellationToken cancellationToken);

    /// <summary>Checks the table, chunk key and filter of <paramref name="job"/> and fixes the maximum key (or takes the
    /// one fixed when the job first started).</summary>
    /// <exception cref="SnapshotTableMissingException">The table does not exist.</exception>
    /// <exception cref="DBSyncException">The chunk key or the filter is not usable; the message says why.</exception>
    Task<SnapshotQuery> PrepareQueryAsync(SyncTableInfo table, JobState job, CancellationToken cancellationToken);

    /// <summary>The server's row estimate for the table (<c>pg_class.reltuples</c>; -1 before its first VACUUM or ANALYZE).</summary>
    Task<long> EstimateRowsAsync(SyncTableInfo table, CancellationToken cancellationToken);

    /// <summary>Reads chunk number <paramref name="chunk"/> of <paramref name="query"/>: at most <paramref name="size"/> rows
    /// after key <paramref name="after"/> (from the start when null), in one read-only REPEATABLE READ transaction, with
    /// the snapshot it read them with.</summary>
    Task<SnapshotChunk<T>> ReadChunkAsync<T>(SnapshotQuery query, long chunk, IReadOnlyList<string>? after, int size, PgTypeCatalog types,
        CancellationToken cancellationToken) where T : ISyncTable<T>;

    /// <summary>The chunk keys (as text, in key order, none above the maximum key) of about <paramref name="pages"/> pages of
    /// the table taken at random, to split its key range for parallel reads (<see cref="SegmentSplit"/>).</summary>
    Task<IReadOnlyList<string[]>> SampleKeysAsync(SnapshotQuery query, int pages, CancellationToken cancellationToken);

    /// <summary>The workload of this database beside DBSync: its sessions and how many transactions it ended so far
    /// (<see cref="SnapshotThrottle"/> measures the snapshot's effect on it).</summary>
    Task<WorkloadSample> SampleWorkloadAsync(CancellationToken cancellationToken);

    /// <summary>Whether a table named <paramref name="schema"/>.<paramref name="name"/> exists.</summary>
    Task<bool> TableExistsAsync(string schema, string name, CancellationToken cancellationToken);

    /// <summary>The database's name, for messages.</summary>
    string Database { get; }
}
