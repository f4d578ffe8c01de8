using Microsoft.Extensions.Logging;

namespace DBSync;

/// <summary>DBSync's log messages. Event ids are stable: 1xxx setup, 2xxx stream, 3xxx snapshots, 4xxx checkpoints and signals. No message ever carries a password.</summary>
internal static partial class Log
{
    [LoggerMessage(1000, LogLevel.Information, "Starting slot \"{Slot}\" (publication \"{Publication}\") on {Host}:{Port}, database \"{Database}\", as \"{User}\"; tables: {Tables}")]
    public static partial void Starting(ILogger logger, string slot, string publication, string? host, int port, string? database, string? user, string tables);

    [LoggerMessage(1001, LogLevel.Information, "Created publication \"{Publication}\" for {Tables}")]
    public static partial void PublicationCreated(ILogger logger, string publication, string tables);

    [LoggerMessage(1002, LogLevel.Information, "Added {Tables} to publication \"{Publication}\"")]
    public static partial void PublicationTablesAdded(ILogger logger, string publication, string tables);

    [LoggerMessage(1003, LogLevel.Warning, "Publication \"{Publication}\" publishes only {Actions}; other kinds of change will not be delivered")]
    public static partial void PublicationPublishesOnly(ILogger logger, string publication, string actions);

    [LoggerMessage(1004, LogLevel.Information, "Created replication slot \"{Slot}\" at {Lsn}")]
    public static partial void SlotCreated(ILogger logger, string slot, string lsn);

    [LoggerMessage(2001, LogLevel.Information, "Streaming slot \"{Slot}\" (pgoutput protocol {Protocol}, {Format} tuples) from {Lsn} over the {Transport} replication connection")]
    public static partial void StreamStarted(ILogger logger, string slot, int protocol, string format, string lsn, string transport);

    [LoggerMessage(2002, LogLevel.Information, "Stopped streaming slot \"{Slot}\"; confirmed {Lsn}")]
    public static partial void StreamStopped(ILogger logger, string slot, string lsn);

    [LoggerMessage(2003, LogLevel.Debug, "Relation {Relation} (oid {Oid}) bound to {Entity}")]
    public static partial void RelationBound(ILogger logger, string relation, uint oid, string entity);

    // Without the exception object: RunAsync throws it, and whoever catches it reports it (the hosted service as event
    // 5001), so its stack trace is printed once.
    [LoggerMessage(2004, LogLevel.Error, "Stream of slot \"{Slot}\" stopped by an error ({Error}); the last confirmed position is {Lsn}")]
    public static partial void StreamFailed(ILogger logger, string slot, string error, string lsn);

    [LoggerMessage(3001, LogLevel.Information, "Snapshot of {Table} started (keys up to {MaxKey}, from {From})")]
    public static partial void SnapshotStarted(ILogger logger, string table, string maxKey, string from);

    [LoggerMessage(3002, LogLevel.Information, "Snapshot of {Table} completed: {Rows} rows delivered")]
    public static partial void SnapshotCompleted(ILogger logger, string table, long rows);

    [LoggerMessage(3003, LogLevel.Error, "Snapshot of {Table} failed")]
    public static partial void SnapshotFailed(ILogger logger, Exception exception, string table);

    [LoggerMessage(3004, LogLevel.Information, "Snapshot of {Table} cancelled")]
    public static partial void SnapshotCancelled(ILogger logger, string table);

    [LoggerMessage(3005, LogLevel.Warning, "Snapshot of {Table} skipped: {Reason}")]
    public static partial void SnapshotSkipped(ILogger logger, string table, string reason);

    [LoggerMessage(3006, LogLevel.Information, "Chunk {Chunk} of {Table} is read again: the table's shape changed while it was read")]
    public static partial void ChunkReread(ILogger logger, string table, long chunk);

