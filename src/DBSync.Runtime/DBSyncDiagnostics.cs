namespace DBSync;

/// <summary>
/// The names under which DBSync reports metrics (the <see cref="System.Diagnostics.Metrics.Meter"/> <see cref="MeterName"/>)
/// and traces (the <see cref="System.Diagnostics.ActivitySource"/> <see cref="ActivitySourceName"/>), for OpenTelemetry
/// (<c>AddMeter(DBSyncDiagnostics.MeterName)</c>, <c>AddSource(DBSyncDiagnostics.ActivitySourceName)</c>) or a
/// <see cref="System.Diagnostics.Metrics.MeterListener"/>. Nothing is measured or traced while nobody listens.
/// </summary>
public static class DBSyncDiagnostics
{
    /// <summary>The meter's name: <c>DBSync</c>.</summary>
    public const string MeterName = "DBSync";

    /// <summary>The activity source's name: <c>DBSync</c>.</summary>
    public const string ActivitySourceName = "DBSync";

    /// <summary>The activity of one transaction's delivery, from its Begin to its acknowledgement: <c>dbsync.transaction</c>.</summary>
    public const string TransactionActivityName = "dbsync.transaction";

    /// <summary>The instruments of the meter.</summary>
    public static class Metrics
    {
        /// <summary>Counter (<c>{change}</c>): changes delivered to handlers, by <see cref="Tags.Slot"/>, <see cref="Tags.Table"/> and <see cref="Tags.ChangeKind"/>.</summary>
        public const string Changes = "dbsync.changes";

        /// <summary>Counter (<c>{transaction}</c>): transactions whose handlers all completed and that were acknowledged, by <see cref="Tags.Slot"/>.</summary>
        public const string Transactions = "dbsync.transactions";

        /// <summary>Counter (<c>By</c>): bytes of pgoutput messages received on the replication connection, by <see cref="Tags.Slot"/>.</summary>
        public const string ReceivedBytes = "dbsync.replication.received";

        /// <summary>Gauge (<c>By</c>): the server's WAL end (read every <see cref="DBSyncOptions.StatusInterval"/> while observed) minus the confirmed position, by <see cref="Tags.Slot"/>.</summary>
        public const string ReplicationLag = "dbsync.replication.lag";

        /// <summary>Gauge (<c>s</c>): while a transaction is being delivered, now minus its commit time; 0 while the stream waits for the server; by <see cref="Tags.Slot"/>.</summary>
        public const string ReplicationDelay = "dbsync.replication.delay";

        /// <summary>Counter (<c>{reconnect}</c>): times the replication connection was lost and the stream reconnects, by <see cref="Tags.Slot"/>.</summary>
        public const string Reconnects = "dbsync.replication.reconnects";

        /// <summary>Histogram (<c>s</c>): how long the handlers of one change, transaction or message took, by <see cref="Tags.Slot"/>,
        /// <see cref="Tags.HandlerType"/> and (for changes) <see cref="Tags.Table"/>.</summary>
        public const string HandlerDuration = "dbsync.handler.duration";

        /// <summary>Counter (<c>{row}</c>): rows read by snapshot chunk queries, by <see cref="Tags.Slot"/> and <see cref="Tags.Table"/>.</summary>
        public const string SnapshotRows = "dbsync.snapshot.rows";

        /// <summary>Counter (<c>{chunk}</c>): snapshot chunks delivered, by <see cref="Tags.Slot"/> and <see cref="Tags.Table"/>.</summary>
        public const string SnapshotChunks = "dbsync.snapshot.chunks";

        /// <summary>Gauge (<c>1</c>): the share of the table being snapshotted that was read, against the server's row estimate, by <see cref="Tags.Slot"/> and <see cref="Tags.Table"/>.</summary>
        public const string SnapshotProgress = "dbsync.snapshot.progress";

        /// <summary>UpDownCounter (<c>{table}</c>): tables queued for a snapshot or being snapshotted, by <see cref="Tags.Slot"/>.</summary>
        public const string SnapshotTables = "dbsync.snapshot.tables";

        /// <summary>Gauge (<c>1</c>): 1 while this instance streams from the slot, 0 while it starts, reconnects or stands
        /// by for a slot another instance holds (<see cref="SlotInUse.Wait"/>), by <see cref="Tags.Slot"/>.</summary>
        public const string Active = "dbsync.instance.active";

        /// <summary>Counter (<c>{message}</c>): messages the JetStream publisher (DBSync.Nats) had stored by JetStream, by
        /// <see cref="Tags.Slot"/> and <see cref="Tags.Stream"/>.</summary>
        public const string JetStreamPublished = "dbsync.jetstream.published";

        /// <summary>Histogram (<c>s</c>): from a change's commit (the server's clock) to JetStream's acknowledgement of its
        /// message, by <see cref="Tags.Slot"/> and <see cref="Tags.Stream"/>.</summary>
        public const string JetStreamCommitToAck = "dbsync.jetstream.commit_to_ack";

        /// <summary>Counter (<c>{interruption}</c>): times publishing was interrupted (JetStream unreachable, an
        /// acknowledgement missing or refused) and went on from where the stream ends, by <see cref="Tags.Slot"/> and
        /// <see cref="Tags.Stream"/>.</summary>
        public const string JetStreamInterruptions = "dbsync.jetstream.interruptions";
    }

    /// <summary>The tags of the measurements.</summary>
    public static class Tags
    {
        /// <summary>The replication slot (<see cref="DBSyncOptions.SlotName"/>): <c>dbsync.slot</c>.</summary>
        public const string Slot = "dbsync.slot";

        /// <summary>The table, <c>schema.name</c>: <c>dbsync.table</c>.</summary>
        public const string Table = "dbsync.table";

        /// <summary>The change's kind, <c>insert</c>, <c>update</c>, <c>delete</c>, <c>truncate</c> or <c>read</c>: <c>dbsync.change.kind</c>.</summary>
        public const string ChangeKind = "dbsync.change.kind";

        /// <summary>Which handlers were timed, <c>change</c>, <c>transaction</c> or <c>message</c>: <c>dbsync.handler.type</c>.</summary>
        public const string HandlerType = "dbsync.handler.type";

        /// <summary>The JetStream stream published to: <c>dbsync.stream</c>.</summary>
        public const string Stream = "dbsync.stream";
    }
}
