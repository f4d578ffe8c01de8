namespace DBSync.Replication;

/// <summary>What the stream asks and tells about partitions of mapped tables (<see cref="PartitionWatcher"/> answers).</summary>
internal interface IPartitionTracker
{
    /// <summary>Which mapped table the relation <paramref name="relationId"/> belongs to, through partitioning; null when
    /// none. A lost connection ends the session (<see cref="Internal.StreamInterruptedException"/>).</summary>
    Task<PartitionOwner?> FindOwnerAsync(uint relationId, CancellationToken cancellationToken);

    /// <summary>Whether <paramref name="partitions"/> (oids) are every partition of <paramref name="table"/> known.</summary>
    bool AreAllPartitionsOf(SyncTableInfo table, IReadOnlyCollection<uint> partitions);

    /// <summary>A truncate of <paramref name="table"/> (a mapped table's display name) was delivered, in the transaction
    /// that committed at <paramref name="commitLsn"/>.</summary>
    void OnTruncated(string table, ulong commitLsn);

    /// <summary>The stream carried a TRUNCATE of one partition of <paramref name="table"/> under the partition's own name:
    /// it is not a truncate of the table, and is reported instead of delivered.</summary>
    void OnPartitionTruncated(SyncTableInfo table, uint oid, string partition, ulong lsn);
}
