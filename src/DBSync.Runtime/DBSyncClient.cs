using System.Diagnostics;
using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Replication;
using DBSync.Snapshots;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace DBSync;

/// <summary>
/// Streams typed changes of the registered tables from a PostgreSQL logical replication slot.
/// </summary>
/// <remarks>
/// Register handlers with <see cref="On{T}(Func{Change{T}, CancellationToken, ValueTask})"/> and friends, then call
/// <see cref="RunAsync"/>. Handlers run one at a time, in commit order. Delivery is at-least-once: the position confirmed
/// to the server covers only transactions whose handlers (row handlers, then transaction handlers) all completed, so after
/// a crash or a handler failure the unconfirmed transactions are delivered again, whole.
/// </remarks>
public sealed class DBSyncClient : IChangeSource
{
    private readonly DBSyncOptions _options;
    private readonly Dictionary<(string Schema, string Name), TableRegistration> _tables = [];
    private readonly List<Func<CommittedTransaction, CancellationToken, ValueTask>> _transactionHandlers = [];
    private readonly List<Func<LogicalMessage, CancellationToken, ValueTask>> _messageHandlers = [];
    private readonly List<Func<SchemaChange, CancellationToken, ValueTask>> _schemaHandlers = [];
    private readonly List<Func<SnapshotProgress, CancellationToken, ValueTask>> _progressHandlers = [];
    private readonly List<ICommitGroupSink> _appliers = [];
    private readonly List<ITransactionParticipant> _participants = [];
    private readonly List<Action> _beforeRun = [];
    private readonly ILogger _logger;
    private readonly SnapshotCoordinator _snapshots;
    private readonly PartitionWatcher _partitions;
    private readonly HandlerInvoker _invoker;
    private readonly PipelineTelemetry _telemetry;
    private readonly ConnectionPool _connections;
    private readonly ConnectionPool _snapshotConnections;
    private TaskCompletionSource _streaming = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ReplicationSession? _session;
    private RunControl? _control;
    private int _running;
    private int _role;

