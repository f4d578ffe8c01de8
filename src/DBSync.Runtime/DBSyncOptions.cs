using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync;

/// <summary>Configuration of a <see cref="DBSyncClient"/>.</summary>
public sealed partial class DBSyncOptions
{
    /// <summary>
    /// An Npgsql connection string for the source database. The role needs <c>LOGIN REPLICATION</c> (or superuser),
    /// <c>SELECT</c> on the mapped tables, and ownership of them (or <c>CREATE</c> on the database) if DBSync is to create the
    /// publication. TLS and authentication settings are taken from here as Npgsql understands them.
    /// </summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>The logical replication slot to read. Lower-case letters, digits and underscores, at most 63 characters.
    /// Created (with the <c>pgoutput</c> plugin) when missing. Default <c>dbsync</c>.</summary>
    public string SlotName { get; set; } = "dbsync";

    /// <summary>The publication that names the replicated tables. Same naming rules as <see cref="SlotName"/>. Created when
    /// missing, and mapped tables it lacks are added to it. Default <c>dbsync</c>.</summary>
    public string PublicationName { get; set; } = "dbsync";

    /// <summary>
    /// How often the client reports its confirmed position to the server even without a server request. The position
    /// covers only transactions whose handlers have completed. Default 10 seconds, like <c>wal_receiver_status_interval</c>.
    /// </summary>
    public TimeSpan StatusInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// While no transaction is in flight, the server's keepalive position is confirmed after it has been stable for this
    /// long, so a slot on a quiet table never pins WAL that other databases or tables produce. Default 1 second.
    /// </summary>
    public TimeSpan IdleConfirmInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Rows per snapshot chunk (keyset pagination on the primary key). Default 8192: measured on 1M users rows
    /// (<c>benchmarks/run-snapshot.sh chunks</c>), 256 took 6.4x a binary COPY, 1024 2.3x, 4096 1.4x, 8192 1.2x,
    /// 16384 1.6x and 65536 1.3x. A chunk's rows are held in memory until the stream reaches its high watermark; smaller
    /// chunks mean less memory and shorter windows on very busy tables.
    /// </summary>
    public int SnapshotChunkSize { get; set; } = 8192;

    /// <summary>
    /// How many changes of a table being snapshotted DBSync remembers between the watermarks of a chunk (the DBLog
    /// window: each change's key and transaction). A larger burst (one huge transaction on the table) is not kept: the
    /// chunk is read again once those transactions are visible, so memory stays bounded. Default 65,536.
    /// </summary>
    public int SnapshotWindowMaxChanges { get; set; } = 65_536;

    /// <summary>
    /// How many chunks of a table a snapshot reads at once, each on a connection of its own and between its own
    /// watermarks. A table's key range is split up front (from a sample of its keys) into segments that the readers page
    /// through side by side, so chunks are delivered in key order within a segment but not across segments. 1 reads one
    /// chunk at a time (and the next one ahead), in key order. Default 1: on the 2-core machine of the benchmarks
    /// (<c>benchmarks/run-snapshot.sh</c>, 1M users rows, medians of 5 rounds) 2 and 4 readers were no faster than one
    /// (1.58 and 1.54 times a binary COPY against 1.48): the server's scan and the client's decoding already keep both
    /// cores busy. More readers help where the server has cores to spare. Memory holds at most two chunks per reader.
    /// </summary>
    public int SnapshotParallelism { get; set; } = 1;

