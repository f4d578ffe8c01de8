namespace DBSync.Replication;

/// <summary>The words of a lost slot: what happened, what was delivered, and the ways to recover, in one place for the
/// stream (the slot vanishes while streaming) and the setup (a run finds it gone).</summary>
internal static class SlotLoss
{
    /// <summary>A run found the slot gone (or invalidated) while the checkpoint shows it had streamed, and
    /// <see cref="DBSyncOptions.WhenSlotLost"/> is <see cref="SlotLost.Fail"/>.</summary>
    public static SlotLostException Refused(string slot, string confirmedLsn, string reason)
        => new(slot, confirmedLsn,
            $"Replication slot \"{slot}\" cannot be continued: {reason}. This pipeline's checkpoint shows it had streamed from it " +
            $"(everything up to {confirmedLsn} was delivered), so a new slot, which starts at the current position, would miss the " +
            $"changes in between, deletes among them, which no snapshot can bring back. DBSync does not go on with that gap by itself. " +
            Recovery(slot));

    /// <summary>The slot vanished or was invalidated while streaming.</summary>
    public static SlotLostException WhileStreaming(string slot, string confirmedLsn, string what, Exception innerException)
        => new(slot, confirmedLsn,
            $"{what}. Every change up to {confirmedLsn} was delivered; changes after it may be lost. " + Recovery(slot) +
            " To prevent it, raise max_slot_wal_keep_size or keep the consumer running.", innerException);

    private static string Recovery(string slot)
        => $"To start over with a new slot and a full snapshot of every table, run once with DBSyncOptions.WhenSlotLost = SlotLost.StartOver " +
           $"(the progress handlers then receive SlotStartedOver: rows deleted in the gap are the ones the new snapshot does not deliver), " +
           $"or delete the pipeline's checkpoint (in the default store: DELETE FROM dbsync_checkpoint WHERE slot_name = '{slot}'; " +
           $"dbsync slot drop --slot {slot} --delete-checkpoint drops a slot that still exists with it) and run with DBSyncOptions.InitialSnapshot = true (the default). " +
           "If a standby was promoted, check that it kept a synchronized copy of the slot (DBSyncOptions.FailoverSlot, PostgreSQL 17 and later).";
}
