namespace DBSync;

/// <summary>
/// Durable storage for a pipeline's checkpoint: snapshot progress (the queue of tables, the current table's last key and
/// maximum key, filters, pause state) together with the acknowledged LSN. DBSync writes the record after every snapshot
/// chunk and every change of the queue, and reads it when <see cref="DBSyncClient.RunAsync"/> starts, so a restart
/// continues a snapshot from its last completed chunk.
/// </summary>
/// <remarks>
/// The record is an opaque, versioned MessagePack document: a store only has to keep the latest bytes per slot. Saves
/// come one at a time from one client; a store must make each save atomic (all or nothing). Built in:
/// <see cref="PostgresCheckpointStore"/> (the default, a table in the source database) and <see cref="FileCheckpointStore"/>.
/// </remarks>
public interface ICheckpointStore
{
    /// <summary>Returns the last record saved for <paramref name="slotName"/>, or null when there is none.</summary>
    Task<byte[]?> LoadAsync(string slotName, CancellationToken cancellationToken);

    /// <summary>Replaces the record of <paramref name="slotName"/> with <paramref name="checkpoint"/>, atomically.</summary>
    Task SaveAsync(string slotName, ReadOnlyMemory<byte> checkpoint, CancellationToken cancellationToken);
}

/// <summary>
/// A store whose saves can be fenced by the replication slot: the save writes only while the slot's active walsender is
/// <c>walSenderPid</c>, in the same statement, so an instance deposed by another cannot overwrite the other's checkpoint.
/// The default <see cref="PostgresCheckpointStore"/> is one (the checkpoint lives in the slot's database).
/// </summary>
internal interface IFencedCheckpointStore
{
    /// <summary>Saves as <see cref="ICheckpointStore.SaveAsync"/> does if <paramref name="walSenderPid"/> streams from
    /// <paramref name="slotName"/> now; false, writing nothing, otherwise.</summary>
    Task<bool> SaveWhileHoldingAsync(string slotName, ReadOnlyMemory<byte> checkpoint, int walSenderPid, CancellationToken cancellationToken);

    /// <summary>Whether <paramref name="walSenderPid"/> lost <paramref name="slotName"/> to another walsender: another one
    /// streams from it now, and this one is gone (not a walsender that has yet to take the slot).</summary>
    Task<bool> DeposedAsync(string slotName, int walSenderPid, CancellationToken cancellationToken);
}