    /// <summary>A fixed pause between snapshot chunks, on top of the throttle's (<see cref="SnapshotMaxImpact"/>). Default none.</summary>
    public TimeSpan SnapshotChunkDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How much of its throughput the database's workload may lose to a snapshot, between 0 (exclusive) and 1: 0.10 means
    /// at most 10% fewer transactions per second while chunks are read. While other sessions of the snapshot's database
    /// (not DBSync's own, nor its appliers') run statements or hold transactions open, DBSync compares the database's
    /// transactions per second (<c>pg_stat_database</c>) in windows of a few seconds with chunks being read and with the
    /// snapshot paused, and pauses between chunks so that the loss stays within this share. With no such session the
    /// snapshot runs at full speed. 1 turns the throttle off. Default 0.10. The sessions of other roles count only when
    /// the connecting role may see them (<c>pg_read_all_stats</c>, for example through <c>pg_monitor</c>); a warning says
    /// when it cannot.
    /// </summary>
    public double SnapshotMaxImpact { get; set; } = 0.10;

    /// <summary>
    /// The least share of the time a snapshot reads chunks while it slows the workload down more than
    /// <see cref="SnapshotMaxImpact"/>, between 0 (exclusive) and 1, so that a snapshot always progresses. 1 turns the
    /// throttle off. Default 0.05.
    /// </summary>
    public double SnapshotBusyShare { get; set; } = 0.05;

    /// <summary>
    /// Whether to snapshot every registered table when the slot is created (the first run of a pipeline), so the
    /// consumer starts from the tables' full state and not only from changes after that moment. The queued snapshot is
    /// checkpointed before the slot exists, so an interrupted initial snapshot continues on the next run. Default true.
    /// </summary>
    public bool InitialSnapshot { get; set; } = true;

    /// <summary>
    /// Whether to snapshot every registered table each time <see cref="DBSyncClient.RunAsync"/> starts, not only when the
    /// slot is created (Debezium's <c>snapshot.mode = always</c>): for consumers that keep their state in memory (a cache)
    /// and so have none of it at start. A snapshot of one of these tables that an earlier run left unfinished starts over
    /// from its first chunk, since the rows it delivered then are gone with that run's memory. Default false.
    /// </summary>
    public bool SnapshotOnStart { get; set; }

    /// <summary>
    /// Where snapshot progress is kept between runs. Default (null): a <see cref="PostgresCheckpointStore"/> with the table
    /// <c>public.dbsync_checkpoint</c> in the source database, created on the first save (when DBSync creates the slot:
    /// the checkpoint also records that the slot existed, so a run that later finds the slot gone knows changes were missed).
    /// </summary>
    public ICheckpointStore? CheckpointStore { get; set; }

    /// <summary>
    /// A table (<c>name</c> or <c>schema.name</c>) whose inserted rows start, pause, resume or cancel snapshots, for SQL
    /// and other processes: <c>INSERT INTO dbsync_signal (kind, tables) VALUES ('snapshot', ARRAY['public.users'])</c>.
    /// Created when missing and added to the publication; signals act in commit order, once. Default null: no signal table.
    /// </summary>
    public string? SignalTable { get; set; }

    /// <summary>
    /// The wait before reconnecting after the replication connection, or a <see cref="PostgresApplier"/>'s target
    /// connection, was lost (the walsender or backend was terminated, the server restarted, the network dropped); doubled
    /// after each failed attempt up to <see cref="MaxReconnectDelay"/>, with +/-20% jitter. The stream resumes from the
    /// last confirmed position. Default 1 second.
    /// </summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between reconnection attempts. Default 30 seconds.</summary>
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// What a run does when its slot is streaming to another consumer (another instance of the same pipeline, for
    /// example): <see cref="SlotInUse.Fail"/> stops <see cref="DBSyncClient.RunAsync"/> with a
    /// <see cref="DBSyncConfigurationException"/>; <see cref="SlotInUse.Wait"/> stands by, logs once who holds the slot,
    /// looks every <see cref="StandbyPollInterval"/> whether it is free, and streams as soon as it gets it, continuing the
    /// snapshots from their checkpoint. PostgreSQL lets one walsender at a time stream from a slot, so at most one
    /// instance delivers. Default (null): <c>Fail</c> for a client you run yourself, <c>Wait</c> under the hosted service
    /// (<c>AddDBSync</c>).
    /// </summary>
    public SlotInUse? WhenSlotInUse { get; set; }