    [LoggerMessage(4001, LogLevel.Information, "Checkpoint of slot \"{Slot}\" loaded: {Tables} table snapshot(s) queued; saved at confirmed position {Lsn}")]
    public static partial void CheckpointLoaded(ILogger logger, string slot, int tables, string lsn);

    [LoggerMessage(4002, LogLevel.Warning, "Slot \"{Slot}\" is created anew; the checkpoint of its earlier incarnation is discarded")]
    public static partial void CheckpointDiscarded(ILogger logger, string slot);

    [LoggerMessage(4003, LogLevel.Error, "Could not save the checkpoint of slot \"{Slot}\"")]
    public static partial void CheckpointSaveFailed(ILogger logger, Exception exception, string slot);

    [LoggerMessage(4004, LogLevel.Information, "Signal {Id} ({Kind}) received")]
    public static partial void SignalReceived(ILogger logger, long id, string kind);

    [LoggerMessage(4005, LogLevel.Warning, "Signal {Id} ignored: {Reason}")]
    public static partial void SignalIgnored(ILogger logger, long id, string reason);

    [LoggerMessage(1005, LogLevel.Information, "Created signal table {Table}")]
    public static partial void SignalTableCreated(ILogger logger, string table);

    [LoggerMessage(2005, LogLevel.Warning, "Walsender {Pid} kept slot \"{Slot}\" after its connection closed; terminated it")]
    public static partial void WalSenderTerminated(ILogger logger, int pid, string slot);

    [LoggerMessage(2006, LogLevel.Warning, "Could not check that walsender {Pid} released its slot")]
    public static partial void WalSenderCheckFailed(ILogger logger, Exception exception, int pid);

    [LoggerMessage(3007, LogLevel.Warning, "The snapshot of {Table} cannot see what {Sessions} session(s) of other roles are doing, so it does not slow down for them; grant pg_read_all_stats (or pg_monitor) to the connecting role")]
    public static partial void SessionsHidden(ILogger logger, string table, long sessions);

    [LoggerMessage(3008, LogLevel.Debug, "Snapshot of {Table} waits {Delay} ms after chunk {Chunk} (it reads chunks {Share}% of the time while the database has a workload)")]
    public static partial void SnapshotThrottled(ILogger logger, string table, long chunk, long delay, double share);

    [LoggerMessage(3018, LogLevel.Information, "Snapshot of {Table} slows down: the workload ran {Running:F0} transactions/s with chunks being read and {Paused:F0}/s without, {Impact}% fewer, over the target of {Target}% (SnapshotMaxImpact); chunks were read {Before}% of the time, now {Share}%")]
    public static partial void SnapshotSlowedDown(ILogger logger, string table, double running, double paused, double impact, double target, double before, double share);

    [LoggerMessage(3019, LogLevel.Debug, "Snapshot of {Table}: the workload ran {Running:F0} transactions/s with chunks being read and {Paused:F0}/s without, {Impact}% fewer (target {Target}%); chunks were read {Before}% of the time, now {Share}%")]
    public static partial void SnapshotPaceMeasured(ILogger logger, string table, double running, double paused, double impact, double target, double before, double share);

    [LoggerMessage(2007, LogLevel.Warning, "Stream of slot \"{Slot}\" lost its connection; everything up to {Lsn} is confirmed. Reconnecting in {Delay} ms (attempt {Attempt})")]
    public static partial void StreamInterrupted(ILogger logger, Exception exception, string slot, string lsn, long delay, int attempt);

    [LoggerMessage(2008, LogLevel.Information, "Stream of slot \"{Slot}\" reconnected")]
    public static partial void StreamResumed(ILogger logger, string slot);

    [LoggerMessage(2030, LogLevel.Information, "Slot \"{Slot}\" streams to another consumer ({Holder}): standing by, looking every {Interval} ms whether it is free")]
    public static partial void StandingBy(ILogger logger, string slot, string holder, long interval);

