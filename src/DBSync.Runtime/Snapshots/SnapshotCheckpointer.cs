using DBSync.Checkpoints;
using DBSync.Internal;
using DBSync.Replication;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// Keeps the snapshot queue in the checkpoint store: loads it when a run starts, replaces an earlier slot's, and saves it
/// after every chunk and every change of the queue, one save at a time, so a restart continues after the last completed
/// chunk.
/// </summary>
/// <remarks>While the stream runs, a save into the default store is fenced by the slot: it writes only while this
/// session's walsender is the slot's active one (<see cref="IFencedCheckpointStore"/>), so an instance another one
/// deposed (its walsender gone, though it has not noticed yet) cannot overwrite the checkpoint the new one writes. While
/// no stream runs (starting, reconnecting, standing by) the queue's changes wait, unsaved, for the next stream: an
/// instance that does not hold the slot writes nothing. Only the queue of a slot about to be created is saved before.
/// A save the fence refused tells <c>slotNotHeld</c> which walsender it was fenced by: the stream of that walsender is
/// over, though a silent network may not show it for a while, and it ends now (the run then stands by).</remarks>
internal sealed class SnapshotCheckpointer(DBSyncOptions options, ICheckpointStore store, SnapshotQueue queue, Func<ulong> confirmedLsn, ILogger logger,
    Func<int?>? streamingPid = null, Action<int, Exception>? slotNotHeld = null)
{
    private readonly SemaphoreSlim _saveGate = new(1, 1);

    /// <summary>The slot is about to be created: any checkpoint belongs to an earlier slot and is replaced. With
    /// <see cref="DBSyncOptions.InitialSnapshot"/>, every registered table is queued, and the queue is saved before the
    /// slot exists, so a crash in between cannot lose the initial snapshot. A checkpoint that shows the earlier slot had
    /// existed (a position saved when it was created, or while it streamed), or an earlier slot <paramref name="lostReason"/> says was lost, means
    /// changes were missed: refused with a <see cref="SlotLostException"/> unless <see cref="DBSyncOptions.WhenSlotLost"/>
    /// is <see cref="SlotLost.StartOver"/>, which snapshots every table and tells the progress handlers.</summary>
    /// <param name="lostReason">Why the slot that existed is being replaced (invalidated), or null when there is none.</param>
    /// <param name="cancellationToken">Cancels the load and save.</param>
    public async Task PrepareNewSlotAsync(string? lostReason, CancellationToken cancellationToken)
    {
        var stale = await store.LoadAsync(options.SlotName, cancellationToken).ConfigureAwait(false);
        var streamedUpTo = stale is null ? 0 : StreamedPosition(stale);
        if (streamedUpTo != 0 || lostReason is not null)
        {
            var lsn = new NpgsqlTypes.NpgsqlLogSequenceNumber(streamedUpTo).ToString();
            var reason = lostReason ?? "it no longer exists: it was dropped, or the server failed over to a standby that had no synchronized copy of it";
            if (options.WhenSlotLost != SlotLost.StartOver)
                throw SlotLoss.Refused(options.SlotName, lsn, reason);
            Log.SlotStartedOver(logger, options.SlotName, reason, lsn);
            queue.ResetForNewSlot(initialSnapshot: true, new SlotStartedOver(options.SlotName, lsn, reason));
        }
        else
        {
            if (stale is not null)
                Log.CheckpointDiscarded(logger, options.SlotName);
            queue.ResetForNewSlot(options.InitialSnapshot);
        }
        if (stale is not null || queue.Count > 0)
            await SaveAsync(cancellationToken, beforeSlot: true).ConfigureAwait(false);
    }

    /// <summary>The slot was created at <paramref name="position"/>: the checkpoint records it at once (no walsender holds
    /// the slot yet, so the save is not fenced; only the instance that created the slot gets here). From then on the
    /// checkpoint shows the slot existed and streamed, and a later run that finds it gone knows changes were missed.</summary>
    /// <remarks>Best effort: a store that cannot be written (a role without CREATE for the default table, say) is logged
    /// (event 4003) and the run goes on; without the record, a later run cannot tell a lost slot from a new pipeline.</remarks>
    public async Task RecordSlotCreatedAsync(ulong position, CancellationToken cancellationToken)
    {
        queue.MarkUnsaved();
        try
        {
            await SaveIfUnsavedAsync(cancellationToken, beforeSlot: true, position).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not OperationCanceledException)
        {
            Log.CheckpointSaveFailed(logger, e, options.SlotName);
        }
    }

    /// <summary>The position a checkpoint was saved at (the slot's start when it was created, or a confirmed position
    /// since); 0 for one saved before its slot existed, or one this version cannot read (it is replaced as before).</summary>
    private ulong StreamedPosition(byte[] bytes)
    {
        try
        {
            return Checkpoint.Deserialize(bytes, $"of slot \"{options.SlotName}\"").ConfirmedLsn;
        }
        catch (DBSyncException)
        {
            return 0;
        }
    }

    /// <summary>The slot exists: continue from its checkpoint (snapshots in progress first, then new requests). With
    /// <paramref name="takingOver"/>, the slot was another instance's until now: its checkpoint replaces what this one loaded.</summary>
    public async Task LoadAsync(CancellationToken cancellationToken, bool takingOver = false)
    {
        var bytes = await store.LoadAsync(options.SlotName, cancellationToken).ConfigureAwait(false);
        if (bytes is null)
            return;
        var checkpoint = Checkpoint.Deserialize(bytes, $"of slot \"{options.SlotName}\"");
        if (checkpoint.Slot != options.SlotName)
        {
            throw new DBSyncConfigurationException(
                $"The checkpoint store returned a checkpoint of slot \"{checkpoint.Slot}\" for slot \"{options.SlotName}\". Give each slot its own store or file.");
        }
        queue.Restore(checkpoint, takingOver);
        // Taking over, the load is said by the take-over's own line (2031): a standby that loses the race for the slot
        // again and again stays quiet.
        if (!takingOver)
            Log.CheckpointLoaded(logger, options.SlotName, checkpoint.Jobs.Count, new NpgsqlTypes.NpgsqlLogSequenceNumber(checkpoint.ConfirmedLsn).ToString());
    }

    /// <summary>Saves the queue now (a signal's effect must be durable before its transaction is acknowledged, a chunk's
    /// progress before the next chunk).</summary>
    public async Task SaveAsync(CancellationToken cancellationToken, bool beforeSlot = false)
    {
        queue.MarkUnsaved();
        await SaveIfUnsavedAsync(cancellationToken, beforeSlot).ConfigureAwait(false);
    }

    /// <summary>Saves the queue if it changed since the last save that got through; a failed save leaves it unsaved. Into
    /// the default store, only while the stream runs (see the class's remarks), unless <paramref name="beforeSlot"/>.</summary>
    /// <param name="cancellationToken">Cancels the save.</param>
    /// <param name="beforeSlot">Not fenced: the slot is being created.</param>
    /// <param name="position">The position to record, instead of the confirmed one (the new slot's start).</param>
    public async Task SaveIfUnsavedAsync(CancellationToken cancellationToken, bool beforeSlot = false, ulong? position = null)
    {
        await _saveGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Fenced: the default store, once the slot exists. The walsender of the stream running now, if any.
            var fenced = beforeSlot || streamingPid is null ? null : store as IFencedCheckpointStore;
            var pid = fenced is null ? null : streamingPid!();
            if (fenced is not null && pid is null)
                return; // saved by the next stream
            if (queue.TakeUnsaved(options.SlotName, position is { } at ? () => at : confirmedLsn, out var saved) is not { } checkpoint)
                return;
            try
            {
                if (fenced is null)
                    await store.SaveAsync(options.SlotName, checkpoint.Serialize(), cancellationToken).ConfigureAwait(false);
                else if (!await fenced.SaveWhileHoldingAsync(options.SlotName, checkpoint.Serialize(), pid!.Value, cancellationToken).ConfigureAwait(false))
                {
                    queue.MarkUnsaved();
                    if (streamingPid!() != pid)
                        return; // the stream ended meanwhile: saved by the next one
                    // Deposed only when another walsender holds the slot and this one is gone. Else this one has not taken
                    // the slot yet (Npgsql's connection starts the stream with its first read, which then finds out who
                    // holds it), or another instance is taking over: tried again.
                    if (!await fenced.DeposedAsync(options.SlotName, pid.Value, cancellationToken).ConfigureAwait(false))
                        throw new SlotNotHeldException(options.SlotName, pid.Value, takenOver: false);
                    var refused = new SlotNotHeldException(options.SlotName, pid.Value);
                    slotNotHeld?.Invoke(pid.Value, refused);
                    throw refused;
                }
            }
            catch
            {
                queue.MarkUnsaved();
                throw;
            }
            queue.MarkSaved(saved);
        }
        finally
        {
            _saveGate.Release();
        }
    }

    /// <summary>The run ended: close what the default store keeps open (it reopens on the next save).</summary>
    public async Task ReleaseAsync()
    {
        if (options.CheckpointStore is null && store is IAsyncDisposable disposable)
            await disposable.DisposeAsync().ConfigureAwait(false);
    }
}