    /// <summary>How often an instance standing by (<see cref="SlotInUse.Wait"/>) looks whether the slot is free: one query
    /// of <c>pg_replication_slots</c> on an ordinary connection. Default 250 ms.</summary>
    public TimeSpan StandbyPollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// What a run does when its slot is gone but the pipeline's checkpoint shows it had streamed from it: the slot was
    /// dropped, invalidated by the server (<c>wal_status = lost</c>), or the server failed over to a standby that had no
    /// synchronized copy of it. A new slot starts at the current WAL position: rows changed in between come back with a
    /// full snapshot, but rows deleted in between never arrive as deletes. <see cref="SlotLost.Fail"/> (the default) stops
    /// <see cref="DBSyncClient.RunAsync"/> with a <see cref="SlotLostException"/> that says how to recover;
    /// <see cref="SlotLost.StartOver"/> creates a new slot, snapshots every registered table, and tells the
    /// <see cref="DBSyncClient.OnSnapshotProgress(Action{SnapshotProgress})"/> handlers with <see cref="SlotStartedOver"/>
    /// that deletes may have been missed. Set it for the one run that recovers, not for good.
    /// </summary>
    public SlotLost WhenSlotLost { get; set; }

    /// <summary>
    /// Captures DDL: on start DBSync installs (or checks) an event trigger on the source database that writes every DDL
    /// statement into the stream as a transactional logical message, at its exact place among the row changes. Each
    /// reaches <see cref="DBSyncClient.OnSchemaChange(Func{SchemaChange, CancellationToken, ValueTask})"/> handlers as
    /// typed <see cref="SchemaChange"/>s; a mapped table whose new shape its type cannot hold stops the stream at the
    /// statement, with the statement in the error; an open snapshot chunk of a changed table is read again; a table whose
    /// rows a statement rewrote is snapshotted again (<see cref="SnapshotAfterRewrite"/>). Installing an event trigger
    /// needs a superuser (or a cloud provider's equivalent, such as <c>rds_superuser</c>): when DBSync's role may not,
    /// the run stops with a <see cref="DBSyncConfigurationException"/> that gives the SQL for a DBA
    /// (<c>dbsync ddl print</c> prints it, <c>dbsync ddl install</c> runs it). One trigger serves every pipeline of the
    /// database. Default false: DDL is seen only through the next Relation message of a table, as the README's "Schema
    /// changes" section says.
    /// </summary>
    public bool CaptureSchemaChanges { get; set; }

    /// <summary>
    /// With <see cref="CaptureSchemaChanges"/>: a mapped table whose rows a DDL statement rewrote (<c>ALTER COLUMN ...
    /// TYPE ... USING</c>, <c>ADD COLUMN</c> with a volatile default), which changes values without any row change in the
    /// stream, is snapshotted again once the statement's transaction commits, so that consumers receive the new values as
    /// <see cref="ChangeKind.Read"/> rows. The snapshot is checkpointed before the transaction is confirmed. Default true.
    /// </summary>
    public bool SnapshotAfterRewrite { get; set; } = true;

    /// <summary>
    /// With <see cref="CaptureSchemaChanges"/>: what a DDL statement that leaves a mapped table in a shape its type cannot
    /// hold (a mapped column dropped, renamed or retyped beyond the property, the table dropped or renamed, its key
    /// changed) does. <see cref="SchemaIncompatible.Stop"/> (default): the stream stops at the statement with a
    /// <see cref="SchemaMismatchException"/>, nothing after it confirmed. <see cref="SchemaIncompatible.SkipTable"/>: the
    /// run carries on without that table (its later changes are not delivered, its snapshots are cancelled; log event
    /// 2037 says why); the next start refuses the table until its type matches it again or is no longer registered.
    /// </summary>
    public SchemaIncompatible WhenSchemaIncompatible { get; set; }

