using System.Diagnostics.CodeAnalysis;
using NpgsqlTypes;

namespace DBSync;

/// <summary>What happened to a row.</summary>
public enum ChangeKind : byte
{
    /// <summary>A row was inserted. <see cref="Change{T}.New"/> holds it.</summary>
    Insert = 1,
    /// <summary>A row was updated. <see cref="Change{T}.New"/> holds the new row; <see cref="Change{T}.Old"/> the old key or row when PostgreSQL sent one.</summary>
    Update = 2,
    /// <summary>A row was deleted. <see cref="Change{T}.Old"/> holds its key, or the whole row under REPLICA IDENTITY FULL.</summary>
    Delete = 3,
    /// <summary>The table was truncated. Neither row is set.</summary>
    Truncate = 4,
    /// <summary>A row read by a snapshot. <see cref="Change{T}.New"/> holds it.</summary>
    Read = 5,
}

/// <summary>How much of the old row a change carries.</summary>
public enum OldRowKind : byte
{
    /// <summary>No old row: inserts, truncates, and updates that did not change the key under the default replica identity.</summary>
    None = 0,
    /// <summary>Only the replica identity (key) columns of <see cref="Change{T}.Old"/> are set; other properties hold defaults.</summary>
    Key = 1,
    /// <summary>Every column of <see cref="Change{T}.Old"/> is set (REPLICA IDENTITY FULL).</summary>
    Full = 2,
}

/// <summary>One typed change of a row of the table mapped by <typeparamref name="T"/>.</summary>
/// <typeparam name="T">The entity type.</typeparam>
public readonly struct Change<T> where T : ISyncTable<T>
{
    /// <summary>Creates a change (used by the runtime and by tests that feed handlers).</summary>
    public Change(ChangeKind kind, T? newRow, T? oldRow, OldRowKind oldRowKind, ColumnSet unchangedToast,
        NpgsqlLogSequenceNumber lsn, NpgsqlLogSequenceNumber commitLsn, DateTimeOffset commitTime, uint xid, int indexInTransaction = 0)
    {
        Kind = kind;
        New = newRow;
        Old = oldRow;
        OldRowKind = oldRowKind;
        UnchangedToast = unchangedToast;
        Lsn = lsn;
        CommitLsn = commitLsn;
        CommitTime = commitTime;
        Xid = xid;
        IndexInTransaction = indexInTransaction;
    }

    /// <summary>For a row a snapshot delivered (a <see cref="ChangeKind.Read"/> row, or the delete of a row that left the
    /// table's partitions): the number of the chunk it was read in (1, 2, ... within the table's snapshot, as
    /// <see cref="SnapshotChunkCompleted.Chunk"/> says); 0 for every other change.</summary>
    public long SnapshotChunk { get; init; }

    /// <summary>What happened.</summary>
    public ChangeKind Kind { get; }

    /// <summary>The row after the change: set for <see cref="ChangeKind.Insert"/>, <see cref="ChangeKind.Update"/> and <see cref="ChangeKind.Read"/>.
    /// Properties listed in <see cref="UnchangedToast"/> hold defaults, not the column's value.</summary>
    public T? New { get; }

    /// <summary>The row before the change, as far as <see cref="OldRowKind"/> says.</summary>
    public T? Old { get; }

    /// <summary>Whether <see cref="Old"/> holds the key only or the whole row.</summary>
    public OldRowKind OldRowKind { get; }

    /// <summary>Columns (indexes into <see cref="SyncTableInfo.Columns"/>) whose value PostgreSQL did not send because it is
    /// an unchanged TOASTed value. The property on <see cref="New"/> is a default, never the real value; keep the value you had.</summary>
    public ColumnSet UnchangedToast { get; }

    /// <summary>The WAL position of this change.</summary>
    public NpgsqlLogSequenceNumber Lsn { get; }

    /// <summary>The WAL position of the commit record of the transaction.</summary>
    public NpgsqlLogSequenceNumber CommitLsn { get; }

    /// <summary>When the transaction committed (UTC).</summary>
    public DateTimeOffset CommitTime { get; }

    /// <summary>The transaction id.</summary>
    public uint Xid { get; }

    /// <summary>
    /// The change's position in its transaction: 0 for the first change delivered from it, counting every delivered change
    /// of every table in delivery order (snapshot <see cref="ChangeKind.Read"/> rows too, in the transaction of their
    /// chunk's high watermark). With <see cref="CommitLsn"/> it identifies the change: (<see cref="CommitLsn"/>,
    /// <see cref="IndexInTransaction"/>) is unique among the changes a pipeline delivers, and a transaction delivered again
    /// (after a restart, a reconnect or a handler failure, with the same tables registered) gives each change the same
    /// pair, so it serves as a dedupe key.
    /// </summary>
    public int IndexInTransaction { get; }

    /// <summary>The mapped table.</summary>
    public static SyncTableInfo Table => T.TableInfo;

    /// <summary>The row that identifies the changed key: <see cref="New"/> when set, else <see cref="Old"/>. Null for truncates.</summary>
    public T? Row => New ?? Old;

    /// <summary>Whether <see cref="New"/> is set.</summary>
    [MemberNotNullWhen(true, nameof(New))]
    public bool HasNew => New is not null;

    /// <summary>Whether the named column (PostgreSQL name or property name) was an unchanged TOAST value.</summary>
    public bool IsUnchangedToast(string column)
    {
        foreach (var c in T.TableInfo.Columns)
        {
            if (string.Equals(c.Name, column, StringComparison.Ordinal) || string.Equals(c.PropertyName, column, StringComparison.Ordinal))
                return UnchangedToast.Contains(c.Index);
        }
        throw new ArgumentException($"Table {T.TableInfo.DisplayName} has no mapped column '{column}'.", nameof(column));
    }

    /// <inheritdoc />
    public override string ToString() => $"{Kind} {T.TableInfo.DisplayName} xid={Xid} lsn={Lsn} #{IndexInTransaction}";
}

/// <summary>A transaction whose changes have all been delivered to the row handlers.</summary>
public readonly record struct CommittedTransaction(
    uint Xid,
    NpgsqlLogSequenceNumber CommitLsn,
    NpgsqlLogSequenceNumber EndLsn,
    DateTimeOffset CommitTime,
    int ChangeCount,
    string? Origin);

/// <summary>A logical decoding message written with <c>pg_logical_emit_message</c>.</summary>
public readonly record struct LogicalMessage(
    bool Transactional,
    NpgsqlLogSequenceNumber Lsn,
    string Prefix,
    ReadOnlyMemory<byte> Content,
    uint Xid);