    /// <summary>Creates a client. Nothing connects until <see cref="RunAsync"/>.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    public DBSyncClient(DBSyncOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("DBSync");
        _invoker = new HandlerInvoker(options, _logger);
        _telemetry = new PipelineTelemetry(options.SlotName);
        _telemetry.Role = () => Role;
        if (options.SignalTableName is var (schema, name))
            _tables.Add((schema, name), new SignalRegistration(schema, name));
        _connections = new ConnectionPool(options.ConnectionString);
        // Text-format snapshot results (DBSyncOptions.TextFormat) need the stream connection's session settings.
        _snapshotConnections = options.TextFormat ? new ConnectionPool(ReplicationSetup.AppendServerOptions(options.ConnectionString)) : _connections;
        _snapshots = new SnapshotCoordinator(options, _tables, _progressHandlers, () => (ulong)ConfirmedLsn, _snapshotConnections,
            options.CheckpointStore ?? new PostgresCheckpointStore(_connections), _logger, () => _session?.StreamingPid,
            (walSender, refused) => _session?.EndStreamOf(walSender, refused));
        _telemetry.Snapshots = _snapshots;
        _partitions = new PartitionWatcher(options, _connections, _tables, _snapshots.RequestAsync, _snapshots.RequestDeletesOfRowsThatLeft,
            _snapshots.TakeRestoredPartitions, _snapshots.RecordPartitions, _logger);
    }

    internal SnapshotCoordinator Snapshots => _snapshots;

    /// <summary>Partitions attached, detached and truncated under the mapped partitioned tables (its Changed event).</summary>
    internal PartitionWatcher Partitions => _partitions;

    internal DBSyncOptions Options => _options;

    /// <summary>An applier (or another sink, such as the JetStream publisher) that may hold source transactions until a
    /// commit of its own; they are confirmed only after it.</summary>
    internal void AddApplier(ICommitGroupSink applier)
    {
        ThrowIfRunning();
        _appliers.Add(applier);
    }

    string IChangeSource.Description => $"slot \"{_options.SlotName}\"";

    bool IChangeSource.RetriesFailedChange => _options.HandlerFailure == HandlerFailurePolicy.Retry;

    void IChangeSource.AddHandler<T>(Func<Change<T>, CancellationToken, ValueTask> handler) => On(handler);

    void IChangeSource.AddSink(ICommitGroupSink sink) => AddApplier(sink);

    /// <summary>Runs <paramref name="action"/> at the start of every <see cref="RunAsync"/>, while handlers may still be
    /// added: how a sink that takes every mapped table (the JetStream publisher) adds its handlers for the tables mapped
    /// after it was created.</summary>
    internal void BeforeRun(Action action)
    {
        ThrowIfRunning();
        _beforeRun.Add(action);
    }

    /// <summary>Calls <paramref name="visitor"/> with the entity type of every mapped table.</summary>
    internal void VisitTables(ITableVisitor visitor)
    {
        foreach (var registration in _tables.Values.ToArray())
            registration.Accept(visitor);
    }

    /// <summary>State kept per transaction outside the stream (the hosting package's DI scope), ended after the
    /// transaction handlers and reset when a session starts and when the run ends.</summary>
    internal void AddParticipant(ITransactionParticipant participant)
    {
        ThrowIfRunning();
        _participants.Add(participant);
    }

    /// <summary>
    /// Completes when the publication and slot exist and the stream has started: every change committed after this point
    /// is delivered. Faults if <see cref="RunAsync"/> fails before that. Each run of <see cref="RunAsync"/> has its own.
    /// </summary>
    public Task Streaming => _streaming.Task;

    /// <summary>
    /// Completes when the run of <see cref="RunAsync"/> streams (as <see cref="Streaming"/>) or stands by because another
    /// consumer holds the slot (<see cref="SlotInUse.Wait"/>): it got past its setup. Faults as <see cref="Streaming"/>
    /// does. What a host waits for before its other services start.
    /// </summary>
    public Task Started => _started.Task;

    /// <summary>The last position confirmed to the server (the end of the last fully handled transaction, or a later
    /// keepalive position while idle). A restart resumes after it.</summary>
    public NpgsqlLogSequenceNumber ConfirmedLsn => _session?.ConfirmedLsn ?? default;

    /// <summary>What this instance does now: <see cref="DBSyncRole.Active"/> while it streams from the slot,
    /// <see cref="DBSyncRole.Standby"/> while another consumer holds it (<see cref="DBSyncOptions.WhenSlotInUse"/>).</summary>
    /// <remarks>A stream that has ended (its connection lost: a silent network, a killed server) is no longer
    /// <c>Active</c> while the run checks that its walsender let go of the slot and reconnects.</remarks>
    public DBSyncRole Role
        => (DBSyncRole)Volatile.Read(ref _role) is var role && role == DBSyncRole.Active && _session?.StreamingPid is null ? DBSyncRole.Starting : role;

    /// <summary>Adds a handler for changes of the table mapped by <typeparamref name="T"/>.</summary>
    public DBSyncClient On<T>(Func<Change<T>, CancellationToken, ValueTask> handler) where T : ISyncTable<T>
    {
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfRunning();
        var table = T.TableInfo;
        if (!_tables.TryGetValue((table.Schema, table.Name), out var registration))
        {
            registration = new TableRegistration<T>(_invoker, _telemetry);
            _tables.Add((table.Schema, table.Name), registration);
        }

        if (registration is SignalRegistration)
            throw new InvalidOperationException($"Table {table.DisplayName} is the signal table (DBSyncOptions.SignalTable); it cannot be mapped by {typeof(T).Name}.");
        if (registration is not TableRegistration<T> typed)
        {
            throw new InvalidOperationException(
                $"Table {table.DisplayName} is already mapped by {registration.Table.EntityType.FullName}; map each table with one type.");
        }

        typed.Add(handler);
        return this;
    }

    /// <summary>Adds a synchronous handler for changes of the table mapped by <typeparamref name="T"/>.</summary>
    public DBSyncClient On<T>(Action<Change<T>> handler) where T : ISyncTable<T>
    {
        ArgumentNullException.ThrowIfNull(handler);
        return On<T>((change, _) =>
        {
            handler(change);
            return ValueTask.CompletedTask;
        });
    }

    /// <summary>Adds a handler called once per transaction, after the row handlers of all its changes completed.</summary>
    public DBSyncClient OnTransaction(Func<CommittedTransaction, CancellationToken, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfRunning();
        _transactionHandlers.Add(handler);
        return this;
    }

    /// <summary>Adds a handler for logical decoding messages (<c>pg_logical_emit_message</c>), in stream order.</summary>
    public DBSyncClient OnMessage(Func<LogicalMessage, CancellationToken, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfRunning();
        _messageHandlers.Add(handler);
        return this;
    }

    /// <summary>
    /// Adds a handler for schema changes (DDL statements), at their place among the row changes, in commit order, under
    /// the same at-least-once and confirmation rules. Needs <see cref="DBSyncOptions.CaptureSchemaChanges"/>.
    /// </summary>
    public DBSyncClient OnSchemaChange(Func<SchemaChange, CancellationToken, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfRunning();
        if (!_options.CaptureSchemaChanges)
            throw new InvalidOperationException("Schema change handlers need DBSyncOptions.CaptureSchemaChanges = true: without the DDL capture trigger the stream carries no DDL.");
        _schemaHandlers.Add(handler);
        return this;
    }

    /// <summary>Adds a synchronous handler for schema changes (see <see cref="OnSchemaChange(Func{SchemaChange, CancellationToken, ValueTask})"/>).</summary>
    public DBSyncClient OnSchemaChange(Action<SchemaChange> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return OnSchemaChange((change, _) =>
        {
            handler(change);
            return ValueTask.CompletedTask;
        });
    }

    /// <summary>Adds a handler for snapshot progress notifications (<see cref="SnapshotTableStarted"/>,
    /// <see cref="SnapshotChunkCompleted"/>, <see cref="SnapshotTableCompleted"/>, ...), called one at a time, in order.</summary>
    public DBSyncClient OnSnapshotProgress(Func<SnapshotProgress, CancellationToken, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfRunning();
        _progressHandlers.Add(handler);
        return this;
    }

    /// <summary>Adds a synchronous handler for snapshot progress notifications.</summary>
    public DBSyncClient OnSnapshotProgress(Action<SnapshotProgress> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return OnSnapshotProgress((progress, _) =>
        {
            handler(progress);
            return ValueTask.CompletedTask;
        });
    }

    /// <summary>
    /// Captures the current state of the table mapped by <typeparamref name="T"/> while the stream runs: every row is
    /// delivered as a <see cref="ChangeKind.Read"/> change, in chunks by primary key interleaved with the stream
    /// (Netflix DBLog's watermark algorithm), so applying all changes in order converges to the source. No locks; writes
    /// continue. Snapshots run one table at a time, in request order, while <see cref="RunAsync"/> runs; progress is
    /// checkpointed after every chunk, so after a restart the snapshot continues where it stopped.
    /// </summary>
    /// <param name="cancellationToken">Cancels the snapshot: before it starts, or between chunks (rows already delivered
    /// stay delivered; the stream goes on).</param>
    /// <returns>A task that completes when every row of the table has been delivered (in this process).</returns>
    public Task SnapshotAsync<T>(CancellationToken cancellationToken = default) where T : ISyncTable<T>
    {
        var table = T.TableInfo;
        if (!_tables.TryGetValue((table.Schema, table.Name), out var registration) || registration is not TableRegistration<T>)
            throw new InvalidOperationException($"Register a handler with On<{typeof(T).Name}>(...) before requesting a snapshot of {table.DisplayName}.");
        return _snapshots.RequestAsync([SnapshotTable.Of<T>()], cancellationToken);
    }

    /// <summary>
    /// Queues snapshots of several tables, each optionally with a filter or a surrogate chunk key. A table listed twice is
    /// snapshotted once; a table that no registered type maps, or that does not exist, is reported
    /// (<see cref="SnapshotTableSkipped"/>, and a log warning) and skipped.
    /// </summary>
    /// <returns>A task that completes when every listed table is done or skipped; it faults if one failed (a bad filter,
    /// for example) and is cancelled if one was cancelled.</returns>
    public Task SnapshotAsync(IEnumerable<SnapshotTable> tables, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tables);
        return _snapshots.RequestAsync(tables, cancellationToken);
    }

    /// <summary>Pauses snapshots after the chunk in flight; the stream goes on. Persisted: a restart stays paused.</summary>
    public void PauseSnapshots() => _snapshots.Pause();

    /// <summary>Resumes paused snapshots where they stopped.</summary>
    public void ResumeSnapshots() => _snapshots.Resume();

    /// <summary>Cancels the snapshots of <paramref name="tables"/> (<c>name</c> or <c>schema.name</c>), or all when none
    /// is given; a chunk in flight is abandoned, rows already delivered stay delivered.</summary>
    public void CancelSnapshots(params string[] tables) => _snapshots.Cancel(tables ?? []);

    /// <summary>
    /// Checks the database, creates the publication and slot if missing, and streams changes to the handlers until
    /// <paramref name="cancellationToken"/> is cancelled or <see cref="StopAsync"/> is called. On cancellation the stream
    /// stops after the change in hand (its handlers see the cancelled token; a transaction cut off is delivered again on
    /// the next run), the confirmed position is sent to the server, and the method returns normally; a stop during setup
    /// surfaces as an <see cref="OperationCanceledException"/>. <see cref="StopAsync"/> finishes the transaction first.
    /// </summary>
    /// <exception cref="DBSyncConfigurationException">The database is not ready for change capture; the message says how to fix it.</exception>
    /// <exception cref="SchemaMismatchException">A mapped column disappeared or changed to an incompatible type.</exception>
    /// <exception cref="DecodeException">A value does not fit its property.</exception>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _running) == 0)
        {
            foreach (var action in _beforeRun)
                action();
        }
        if (!_tables.Values.Any(t => t is not SignalRegistration))
            throw new InvalidOperationException("No table is registered. Call On<T>(...) for at least one [SyncTable] type before RunAsync.");
        if (Interlocked.Exchange(ref _running, 1) == 1)
            throw new InvalidOperationException("RunAsync is already running on this client.");

        _session = null; // the last run's, if any: its position is no start for this one
        if (_streaming.Task.IsCompleted)
            _streaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_started.Task.IsCompleted)
            _started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var control = new RunControl(cancellationToken);
        Volatile.Write(ref _control, control);
        var stopping = control.Stopping;
        Telemetry.Register(_telemetry);
        try
        {
            SetRole(DBSyncRole.Starting);
            var tables = _tables.Values.Select(r => r.Table).ToArray();
            var connection = new NpgsqlConnectionStringBuilder(_options.ConnectionString);
            Log.Starting(_logger, _options.SlotName, _options.PublicationName, connection.Host, connection.Port, connection.Database, connection.Username,
                string.Join(", ", tables.Select(t => t.DisplayName)));
            var server = await PrepareAsync(tables, stopping).ConfigureAwait(false);
            if (_options.SnapshotOnStart)
                await _snapshots.QueueEveryTableFromTheStartAsync(stopping).ConfigureAwait(false);

            // One session per connection; a lost connection starts the next from the confirmed position.
            var failures = 0;
            var startedBefore = false; // a session streamed, or the run stood by: the setup is behind it
            while (true)
            {
                var streamed = false;
                try
                {
                    await RunSessionAsync(server, reconnecting: failures > 0, () => streamed = startedBefore = true, control).ConfigureAwait(false);
                    return;
                }
                catch (StreamInterruptedException) when (stopping.IsCancellationRequested)
                {
                    return; // stopping anyway; what was confirmed stays confirmed, the rest comes again next run
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested && startedBefore)
                {
                    return; // stopped while the next session connected (after a lost connection, or leaving a stand-by)
                }
                catch (SlotLostException) when (_options.WhenSlotLost == SlotLost.StartOver && !stopping.IsCancellationRequested)
                {
                    // The slot vanished or was invalidated while streaming: the setup again, which replaces it and queues a
                    // full snapshot (SlotStartedOver to the progress handlers, log event 2032).
                    ClearConnectionPools();
                    server = await PrepareAsync(tables, stopping).ConfigureAwait(false);
                    failures = 0;
                }
                catch (SlotHeldException)
                {
                    // Another consumer streams from the slot: stand by until it is free, then try again at once.
                    failures = 0;
                    startedBefore = true;
                    if (await StandByAsync(server, stopping).ConfigureAwait(false) is not { } free)
                        return; // stopped while standing by
                    server = free;
                }
                catch (StreamInterruptedException e)
                {
                    SetRole(DBSyncRole.Starting); // reconnecting
                    failures = streamed && !e.Repeated ? 1 : failures + 1;
                    // A sink (the JetStream publisher) can interrupt the first session before it streamed: no session yet.
                    server = server with { SlotStart = _session?.ConfirmedLsn ?? server.SlotStart };
                    var delay = ReconnectDelay(failures);
                    Telemetry.Reconnects.Add(1, _telemetry.SlotTags);
                    Log.StreamInterrupted(_logger, e.InnerException ?? e, _options.SlotName, server.SlotStart.ToString(), (long)delay.TotalMilliseconds, failures);
                    // Pooled connections to a restarted server are dead; the next ones are opened afresh. Only DBSync's own
                    // pools are cleared: the application's connections are none of its business.
                    ClearConnectionPools();
                    try
                    {
                        await Task.Delay(delay, stopping).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        return; // stopped while waiting to reconnect
                    }
                }
            }
        }
        catch (Exception e)
        {
            _streaming.TrySetException(e);
            _started.TrySetException(e);
            throw;
        }
        finally
        {
            _snapshots.SuspendWaiters(); // no SnapshotAsync task outlives the run: they continue on the next one
            await _snapshots.ReleaseAsync().ConfigureAwait(false);
            // No connection of DBSync's, nor its pools' timers, outlives the run (the next run opens new ones).
            await _connections.DisposeAsync().ConfigureAwait(false);
            await _snapshotConnections.DisposeAsync().ConfigureAwait(false);
            await ResetParticipantsAsync().ConfigureAwait(false);
            Telemetry.Unregister(_telemetry);
            _telemetry.Session = null;
            SetRole(DBSyncRole.Stopped);
            _streaming.TrySetCanceled(CancellationToken.None);
            _started.TrySetCanceled(CancellationToken.None);
            Interlocked.CompareExchange(ref _control, null, control);
            control.Dispose();
            Volatile.Write(ref _running, 0);
        }
    }

    /// <summary>
    /// Stops <see cref="RunAsync"/> gracefully and waits until it has returned: the transaction being delivered is
    /// finished (its handlers keep a token that is not cancelled), its position is confirmed to the server, and the
    /// stream ends. Does nothing when RunAsync is not running.
    /// </summary>
    /// <param name="cancellationToken">When cancelled before RunAsync has returned, the stop is no longer graceful: the
    /// token the handlers received is cancelled (as cancelling RunAsync's own token does), the transaction they give up is
    /// delivered again on the next run, and this method throws <see cref="OperationCanceledException"/>.</param>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _control) is not { } control)
            return;
        Log.StopRequested(_logger, _options.SlotName);
        control.RequestStop();
        try
        {
            await control.Ended.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Not a registration on the token: the wait's own callback may run first and unwind past it.
            Log.StopAborted(_logger, _options.SlotName);
            control.Abort();
            throw;
        }
    }

    /// <summary>Capped exponential backoff with jitter: ReconnectDelay, doubled per failure, at most MaxReconnectDelay.</summary>
    private TimeSpan ReconnectDelay(int failures) => Backoff.Delay(_options.ReconnectDelay, _options.MaxReconnectDelay, failures);

    /// <summary>The publication and slot, checked or created; the snapshot checkpoint of a slot that existed, loaded.</summary>
    private async Task<ServerInfo> PrepareAsync(IReadOnlyList<SyncTableInfo> tables, CancellationToken stopping)
    {
        var server = await ReplicationSetup.PrepareAsync(_options, _connections, tables, _logger, _snapshots.PrepareNewSlotAsync, stopping).ConfigureAwait(false);
        foreach (var registration in _tables.Values)
            registration.Types = server.Types;
        _snapshots.ServerVersionNum = server.VersionNum;
        if (server.SlotCreated)
            await _snapshots.RecordSlotCreatedAsync((ulong)server.SlotStart, stopping).ConfigureAwait(false);
        else
            await _snapshots.LoadAsync(stopping).ConfigureAwait(false);
        return server;
    }

    /// <summary>One replication session, with the snapshot loop beside it for as long as it streams.</summary>
    private async Task RunSessionAsync(ServerInfo server, bool reconnecting, Action streamed, RunControl control)
    {
        using var snapshotsStop = new CancellationTokenSource();
        var snapshots = Task.CompletedTask;
        try
        {
            foreach (var applier in _appliers)
                await applier.OnSessionStartAsync(control.Stopping).ConfigureAwait(false);
            await ResetParticipantsAsync().ConfigureAwait(false);
            var schema = _options.CaptureSchemaChanges ? new Schema.SchemaFollower(_options, _connections, _tables, _schemaHandlers, _invoker, _snapshots.Cancel, _logger) : null;
            _session = new ReplicationSession(_options, _connections, _tables, _transactionHandlers, _messageHandlers, _appliers, _participants, _invoker, _snapshots, _telemetry, _logger,
                _partitions, schema);
            _telemetry.Session = _session;
            await _session.RunAsync(server, reconnecting, () =>
            {
                streamed();
                if (Role == DBSyncRole.Standby)
                {
                    Log.TookOver(_logger, _options.SlotName, Stopwatch.GetElapsedTime(_standingBySince).TotalSeconds, server.SlotStart.ToString());
                    reconnecting = false;
                }
                SetRole(DBSyncRole.Active);
                if (reconnecting)
                    Log.StreamResumed(_logger, _options.SlotName);
                snapshots = _snapshots.RunAsync(snapshotsStop.Token);
                _streaming.TrySetResult();
                _started.TrySetResult();
            }, control.Aborting, control.Stopping).ConfigureAwait(false);
        }
        finally
        {
            // Snapshot work needs the stream; it stops with it. The chunk in flight is read again by the next session;
            // requests still queued wait for it.
            await snapshotsStop.CancelAsync().ConfigureAwait(false);
            try
            {
                await snapshots.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            catch (SlotNotHeldException)
            {
                // A save the fence refused as the stream ended (the walsender let go of the slot first): the queue stays
                // unsaved, and the next stream saves it.
            }
        }
    }

    private long _standingBySince;

    private void SetRole(DBSyncRole role) => Volatile.Write(ref _role, (int)role);

    /// <summary>
    /// The slot streams to another consumer: logs once who holds it, then looks every <see cref="DBSyncOptions.StandbyPollInterval"/>
    /// whether it is free (or gone: the next session then says so). Returns where to stream from (the position the other
    /// consumer confirmed), with the snapshot checkpoint it left loaded; null when the run was stopped meanwhile.
    /// </summary>
    private async Task<ServerInfo?> StandByAsync(ServerInfo server, CancellationToken stopping)
    {
        if (Role != DBSyncRole.Standby)
        {
            _standingBySince = Stopwatch.GetTimestamp();
            SetRole(DBSyncRole.Standby);
            Log.StandingBy(_logger, _options.SlotName, await DescribeSlotHolderAsync(stopping).ConfigureAwait(false), (long)_options.StandbyPollInterval.TotalMilliseconds);
            _started.TrySetResult();
        }
        try
        {
            while (true)
            {
                await Task.Delay(_options.StandbyPollInterval, stopping).ConfigureAwait(false);
                NpgsqlLogSequenceNumber? free;
                try
                {
                    free = await FreeSlotPositionAsync(stopping).ConfigureAwait(false);
                }
                catch (Exception e) when (ConnectionLoss.Is(e) && !stopping.IsCancellationRequested)
                {
                    _connections.Clear(); // the server went away meanwhile: keep looking
                    continue;
                }
                if (free is not { } confirmed)
                    continue;
                if (confirmed > server.SlotStart)
                    server = server with { SlotStart = confirmed };
                await _snapshots.LoadAsync(stopping, takingOver: true).ConfigureAwait(false);
                return server;
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>The slot's confirmed position when no walsender streams from it (or it is gone); null while one does.</summary>
    private async Task<NpgsqlLogSequenceNumber?> FreeSlotPositionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ReplicationSlot.ReadAsync(connection, _options.SlotName, cancellationToken).ConfigureAwait(false) switch
        {
            null => default(NpgsqlLogSequenceNumber), // gone: the next session reports it
            { Active: true } => null,
            var slot => slot.ConfirmedFlush ?? default,
        };
    }

    /// <summary>Who streams from the slot, for the log.</summary>
    private async Task<string> DescribeSlotHolderAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
            return await ReplicationSlot.ReadAsync(connection, _options.SlotName, cancellationToken).ConfigureAwait(false) is { } slot
                ? slot.DescribeHolder()
                : "a consumer that has just let go of it";
        }
        catch (Exception e) when (e is NpgsqlException && !cancellationToken.IsCancellationRequested)
        {
            return $"another consumer (not described: {e.Message})";
        }
    }

    private void ClearConnectionPools()
    {
        _connections.Clear();
        _snapshotConnections.Clear();
    }

    private async Task ResetParticipantsAsync()
    {
        foreach (var participant in _participants)
            await participant.ResetAsync().ConfigureAwait(false);
    }

    private void ThrowIfRunning()
    {
        if (Volatile.Read(ref _running) == 1)
            throw new InvalidOperationException("Handlers must be registered before RunAsync starts.");
    }
}

/// <summary>What a <see cref="DBSyncClient"/> does now (<see cref="DBSyncClient.Role"/>).</summary>
public enum DBSyncRole
{
    /// <summary><see cref="DBSyncClient.RunAsync"/> is not running.</summary>
    Stopped,

    /// <summary>The run prepares the database and connects, or reconnects after a lost connection.</summary>
    Starting,

    /// <summary>The run streams from the slot and delivers.</summary>
    Active,

    /// <summary>Another consumer streams from the slot; the run waits to take it over (<see cref="SlotInUse.Wait"/>).</summary>
    Standby,
}