    /// <summary>
    /// Creates the slot with <c>failover = true</c> (PostgreSQL 17 and later), so that a physical standby with
    /// <c>sync_replication_slots = on</c> keeps a synchronized copy of it and DBSync continues from that copy after the
    /// standby is promoted. The server settings it needs are in the README ("Running several instances"). On an older
    /// server the run stops with a <see cref="DBSyncConfigurationException"/>; a slot that already exists without
    /// failover is refused with the command that turns it on. Default false.
    /// </summary>
    public bool FailoverSlot { get; set; }

    /// <summary>
    /// How many bytes of large in-progress transactions the client keeps in memory. PostgreSQL 14 and later send a
    /// transaction that outgrows the server's <c>logical_decoding_work_mem</c> while it is still running (pgoutput
    /// <c>streaming</c>); DBSync keeps its changes until it commits, then delivers them whole, in commit order (an aborted
    /// one is dropped). Past this limit, counted over all such transactions, the transaction being received moves to a
    /// temporary file in <see cref="StreamingSpillDirectory"/>. Default 64 MiB.
    /// </summary>
    public long StreamingMemoryLimit { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// Where large in-progress transactions are spilled past <see cref="StreamingMemoryLimit"/>. The files hold row data:
    /// DBSync writes them into a directory of its own in this one, <c>dbsync-&lt;user&gt;</c>, created readable by its user
    /// alone (0700 on Unix), each file readable by its owner alone (0600). An existing <c>dbsync-&lt;user&gt;</c> that is a
    /// symbolic link or that other users may write to is refused when the run starts, with a
    /// <see cref="DBSyncConfigurationException"/> saying how to fix it. A file is deleted when its transaction commits or
    /// aborts, or the run ends. Default null: the system's temporary directory.
    /// </summary>
    public string? StreamingSpillDirectory { get; set; }

    /// <summary>What happens when a handler throws: <see cref="HandlerFailurePolicy.Stop"/> (default) or
    /// <see cref="HandlerFailurePolicy.Retry"/>. Either way nothing is confirmed past a transaction whose handlers have
    /// not all completed.</summary>
    public HandlerFailurePolicy HandlerFailure { get; set; } = HandlerFailurePolicy.Stop;

    /// <summary>With <see cref="HandlerFailurePolicy.Retry"/>: how many times a handler is called for one change,
    /// transaction or message before the stream stops. Default 5.</summary>
    public int HandlerMaxAttempts { get; set; } = 5;

    /// <summary>With <see cref="HandlerFailurePolicy.Retry"/>: the wait before the first retry, doubled for each further
    /// one up to <see cref="MaxHandlerRetryDelay"/>, with +/-20% jitter. Default 1 second.</summary>
    public TimeSpan HandlerRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between two calls of a failing handler. Default 30 seconds.</summary>
    public TimeSpan MaxHandlerRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// When set, a heartbeat (a transactional logical message of this pipeline, never shown to handlers) is written to the
    /// source database whenever no transaction was confirmed for this long, so the slot's confirmed position moves even
    /// where keepalive positions are not enough (a standby, a provider that holds keepalives back). Needs nothing but the
    /// connection's role. Default null: no heartbeats; keepalive positions are confirmed while idle either way.
    /// </summary>
    public TimeSpan? HeartbeatInterval { get; set; }

    /// <summary>
    /// Which client reads the replication stream. <see cref="DBSync.ReplicationTransport.Auto"/> (default): DBSync's own
    /// (<see cref="DBSync.ReplicationTransport.Direct"/>) wherever it can serve the connection string, else Npgsql's.
    /// </summary>
    public ReplicationTransport ReplicationTransport { get; set; } = ReplicationTransport.Auto;

    /// <summary>
    /// With DBSync's own replication connection: after a socket read that found less than 64 KiB, the reader waits this
    /// long before reading again, so that the frames arriving meanwhile are taken in one read instead of one wake-up each.
    /// It adds at most this much to the delivery latency and cuts the CPU a busy stream costs several times over.
    /// Default 1 ms; zero reads again at once. At most 100 ms.
    /// </summary>
    public TimeSpan ReceiveBatchDelay { get; set; } = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// How long the replication connection may stay silent (no data, not even a keepalive) while DBSync waits for the
    /// server. After half of it DBSync asks the server for an immediate reply; after all of it the connection counts as
    /// lost (a network that silently drops packets), and the stream reconnects. Default 60 seconds, as Npgsql's
    /// <c>WalReceiverTimeout</c>; keep it well above the server's <c>wal_sender_timeout</c> / 2, at which an idle server
    /// sends keepalives.
    /// </summary>
    public TimeSpan ReceiveTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The default of <see cref="MaxMessageSize"/>: 1 GiB, PostgreSQL's own limit on a message.</summary>
    public const int DefaultMaxMessageSize = 1 << 30;

    /// <summary>
    /// With DBSync's own replication connection: the largest message (in bytes, after its kind and length) the server may
    /// send while streaming; one that claims more is a protocol error before anything is allocated for it. The read buffer
    /// grows for a message larger than its 1 MiB and shrinks back after it, so this bounds the memory one row can take.
    /// PostgreSQL never sends a message over 1 GiB, the default; lower it to cap memory where rows are known to be
    /// smaller. Between 1 MiB and 1 GiB. During the connection's handshake, messages are limited to 64 KiB.
    /// </summary>
    public int MaxMessageSize { get; set; } = DefaultMaxMessageSize;

    /// <summary>Where DBSync logs what it does. Default: no logging.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Checks the options and throws an <see cref="ArgumentException"/> naming the first invalid one.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ConnectionString))
            throw new ArgumentException("DBSyncOptions.ConnectionString is empty. Set it to an Npgsql connection string for the source database.", nameof(ConnectionString));
        ValidateHosts(ConnectionString);
        ValidateName(SlotName, nameof(SlotName));
        ValidateName(PublicationName, nameof(PublicationName));
        if (StatusInterval <= TimeSpan.Zero)
            throw new ArgumentException($"DBSyncOptions.StatusInterval must be positive (was {StatusInterval}).", nameof(StatusInterval));
        if (SnapshotChunkSize < 1)
            throw new ArgumentException($"DBSyncOptions.SnapshotChunkSize must be at least 1 (was {SnapshotChunkSize}).", nameof(SnapshotChunkSize));
        if (SnapshotWindowMaxChanges < 1)
            throw new ArgumentException($"DBSyncOptions.SnapshotWindowMaxChanges must be at least 1 (was {SnapshotWindowMaxChanges}).", nameof(SnapshotWindowMaxChanges));
        if (SnapshotParallelism is < 1 or > 64)
            throw new ArgumentException($"DBSyncOptions.SnapshotParallelism must be between 1 and 64 (was {SnapshotParallelism}); 1 reads one chunk at a time.", nameof(SnapshotParallelism));
        if (SnapshotChunkDelay < TimeSpan.Zero)
            throw new ArgumentException($"DBSyncOptions.SnapshotChunkDelay cannot be negative (was {SnapshotChunkDelay}).", nameof(SnapshotChunkDelay));
        if (!(SnapshotMaxImpact > 0 && SnapshotMaxImpact <= 1))
            throw new ArgumentException($"DBSyncOptions.SnapshotMaxImpact must be greater than 0 and at most 1 (was {SnapshotMaxImpact}): the share of the workload's transactions per second a snapshot may cost, 0.10 for 10%; 1 turns the throttle off.", nameof(SnapshotMaxImpact));
        if (!(SnapshotBusyShare > 0 && SnapshotBusyShare <= 1))
            throw new ArgumentException($"DBSyncOptions.SnapshotBusyShare must be greater than 0 and at most 1 (was {SnapshotBusyShare}); 1 turns the throttle off.", nameof(SnapshotBusyShare));
        if (SignalTable is not null && !SignalTablePattern().IsMatch(SignalTable))
        {
            throw new ArgumentException(
                $"DBSyncOptions.SignalTable '{SignalTable}' is not valid: use [schema.]name with lower-case letters, digits and underscores (for example 'dbsync_signal').",
                nameof(SignalTable));
        }
        if (StandbyPollInterval <= TimeSpan.Zero)
            throw new ArgumentException($"DBSyncOptions.StandbyPollInterval must be positive (was {StandbyPollInterval}).", nameof(StandbyPollInterval));
        if (WhenSlotInUse is { } inUse && !Enum.IsDefined(inUse))
            throw new ArgumentException($"DBSyncOptions.WhenSlotInUse must be SlotInUse.Fail or SlotInUse.Wait (was {(int)inUse}).", nameof(WhenSlotInUse));
        if (!Enum.IsDefined(WhenSchemaIncompatible))
            throw new ArgumentException($"DBSyncOptions.WhenSchemaIncompatible must be SchemaIncompatible.Stop or SchemaIncompatible.SkipTable (was {(int)WhenSchemaIncompatible}).", nameof(WhenSchemaIncompatible));
        if (!Enum.IsDefined(WhenSlotLost))
            throw new ArgumentException($"DBSyncOptions.WhenSlotLost must be SlotLost.Fail or SlotLost.StartOver (was {(int)WhenSlotLost}).", nameof(WhenSlotLost));
        if (ReconnectDelay <= TimeSpan.Zero || MaxReconnectDelay < ReconnectDelay)
            throw new ArgumentException($"DBSyncOptions.ReconnectDelay must be positive and at most MaxReconnectDelay (were {ReconnectDelay} and {MaxReconnectDelay}).", nameof(ReconnectDelay));
        if (StreamingMemoryLimit < 0)
            throw new ArgumentException($"DBSyncOptions.StreamingMemoryLimit cannot be negative (was {StreamingMemoryLimit}); 0 spills every streamed transaction to disk.", nameof(StreamingMemoryLimit));
        if (HandlerMaxAttempts < 1)
            throw new ArgumentException($"DBSyncOptions.HandlerMaxAttempts must be at least 1 (was {HandlerMaxAttempts}).", nameof(HandlerMaxAttempts));
        if (HandlerRetryDelay <= TimeSpan.Zero || MaxHandlerRetryDelay < HandlerRetryDelay)
            throw new ArgumentException($"DBSyncOptions.HandlerRetryDelay must be positive and at most MaxHandlerRetryDelay (were {HandlerRetryDelay} and {MaxHandlerRetryDelay}).", nameof(HandlerRetryDelay));
        if (HeartbeatInterval is { } heartbeat && heartbeat <= TimeSpan.Zero)
            throw new ArgumentException($"DBSyncOptions.HeartbeatInterval must be positive (was {heartbeat}); leave it null for no heartbeats.", nameof(HeartbeatInterval));
        if (ReceiveTimeout <= TimeSpan.Zero)
            throw new ArgumentException($"DBSyncOptions.ReceiveTimeout must be positive (was {ReceiveTimeout}).", nameof(ReceiveTimeout));
        if (ReceiveBatchDelay < TimeSpan.Zero || ReceiveBatchDelay > TimeSpan.FromMilliseconds(100))
            throw new ArgumentException($"DBSyncOptions.ReceiveBatchDelay must be between zero and 100 ms (was {ReceiveBatchDelay}).", nameof(ReceiveBatchDelay));
        if (!Enum.IsDefined(ReplicationTransport))
            throw new ArgumentException($"DBSyncOptions.ReplicationTransport {ReplicationTransport} is not one of Auto, Direct, Npgsql.", nameof(ReplicationTransport));
        if (MaxMessageSize is < 1 << 20 or > DefaultMaxMessageSize)
            throw new ArgumentException($"DBSyncOptions.MaxMessageSize must be between 1 MiB (1048576) and 1 GiB (1073741824) bytes (was {MaxMessageSize}).", nameof(MaxMessageSize));
        if (IdleConfirmInterval <= TimeSpan.Zero)
            throw new ArgumentException($"DBSyncOptions.IdleConfirmInterval must be positive (was {IdleConfirmInterval}).", nameof(IdleConfirmInterval));
    }