    [LoggerMessage(2031, LogLevel.Information, "Took over slot \"{Slot}\" after standing by for {Seconds:0.0} s: streaming from {Lsn}")]
    public static partial void TookOver(ILogger logger, string slot, double seconds, string lsn);

    [LoggerMessage(2032, LogLevel.Warning, "Slot \"{Slot}\" is started over (DBSyncOptions.WhenSlotLost = StartOver): {Reason}. Changes after {Lsn} are missed, deletes among them; every registered table is snapshotted again")]
    public static partial void SlotStartedOver(ILogger logger, string slot, string reason, string lsn);

    [LoggerMessage(2033, LogLevel.Warning, "Slot \"{Slot}\" is a failover slot, but the server's synchronized_standby_slots is empty: a change can reach DBSync before the standby has it, and a failover then loses a transaction DBSync delivered. Name the standby's physical slot in synchronized_standby_slots")]
    public static partial void FailoverSlotUnprotected(ILogger logger, string slot);

    [LoggerMessage(3009, LogLevel.Warning, "Snapshot of {Table} lost its connection; it continues from its last completed chunk in {Delay} ms")]
    public static partial void SnapshotInterrupted(ILogger logger, Exception exception, string table, long delay);

    [LoggerMessage(2009, LogLevel.Warning, "Handler failed for {What} (attempt {Attempt} of {MaxAttempts}); calling it again in {Delay} ms")]
    public static partial void HandlerRetrying(ILogger logger, Exception exception, string what, int attempt, int maxAttempts, long delay);

    [LoggerMessage(2010, LogLevel.Error, "Handler failed for {What} {Attempts} times; the stream stops")]
    public static partial void HandlerGaveUp(ILogger logger, Exception exception, string what, int attempts);

    [LoggerMessage(2011, LogLevel.Debug, "Streamed transaction {Xid} moved to a spill file past the streaming memory limit ({Limit} bytes)")]
    public static partial void StreamSpilled(ILogger logger, uint xid, long limit);

    [LoggerMessage(2012, LogLevel.Warning, "Heartbeat of slot \"{Slot}\" could not be written; trying again in {Interval} ms")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception, string slot, long interval);

    [LoggerMessage(2013, LogLevel.Information, "Slot \"{Slot}\" streams over Npgsql's replication connection: DBSync's own is not used because {Reason}")]
    public static partial void DirectTransportNotUsed(ILogger logger, string slot, string reason);

    [LoggerMessage(2019, LogLevel.Warning, "Slot \"{Slot}\" streams over Npgsql's replication connection, which logs in a second time: DBSync's own handshake stopped before sending any password because {Reason}")]
    public static partial void DirectTransportFellBack(ILogger logger, string slot, string reason);

    [LoggerMessage(2014, LogLevel.Information, "Stopping slot \"{Slot}\": the transaction being delivered is finished and confirmed first")]
    public static partial void StopRequested(ILogger logger, string slot);

    [LoggerMessage(2015, LogLevel.Warning, "Stopping slot \"{Slot}\" is no longer graceful: the handlers' cancellation token is cancelled, and a transaction they give up is delivered again on the next run")]
    public static partial void StopAborted(ILogger logger, string slot);

    [LoggerMessage(2016, LogLevel.Debug, "Could not read the server's WAL end for the replication lag of slot \"{Slot}\"; trying again at the next interval")]
    public static partial void WalEndUnknown(ILogger logger, Exception exception, string slot);

    [LoggerMessage(3011, LogLevel.Debug, "Chunk {Chunk} of {Table}: {RowsRead} rows read, {RowsEmitted} delivered")]
    public static partial void ChunkCompleted(ILogger logger, string table, long chunk, int rowsRead, int rowsEmitted);

    [LoggerMessage(3012, LogLevel.Information, "Snapshots paused after the chunk in flight; the stream goes on")]
    public static partial void SnapshotsPaused(ILogger logger);

