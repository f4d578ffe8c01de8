namespace DBSync.Replication;

/// <summary>What happened to a partition of a mapped partitioned table, as <see cref="PartitionWatcher"/> saw it.</summary>
internal enum PartitionChangeKind
{
    /// <summary>A partition appeared (created with <c>PARTITION OF</c>, or attached): rows it brought entered the table
    /// without change events.</summary>
    Attached,

    /// <summary>A partition left the table (detached, or dropped): its rows left the table without change events.
    /// <see cref="PartitionChange.Exists"/> says whether it still exists as a table of its own.</summary>
    Detached,

    /// <summary>A partition's rows were removed without delete events: a <c>TRUNCATE</c> of the partition alone, which
    /// PostgreSQL does not publish under <c>publish_via_partition_root</c> (or, seen from the catalog only, a rewrite of its
    /// storage: <c>VACUUM FULL</c>, <c>CLUSTER</c>, a rewriting <c>ALTER TABLE</c>).</summary>
    Truncated,
}

/// <summary>One partition change of a mapped partitioned table.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Table">The mapped partitioned table.</param>
/// <param name="PartitionOid">The partition's oid.</param>
/// <param name="Partition">The partition, <c>schema.name</c>.</param>
/// <param name="QualifiedPartition">The partition's quoted name, safe to splice into SQL.</param>
/// <param name="Bound">Its partition bound (<c>FOR VALUES FROM (...) TO (...)</c>, <c>DEFAULT</c>), when known.</param>
/// <param name="Rows">Rows it holds (a detached partition's), when counted: up to a million and one.</param>
/// <param name="Exists">Whether the partition still exists as a table.</param>
/// <param name="Lsn">A WAL position at or after the change: the change happened before it.</param>
internal sealed record PartitionChange(PartitionChangeKind Kind, SyncTableInfo Table, uint PartitionOid, string Partition, string QualifiedPartition,
    string? Bound, long? Rows, bool Exists, ulong Lsn);

/// <summary>How an unmapped relation of the stream relates to a mapped table.</summary>
/// <param name="Registration">The mapped table.</param>
/// <param name="IsPartition">True: the relation is a partition (at any depth) of the mapped table. False: the mapped table
/// is a partition of the relation.</param>
internal sealed record PartitionOwner(TableRegistration Registration, bool IsPartition);
