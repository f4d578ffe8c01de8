using System.Globalization;
using System.Text;

namespace DBSync;

/// <summary>
/// A snapshot progress notification. Handlers registered with <see cref="DBSyncClient.OnSnapshotProgress(Action{SnapshotProgress})"/> receive them
/// one at a time, in the order they happen; a chunk's notification comes after all of its rows were delivered.
/// </summary>
/// <param name="Table">The table (<c>schema.name</c>) the notification is about, or null for one about all snapshots.</param>
public abstract record SnapshotProgress(string? Table);

/// <summary>A table's snapshot started, or continued after a restart (<paramref name="Resumed"/>).</summary>
/// <param name="Table">The table.</param>
/// <param name="MaxKey">The largest chunk key when the snapshot started, as text; null for an empty table. Rows beyond it
/// arrive through the stream.</param>
/// <param name="Resumed">True when chunks of it were delivered before (in an earlier run, or before a pause or a lost
/// connection): it continues after the saved chunk that <paramref name="LastKey"/> ends. False when it reads the table from
/// its first key, which is reported again when a run stops before its first chunk is saved.</param>
/// <param name="LastKey">Where a resumed snapshot continues from; null for a fresh start.</param>
public sealed record SnapshotTableStarted(string Table, IReadOnlyList<string>? MaxKey, bool Resumed, IReadOnlyList<string>? LastKey) : SnapshotProgress(Table)
{
    /// <summary>Prints the keys as their values (<c>MaxKey = 42</c>, <c>LastKey = (7, 'r-003')</c>).</summary>
    protected override bool PrintMembers(StringBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        base.PrintMembers(builder);
        builder.Append(CultureInfo.InvariantCulture, $", MaxKey = {KeyText.Format(MaxKey)}, Resumed = {Resumed}, LastKey = {KeyText.Format(LastKey)}");
        return true;
    }
}

/// <summary>A chunk's rows were delivered.</summary>
/// <param name="Table">The table.</param>
/// <param name="Chunk">The chunk number in this table's snapshot (1-based; it continues across restarts).</param>
/// <param name="RowsRead">Rows the chunk query returned.</param>
/// <param name="RowsEmitted">Rows delivered as Read changes: the rest were changed in the stream meanwhile and arrive
/// (or arrived) as stream changes.</param>
/// <param name="LastKey">The chunk's last key, as text.</param>
/// <param name="Attempts">How many times the chunk was read: more than one when the table's shape changed between its
/// watermarks, or more changes came than the window keeps.</param>
public sealed record SnapshotChunkCompleted(string Table, long Chunk, int RowsRead, int RowsEmitted, IReadOnlyList<string>? LastKey, int Attempts) : SnapshotProgress(Table)
{
    /// <summary>Prints the key as its values (<c>LastKey = 42</c>, <c>LastKey = (7, 'r-003')</c>).</summary>
    protected override bool PrintMembers(StringBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        base.PrintMembers(builder);
        builder.Append(CultureInfo.InvariantCulture,
            $", Chunk = {Chunk}, RowsRead = {RowsRead}, RowsEmitted = {RowsEmitted}, LastKey = {KeyText.Format(LastKey)}, Attempts = {Attempts}");
        return true;
    }
}

/// <summary>Every row of a table was delivered.</summary>
public sealed record SnapshotTableCompleted(string Table, long Chunks, long RowsRead, long RowsEmitted) : SnapshotProgress(Table);

/// <summary>A requested table was not snapshotted: it is not mapped by a registered type, does not exist, or was
/// already queued with the same settings.</summary>
public sealed record SnapshotTableSkipped(string Table, string Reason) : SnapshotProgress(Table);

/// <summary>A table's snapshot was cancelled; rows already delivered stay delivered.</summary>
public sealed record SnapshotTableCancelled(string Table) : SnapshotProgress(Table);

/// <summary>A table's snapshot failed (a bad filter or chunk key, a dropped table); the stream and the other tables go on.</summary>
public sealed record SnapshotTableFailed(string Table, Exception Error) : SnapshotProgress(Table);

/// <summary>Snapshots paused (after the chunk in flight); the stream goes on.</summary>
public sealed record SnapshotsPaused() : SnapshotProgress((string?)null);

/// <summary>Snapshots resumed.</summary>
public sealed record SnapshotsResumed() : SnapshotProgress((string?)null);

/// <summary>The queue is empty: every requested table is done, skipped, failed or cancelled.</summary>
public sealed record SnapshotsCompleted() : SnapshotProgress((string?)null);

/// <summary>
/// The slot was gone and a new one was created (<see cref="DBSyncOptions.WhenSlotLost"/> = <see cref="SlotLost.StartOver"/>):
/// every registered table is snapshotted again, but changes between <paramref name="LastConfirmedLsn"/> and the new slot's
/// start never arrive, deletes among them. Sent before the snapshot's first table. A consumer that keeps a copy removes
/// the rows this full snapshot does not deliver (Read changes) once <see cref="SnapshotsCompleted"/> arrives.
/// </summary>
/// <param name="Slot">The slot.</param>
/// <param name="LastConfirmedLsn">The last position the checkpoint recorded on the lost slot: everything up to it was delivered.</param>
/// <param name="Reason">What happened to the slot.</param>
public sealed record SlotStartedOver(string Slot, string LastConfirmedLsn, string Reason) : SnapshotProgress((string?)null);

/// <summary>A snapshot key (its columns' values as text) written for people: progress notifications and the CLI.</summary>
internal static class KeyText
{
    /// <summary><c>42</c>, <c>'r-003'</c>, <c>(7, 'r-003')</c>: numbers as they are, other values quoted as SQL literals so
    /// that commas, spaces and empty strings stay readable; <c>null</c> for no key.</summary>
    public static string Format(IReadOnlyList<string>? key)
    {
        if (key is null)
            return "null";
        if (key.Count == 1)
            return Value(key[0]);
        var text = new StringBuilder("(");
        for (var i = 0; i < key.Count; i++)
            text.Append(i == 0 ? "" : ", ").Append(Value(key[i]));
        return text.Append(')').ToString();
    }

    private static string Value(string value) => IsNumber(value) ? value : "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    /// <summary>An integer or decimal as PostgreSQL writes one: <c>-12</c>, <c>3.50</c>.</summary>
    private static bool IsNumber(string value)
    {
        var digits = value.AsSpan(value.StartsWith('-') ? 1 : 0);
        var point = digits.IndexOf('.');
        var whole = point < 0 ? digits : digits[..point];
        var fraction = point < 0 ? "0".AsSpan() : digits[(point + 1)..];
        return !whole.IsEmpty && !fraction.IsEmpty && !whole.ContainsAnyExceptInRange('0', '9') && !fraction.ContainsAnyExceptInRange('0', '9');
    }
}