    [LoggerMessage(3013, LogLevel.Information, "Snapshots resumed")]
    public static partial void SnapshotsResumed(ILogger logger);

    [LoggerMessage(3014, LogLevel.Information, "Snapshot requested: {Tables}")]
    public static partial void SnapshotRequested(ILogger logger, string tables);

    [LoggerMessage(3010, LogLevel.Information, "Chunk {Chunk} of {Table} is read again: more than {Limit} changes of the table arrived while it was in its window ({Transactions} transaction(s) not recorded)")]
    public static partial void ChunkRereadAfterOverflow(ILogger logger, string table, long chunk, int limit, int transactions);

    [LoggerMessage(3016, LogLevel.Error, "A snapshot progress handler failed on {Notification}; the snapshots go on")]
    public static partial void ProgressHandlerFailed(ILogger logger, Exception exception, string notification);

    [LoggerMessage(3020, LogLevel.Information, "The snapshot checkpoint was not saved: {Reason} Trying again in {Delay} ms")]
    public static partial void CheckpointFenced(ILogger logger, string reason, long delay);

    [LoggerMessage(3017, LogLevel.Warning, "Snapshot work failed outside any table (saving the checkpoint, or a lost connection); trying again in {Delay} ms")]
    public static partial void SnapshotLoopRetried(ILogger logger, Exception exception, long delay);

    [LoggerMessage(1006, LogLevel.Information, "Publication \"{Publication}\" now publishes partitioned tables under their own names (publish_via_partition_root = true), as {Tables} needs; every table in it is mapped by this client")]
    public static partial void PublicationViaRootEnabled(ILogger logger, string publication, string tables);

    [LoggerMessage(2017, LogLevel.Information, "Publication \"{Publication}\" sends changes of {Relation} (oid {Oid}), which no registered type maps; they are not delivered")]
    public static partial void UnmappedRelation(ILogger logger, string publication, string relation, uint oid);

    [LoggerMessage(2018, LogLevel.Information, "Changes of partition {Partition} (oid {Oid}) arrive under the partition's own name (the publication sent partitions when they were written); they are delivered as changes of {Table}")]
    public static partial void PartitionDeliveredAsTable(ILogger logger, string partition, uint oid, string table);

    [LoggerMessage(2027, LogLevel.Warning, "TRUNCATE of partition {Partition} ({Bound}) of {Table} at {Lsn} is not delivered: it is not a truncate of {Table}. Its rows left {Table} without delete events, so consumers that applied them still have them: delete them there (the rows of that bound); use DELETE, not TRUNCATE, on a single partition")]
    public static partial void PartitionTruncateNotDelivered(ILogger logger, string partition, string bound, string table, string lsn);

    [LoggerMessage(2020, LogLevel.Information, "Partition {Partition} ({Bound}) of {Table} appeared empty (created, or attached); its changes stream as changes of {Table}")]
    public static partial void PartitionAttached(ILogger logger, string partition, string bound, string table);

    [LoggerMessage(2021, LogLevel.Information, "Partition {Partition} ({Bound}) was attached to {Table} with rows, which no change event announces: a snapshot of {Table} restricted to that partition is queued, and its rows arrive as Read")]
    public static partial void PartitionAttachedWithRows(ILogger logger, string partition, string bound, string table);

    [LoggerMessage(2022, LogLevel.Warning, "Partition {Partition} ({Bound}) of {Table} {What}: {Rows} left {Table} without delete events, so consumers that applied them still have them. Delete them there (the rows of that bound), or delete the rows in PostgreSQL before detaching or dropping a partition")]
    public static partial void PartitionDetached(ILogger logger, string partition, string bound, string table, string what, string rows);