    /// <summary>Several hosts (a cluster's servers, Host=a,b) serve DBSync only when Npgsql picks the primary among them.</summary>
    private static void ValidateHosts(string connectionString)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException)
        {
            return; // reported when it is used, by Npgsql
        }
        if (!Replication.Transport.ReplicationHost.ListsSeveral(builder))
            return;
        var attributes = builder.TargetSessionAttributes ?? Environment.GetEnvironmentVariable("PGTARGETSESSIONATTRS");
        if (string.Equals(attributes, "primary", StringComparison.OrdinalIgnoreCase) || string.Equals(attributes, "read-write", StringComparison.OrdinalIgnoreCase))
            return;
        throw new ArgumentException(
            $"DBSyncOptions.ConnectionString lists several hosts ({builder.Host}) with Target Session Attributes={attributes ?? "any (the default)"}, " +
            "so a connection could reach a standby: DBSync streams from the primary. Add Target Session Attributes=primary to the connection string, " +
            "so that each connection goes to the server that is the primary at that moment (after a failover, the promoted standby).",
            nameof(ConnectionString));
    }

    // Slot names may only hold [a-z0-9_]; publication names are passed unquoted to pgoutput, which folds them to lower
    // case, so the same rule keeps both unambiguous and safe to splice into replication commands.
    private static void ValidateName(string value, string option)
    {
        if (!NamePattern().IsMatch(value ?? ""))
        {
            throw new ArgumentException(
                $"DBSyncOptions.{option} '{value}' is not valid: use 1 to 63 lower-case letters, digits and underscores, starting with a letter or underscore (for example 'orders_sync').",
                option);
        }
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    [GeneratedRegex("^([a-z_][a-z0-9_]{0,62}\\.)?[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex SignalTablePattern();

    /// <summary>The signal table as (schema, name), or null.</summary>
    internal (string Schema, string Name)? SignalTableName
        => SignalTable is null ? null : SignalTable.Contains('.', StringComparison.Ordinal)
            ? (SignalTable[..SignalTable.IndexOf('.', StringComparison.Ordinal)], SignalTable[(SignalTable.IndexOf('.', StringComparison.Ordinal) + 1)..])
            : ("public", SignalTable);
}

/// <summary>What a run does when its replication slot is streaming to another consumer (<see cref="DBSyncOptions.WhenSlotInUse"/>).</summary>
public enum SlotInUse
{
    /// <summary><see cref="DBSyncClient.RunAsync"/> fails with a <see cref="DBSyncConfigurationException"/>.</summary>
    Fail,

    /// <summary>The run stands by and streams once the slot is free.</summary>
    Wait,
}

/// <summary>What a run does when its slot is gone but the checkpoint shows it had streamed (<see cref="DBSyncOptions.WhenSlotLost"/>).</summary>
public enum SlotLost
{
    /// <summary><see cref="DBSyncClient.RunAsync"/> fails with a <see cref="SlotLostException"/> that says how to recover.</summary>
    Fail,

    /// <summary>A new slot, a full snapshot of every registered table, and <see cref="SlotStartedOver"/> to the progress handlers.</summary>
    StartOver,
}

/// <summary>What a DDL statement that leaves a mapped table in a shape its type cannot hold does
/// (<see cref="DBSyncOptions.WhenSchemaIncompatible"/>).</summary>
public enum SchemaIncompatible
{
    /// <summary>The stream stops at the statement with a <see cref="SchemaMismatchException"/>.</summary>
    Stop,

    /// <summary>The run carries on without the table.</summary>
    SkipTable,
}
