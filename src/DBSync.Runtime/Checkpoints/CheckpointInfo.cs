using DBSync.Checkpoints;
using MessagePack;
using NpgsqlTypes;

namespace DBSync;

/// <summary>
/// A pipeline's checkpoint read back for inspection: the snapshot queue with each table's progress, the pause state, the
/// last signal acted on, and how the last snapshots ended. DBSync saves the checkpoint after every snapshot chunk and
/// every change of the queue, so another process (the <c>dbsync</c> CLI, a health check) can follow a snapshot by
/// reading it from the <see cref="ICheckpointStore"/>.
/// </summary>
/// <example>
/// <code>
/// var checkpoint = await CheckpointInfo.LoadAsync(new PostgresCheckpointStore(connectionString), "app_sync");
/// if (checkpoint?.Current is { } current)
///     Console.WriteLine($"{current.Table}: {current.RowsRead} rows in {current.Chunks} chunks");
/// </code>
/// </example>
public sealed class CheckpointInfo
{
    private CheckpointInfo(Checkpoint checkpoint)
    {
        Slot = checkpoint.Slot;
        ConfirmedLsn = new NpgsqlLogSequenceNumber(checkpoint.ConfirmedLsn);
        SavedAt = checkpoint.SavedAt;
        Paused = checkpoint.Paused;
        LastSignalLsn = new NpgsqlLogSequenceNumber(checkpoint.LastSignalLsn);
        Queue = checkpoint.Jobs.Select(j => new SnapshotQueueEntry(j.DisplayName, j.Filter, j.FilterParameters, j.ChunkKey, j.Started,
            j.MaxKey, j.LastKey, j.Chunks, j.RowsRead, j.RowsEmitted, j.DeletesFrom)).ToList();
        Finished = checkpoint.Finished;
    }

    /// <summary>The slot the checkpoint belongs to.</summary>
    public string Slot { get; }

    /// <summary>The position confirmed to the server when the checkpoint was saved.</summary>
    public NpgsqlLogSequenceNumber ConfirmedLsn { get; }

    /// <summary>When the checkpoint was saved (UTC).</summary>
    public DateTime SavedAt { get; }

    /// <summary>Whether snapshots are paused (by <see cref="DBSyncClient.PauseSnapshots"/> or a <c>pause</c> signal).</summary>
    public bool Paused { get; }

    /// <summary>The commit position of the last signal-table transaction DBSync acted on (0/0 when none): a signal
    /// committed at or before it has taken effect in this checkpoint.</summary>
    public NpgsqlLogSequenceNumber LastSignalLsn { get; }

    /// <summary>The tables waiting to be snapshotted, in order; the first one is running (or paused) once
    /// <see cref="SnapshotQueueEntry.Started"/> is set.</summary>
    public IReadOnlyList<SnapshotQueueEntry> Queue { get; }

    /// <summary>The table being snapshotted (or paused in the middle), or null when none has started.</summary>
    public SnapshotQueueEntry? Current => Queue.FirstOrDefault(j => j.Started);

    /// <summary>How the last snapshots ended, oldest first (the most recent 32).</summary>
    public IReadOnlyList<FinishedSnapshot> Finished { get; }

    /// <summary>Reads a checkpoint record as an <see cref="ICheckpointStore"/> keeps it.</summary>
    /// <exception cref="DBSyncException">The bytes are not a checkpoint this version reads (damaged, or written by a newer DBSync).</exception>
    public static CheckpointInfo Parse(ReadOnlyMemory<byte> checkpoint) => new(Checkpoint.Deserialize(checkpoint, "record"));

    /// <summary>Loads the checkpoint of <paramref name="slotName"/> from <paramref name="store"/>; null when there is none.</summary>
    /// <exception cref="DBSyncException">The stored record cannot be read.</exception>
    public static async Task<CheckpointInfo?> LoadAsync(ICheckpointStore store, string slotName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentException.ThrowIfNullOrWhiteSpace(slotName);
        var bytes = await store.LoadAsync(slotName, cancellationToken).ConfigureAwait(false);
        return bytes is null ? null : new CheckpointInfo(Checkpoint.Deserialize(bytes, $"of slot \"{slotName}\""));
    }
}