    [LoggerMessage(2023, LogLevel.Warning, "Partition {Partition} ({Bound}) of {Table} got new storage without a published truncate of {Table}: a TRUNCATE of the partition alone, which PostgreSQL does not publish under publish_via_partition_root, removed its rows without delete events, and consumers that applied them still have them (delete them there: the rows of that bound; use DELETE, not TRUNCATE, on a single partition). A VACUUM FULL, CLUSTER or rewriting ALTER TABLE of the partition also gives it new storage and loses nothing")]
    public static partial void PartitionStorageReplaced(ILogger logger, string partition, string bound, string table);

    [LoggerMessage(2024, LogLevel.Warning, "Partition {Partition} ({Bound}) of {Table} is a foreign table: logical replication never sees its changes, so none of them is delivered (a snapshot of {Table} still reads its rows)")]
    public static partial void ForeignPartition(ILogger logger, string partition, string bound, string table);

    [LoggerMessage(2025, LogLevel.Warning, "Could not read the partitions of the mapped partitioned tables; trying again in {Interval} ms")]
    public static partial void PartitionWatchFailed(ILogger logger, Exception exception, long interval);

    [LoggerMessage(2026, LogLevel.Debug, "Partition {Partition} of {Table} got new storage, explained by a published truncate of {Table} (or of the partition)")]
    public static partial void PartitionStorageReplacedByTruncate(ILogger logger, string partition, string table);

    [LoggerMessage(2028, LogLevel.Information, "Partition {Partition} ({Bound}) was detached from {Table} with {Rows} row(s), which left {Table} without delete events: they are read from the detached table and delivered as deletes of {Table} (those it does not have again)")]
    public static partial void PartitionDetachedWithRows(ILogger logger, string partition, string bound, string table, string rows);

    [LoggerMessage(2029, LogLevel.Warning, "Slot \"{Slot}\" streams without channel binding: {Reason}")]
    public static partial void ChannelBindingUnavailable(ILogger logger, string slot, string reason);

    [LoggerMessage(2034, LogLevel.Information, "Schema change at {Lsn}: {Kind} {Table}{Column} ({CommandTag})")]
    private static partial void SchemaChangedCore(ILogger logger, string kind, string table, string column, string commandTag, string lsn);

    public static void SchemaChanged(ILogger logger, string kind, string table, string? column, string commandTag, string lsn)
    {
        if (logger.IsEnabled(LogLevel.Information))
            SchemaChangedCore(logger, kind, table, column is null ? "" : "." + column, commandTag, lsn);
    }

    [LoggerMessage(2035, LogLevel.Information, "The statement \"{Statement}\" at {Lsn} rewrote {Table} without row changes: a snapshot of {Table} is queued, once its transaction commits (DBSyncOptions.SnapshotAfterRewrite)")]
    public static partial void RewriteSnapshotQueued(ILogger logger, string table, string statement, string lsn);

    [LoggerMessage(1007, LogLevel.Information, "Installed the DDL capture trigger (version {Version}) in database {Database}: schema changes reach the stream")]
    public static partial void DdlCaptureInstalled(ILogger logger, int version, string database);

    [LoggerMessage(1008, LogLevel.Warning, "Table {Table} (mapped by {EntityType}) does not exist yet: when it is created (CaptureSchemaChanges) it is added to publication \"{Publication}\" and snapshotted")]
    public static partial void MappedTableAwaited(ILogger logger, string table, string entityType, string publication);

    [LoggerMessage(2036, LogLevel.Information, "Table {Table} (mapped by {EntityType}) was created at {Lsn}: added to publication \"{Publication}\", and a snapshot of it is queued (its rows written before that are not in the stream)")]
    public static partial void MappedTableCreated(ILogger logger, string table, string entityType, string lsn, string publication);

    [LoggerMessage(2037, LogLevel.Warning, "The run goes on without {Table} (DBSyncOptions.WhenSchemaIncompatible = SkipTable): its later changes are not delivered and its snapshots are cancelled. {Reason}")]
    public static partial void TableSkipped(ILogger logger, string table, string reason);
}
