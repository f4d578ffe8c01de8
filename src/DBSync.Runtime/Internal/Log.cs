using Microsoft.Extensions.Logging;

namespace DBSync;

/// <summary>DBSync's log messages. Event ids are stable: 1xxx setup, 2xxx stream. No message ever carries a password.</summary>
internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Information, "Created publication \"{Publication}\" for {Tables}")]
    public static partial void PublicationCreated(ILogger logger, string publication, string tables);

    [LoggerMessage(1002, LogLevel.Information, "Added {Tables} to publication \"{Publication}\"")]
    public static partial void PublicationTablesAdded(ILogger logger, string publication, string tables);

    [LoggerMessage(1003, LogLevel.Warning, "Publication \"{Publication}\" publishes only {Actions}; other kinds of change will not be delivered")]
    public static partial void PublicationPublishesOnly(ILogger logger, string publication, string actions);

    [LoggerMessage(1004, LogLevel.Information, "Created replication slot \"{Slot}\" at {Lsn}")]
    public static partial void SlotCreated(ILogger logger, string slot, string lsn);

    [LoggerMessage(2001, LogLevel.Information, "Streaming slot \"{Slot}\" (pgoutput protocol {Protocol}, {Format} tuples) from {Lsn}")]
    public static partial void StreamStarted(ILogger logger, string slot, int protocol, string format, string lsn);

    [LoggerMessage(2002, LogLevel.Information, "Stopped streaming slot \"{Slot}\"; confirmed {Lsn}")]
    public static partial void StreamStopped(ILogger logger, string slot, string lsn);

    [LoggerMessage(2003, LogLevel.Debug, "Relation {Relation} (oid {Oid}) bound to {Entity}")]
    public static partial void RelationBound(ILogger logger, string relation, uint oid, string entity);

    [LoggerMessage(2004, LogLevel.Error, "Stream of slot \"{Slot}\" stopped by an error; the last confirmed position is {Lsn}")]
    public static partial void StreamFailed(ILogger logger, Exception exception, string slot, string lsn);

    [LoggerMessage(3001, LogLevel.Information, "Snapshot of {Table} started (keys up to {MaxKey})")]
    public static partial void SnapshotStarted(ILogger logger, string table, string maxKey);

    [LoggerMessage(3002, LogLevel.Information, "Snapshot of {Table} completed: {Rows} rows read")]
    public static partial void SnapshotCompleted(ILogger logger, string table, long rows);

    [LoggerMessage(3003, LogLevel.Error, "Snapshot of {Table} failed")]
    public static partial void SnapshotFailed(ILogger logger, Exception exception, string table);

    [LoggerMessage(3004, LogLevel.Information, "Snapshot of {Table} cancelled")]
    public static partial void SnapshotCancelled(ILogger logger, string table);

    [LoggerMessage(2005, LogLevel.Warning, "Walsender {Pid} kept slot \"{Slot}\" after its connection closed; terminated it")]
    public static partial void WalSenderTerminated(ILogger logger, int pid, string slot);

    [LoggerMessage(2006, LogLevel.Warning, "Could not check that walsender {Pid} released its slot")]
    public static partial void WalSenderCheckFailed(ILogger logger, Exception exception, int pid);
}