/// <summary>One table in the snapshot queue of a <see cref="CheckpointInfo"/>.</summary>
/// <param name="Table">The table, <c>schema.name</c>.</param>
/// <param name="Filter">The snapshot's SQL condition, or null.</param>
/// <param name="FilterParameters">The values of the filter's <c>$n</c> placeholders.</param>
/// <param name="ChunkKey">The column the snapshot pages by instead of the primary key, or null.</param>
/// <param name="Started">Whether the table's snapshot has started (its <paramref name="MaxKey"/> is fixed).</param>
/// <param name="MaxKey">The largest chunk key when the snapshot started, as text; null before it starts or for an empty table.</param>
/// <param name="LastKey">The last key of the last completed chunk, as text; null before the first.</param>
/// <param name="Chunks">Chunks completed.</param>
/// <param name="RowsRead">Rows the chunk queries returned.</param>
/// <param name="RowsEmitted">Rows delivered as <see cref="ChangeKind.Read"/> changes (as deletes, with <paramref name="DeletesFrom"/>).</param>
/// <param name="DeletesFrom">Not a snapshot: the table (a detached partition) whose rows left <paramref name="Table"/>
/// without delete events, read to deliver them as deletes; null for a snapshot.</param>
public sealed record SnapshotQueueEntry(
    string Table, string? Filter, IReadOnlyList<string?> FilterParameters, string? ChunkKey, bool Started,
    IReadOnlyList<string>? MaxKey, IReadOnlyList<string>? LastKey, long Chunks, long RowsRead, long RowsEmitted, string? DeletesFrom = null)
{
    /// <summary>Prints keys and filter values as values (<c>MaxKey = 42</c>, <c>FilterParameters = ['1990-01-01']</c>).</summary>
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"Table = {Table}, Filter = {Filter}, FilterParameters = [{string.Join(", ", FilterParameters.Select(p => p is null ? "null" : KeyText.Format([p])))}], ChunkKey = {ChunkKey}, ");
        builder.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"Started = {Started}, MaxKey = {KeyText.Format(MaxKey)}, LastKey = {KeyText.Format(LastKey)}, Chunks = {Chunks}, RowsRead = {RowsRead}, RowsEmitted = {RowsEmitted}, DeletesFrom = {DeletesFrom}");
        return true;
    }
}

/// <summary>How a table's snapshot ended.</summary>
public enum SnapshotOutcome
{
    /// <summary>Every row was delivered.</summary>
    Completed,

    /// <summary>Cancelled (by <see cref="DBSyncClient.CancelSnapshots(string[])"/>, a <c>cancel</c> signal or the request's token).</summary>
    Cancelled,

    /// <summary>Not snapshotted: not mapped by a registered type, missing, or listed twice.</summary>
    Skipped,

    /// <summary>Failed: a bad filter or chunk key, a dropped table.</summary>
    Failed,
}

/// <summary>A snapshot that ended, as its <see cref="CheckpointInfo"/> remembers it.</summary>
/// <param name="Table">The table, <c>schema.name</c>.</param>
/// <param name="Outcome">How it ended.</param>
/// <param name="Chunks">Chunks completed.</param>
/// <param name="RowsRead">Rows the chunk queries returned.</param>
/// <param name="RowsEmitted">Rows delivered as <see cref="ChangeKind.Read"/> changes.</param>
/// <param name="FinishedAt">When it ended (UTC).</param>
/// <param name="Detail">Why it was skipped or failed; null otherwise.</param>
public sealed record FinishedSnapshot(string Table, SnapshotOutcome Outcome, long Chunks, long RowsRead, long RowsEmitted, DateTime FinishedAt, string? Detail)
{
    internal void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(7);
        writer.Write(Table);
        writer.Write((int)Outcome);
        writer.Write(Chunks);
        writer.Write(RowsRead);
        writer.Write(RowsEmitted);
        writer.Write(FinishedAt);
        writer.Write(Detail);
    }

    internal static FinishedSnapshot Read(ref MessagePackReader reader)
    {
        var fields = reader.ReadArrayHeader();
        var finished = new FinishedSnapshot(reader.ReadString() ?? "", (SnapshotOutcome)reader.ReadInt32(), reader.ReadInt64(), reader.ReadInt64(),
            reader.ReadInt64(), reader.ReadDateTime(), reader.ReadString());
        for (var i = 7; i < fields; i++)
            reader.Skip();
        return finished;
    }
}
