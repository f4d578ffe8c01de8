namespace DBSync;

/// <summary>The base type of the errors DBSync raises. Messages name the object involved and how to fix the problem.</summary>
public class DBSyncException : Exception
{
    /// <summary>Creates an exception.</summary>
    public DBSyncException(string message) : base(message)
    {
    }

    /// <summary>Creates an exception with an inner cause.</summary>
    public DBSyncException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}

/// <summary>The database is not set up the way change capture needs (wal_level, privileges, missing tables, replica identity).</summary>
public sealed class DBSyncConfigurationException(string message, Exception? innerException = null) : DBSyncException(message, innerException);

/// <summary>A mapped column is missing from a table or has a type its property cannot hold. The stream stops.</summary>
public sealed class SchemaMismatchException : DBSyncException
{
    /// <summary>Creates the exception.</summary>
    public SchemaMismatchException(SyncTableInfo table, string column, string? pgType, string clrType, string message) : base(message)
    {
        ArgumentNullException.ThrowIfNull(table);
        Table = table.DisplayName;
        Column = column;
        PgType = pgType;
        ClrType = clrType;
    }

    /// <summary>The table, as <c>schema.name</c>.</summary>
    public string Table { get; }

    /// <summary>The column name.</summary>
    public string Column { get; }

    /// <summary>The PostgreSQL type of the column, or null when the column is missing.</summary>
    public string? PgType { get; }

    /// <summary>The C# type of the property.</summary>
    public string ClrType { get; }

    /// <summary>The DDL statement that made the change, when the DDL capture trigger reported it
    /// (<see cref="DBSyncOptions.CaptureSchemaChanges"/>); null when the stream found the change in a Relation message.</summary>
    public string? Statement { get; init; }

    /// <summary>Where the statement's DDL message is in the stream (with <see cref="Statement"/>).</summary>
    public NpgsqlTypes.NpgsqlLogSequenceNumber? StatementLsn { get; init; }
}

/// <summary>A value could not be decoded into its property: NULL for a non-nullable property, or a value outside the
/// property type's range. The stream stops; nothing is acknowledged past the failing transaction.</summary>
public sealed class DecodeException(string message, Exception? innerException = null) : DBSyncException(message, innerException);

/// <summary>A replication frame did not follow the pgoutput protocol.</summary>
public sealed class ProtocolException(string message) : DBSyncException(message);

/// <summary>
/// The replication slot is gone: dropped, or invalidated by the server because it held back more WAL than
/// <c>max_slot_wal_keep_size</c> allows (<c>wal_status = lost</c>). Changes after <see cref="ConfirmedLsn"/> may no longer
/// exist anywhere, so DBSync stops instead of going on with a gap. A later run that finds the slot gone while the
/// pipeline's checkpoint shows it had streamed stops with this exception too (the slot was dropped while DBSync was down,
/// or the server failed over to a standby with no synchronized copy of it). To recover, run once with
/// <see cref="DBSyncOptions.WhenSlotLost"/> = <see cref="SlotLost.StartOver"/>: a new slot and a full snapshot.
/// </summary>
public sealed class SlotLostException(string slot, string confirmedLsn, string message, Exception? innerException = null)
    : DBSyncException(message, innerException)
{
    /// <summary>The slot's name.</summary>
    public string Slot { get; } = slot;

    /// <summary>The last position this consumer confirmed; everything up to it was delivered.</summary>
    public string ConfirmedLsn { get; } = confirmedLsn;
}

/// <summary>
/// The snapshot a <see cref="DBSyncClient.SnapshotAsync{T}(CancellationToken)"/> task waited for did not finish in this
/// run: <see cref="DBSyncClient.RunAsync"/> ended (stopped, cancelled, or failed) first. The snapshot is not lost: it is
/// in the pipeline's checkpoint and continues after its last completed chunk when <c>RunAsync</c> runs again on the same
/// slot; follow it there with <see cref="DBSyncClient.OnSnapshotProgress(Action{SnapshotProgress})"/> or
/// <see cref="CheckpointInfo"/>.
/// </summary>
public sealed class SnapshotSuspendedException(string table, string message) : OperationCanceledException(message)
{
    /// <summary>The table, as <c>schema.name</c>.</summary>
    public string Table { get; } = table;
}
