using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Mapping;
using DBSync.Protocol;
using DBSync.Replication.Transport;
using DBSync.Snapshots;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// One run of the stream: a replication connection, raw pgoutput frames decoded in order, typed changes delivered to the
/// handlers one at a time, and the confirmed position advanced only past transactions whose handlers completed.
/// </summary>
internal sealed class ReplicationSession
{
    private const string ObjectInUse = "55006";
    private const string UndefinedObject = "42704";
    private const string ObjectNotInPrerequisiteState = "55000";

    private readonly DBSyncOptions _options;
    private readonly ConnectionPool _connections;
    private readonly IReadOnlyDictionary<(string Schema, string Name), TableRegistration> _tables;
    private readonly IReadOnlyList<Func<CommittedTransaction, CancellationToken, ValueTask>> _transactionHandlers;
    private readonly IReadOnlyList<Func<LogicalMessage, CancellationToken, ValueTask>> _messageHandlers;
    private readonly ILogger _logger;
    private readonly HandlerInvoker _invoker;
    private readonly IReadOnlyList<PostgresApplier> _appliers;
    private readonly IReadOnlyList<ITransactionParticipant> _participants;
    private readonly SnapshotCoordinator _snapshots;
    private readonly PartitionWatcher _partitions;
    private readonly PipelineTelemetry _telemetry;
    private readonly byte[] _watermarkPrefix;
    private readonly Dictionary<uint, RelationState> _relations = [];
    private readonly Dictionary<uint, string> _typeNames = [];
    private readonly SignalRegistration? _signals;
    private readonly CancellationTokenSource _readCancellation = new();
    private byte[] _replayBuffer = [];
    private readonly StreamedTransactions _streams;
    private IReplicationTransport? _transport;
    private bool _reconnecting;

    // Transaction state: only the read loop touches it.
    private bool _inTransaction;
    private TransactionContext _transaction;
    private readonly ChangeCounter _changes = new();
    private string? _origin;
    private bool _internalTransaction;
    private StreamedTransactions.Transaction? _streamBlock;
    private Activity? _activity;
    private Activity? _activityParent;

    // Shared with the idle timer, the stop callback and the metrics' observers.
    private volatile bool _idle;
    private volatile bool _stopRequested;
    private long _framesReceived;
    private readonly ConfirmedPosition _confirmed = new();
    private long _deliveringCommitTicks;
    private long _serverWalEnd;

    public ReplicationSession(
        DBSyncOptions options,
        ConnectionPool connections,
        IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables,
        IReadOnlyList<Func<CommittedTransaction, CancellationToken, ValueTask>> transactionHandlers,
        IReadOnlyList<Func<LogicalMessage, CancellationToken, ValueTask>> messageHandlers,
        IReadOnlyList<PostgresApplier> appliers,
        IReadOnlyList<ITransactionParticipant> participants,
        HandlerInvoker invoker,
        SnapshotCoordinator snapshots,
        PipelineTelemetry telemetry,
        ILogger logger,
        PartitionWatcher partitions)
    {
        _partitions = partitions;
        _invoker = invoker;
        _telemetry = telemetry;
        _appliers = appliers;
        _participants = participants;
        _snapshots = snapshots;
        _watermarkPrefix = Encoding.UTF8.GetBytes(snapshots.Prefix);
        _options = options;
        _connections = connections;
        _tables = tables;
        _transactionHandlers = transactionHandlers;
        _messageHandlers = messageHandlers;
        _logger = logger;
        _signals = tables.Values.OfType<SignalRegistration>().FirstOrDefault();
        _streams = new StreamedTransactions(options.StreamingMemoryLimit, options.StreamingSpillDirectory ?? Path.GetTempPath(), logger);
    }

    /// <summary>The last position confirmed to the server.</summary>
    public NpgsqlLogSequenceNumber ConfirmedLsn => new(_confirmed.Value);

    /// <summary>The server's WAL end minus the confirmed position. The WAL end is read every StatusInterval while the lag
    /// gauge has a listener (<see cref="SampleServerWalEndAsync"/>); in between, frames and keepalives received since
    /// move it (they carry how far the server decoded).</summary>
    public long LagBytes
    {
        get
        {
            var end = Math.Max(_transport?.LastReceivedLsn ?? 0, unchecked((ulong)Volatile.Read(ref _serverWalEnd)));
            var confirmed = (ulong)ConfirmedLsn;
            return end > confirmed ? (long)(end - confirmed) : 0;
        }
    }

    /// <summary>While a transaction is being delivered, the seconds since it committed (by the server's clock); else 0.</summary>
    public double DelaySeconds
    {
        get
        {
            var commitTicks = Volatile.Read(ref _deliveringCommitTicks);
            return commitTicks == 0 ? 0 : Math.Max(0, (DateTime.UtcNow.Ticks - commitTicks) / (double)TimeSpan.TicksPerSecond);
        }
    }

    /// <summary>Streams until stopped; a lost connection ends it with <see cref="StreamInterruptedException"/>.</summary>
    /// <param name="server">The server and the position to start from.</param>
    /// <param name="reconnecting">Whether an earlier session of this run lost its connection: the slot may then still
    /// be held by that session's walsender for a while, which is waited out instead of reported.</param>
    /// <param name="onStreaming">Called once the stream is started.</param>
    /// <param name="handlerCancellation">The token handlers receive: cancelled when they should give up.</param>
    /// <param name="cancellationToken">Stops the stream cleanly, after the transaction being delivered.</param>
    public async Task RunAsync(ServerInfo server, bool reconnecting, Action onStreaming, CancellationToken handlerCancellation, CancellationToken cancellationToken)
    {
        _reconnecting = reconnecting;
        var protocol = server.VersionNum >= 140000 ? 2 : 1;
        var pluginOptions = new List<KeyValuePair<string, string>>
        {
            new("proto_version", protocol.ToString(CultureInfo.InvariantCulture)),
            new("publication_names", _options.PublicationName),
        };
        if (protocol >= 2)
        {
            if (!_options.TextFormat)
                pluginOptions.Add(new("binary", "true"));
            pluginOptions.Add(new("messages", "true"));
            // Large transactions arrive while they run, in blocks, instead of being spilled by the server and sent at
            // commit; they are kept here (in memory, then in a file) until their Stream Commit.
            pluginOptions.Add(new("streaming", "on"));
        }

        AdvanceConfirmed((ulong)server.SlotStart);
        IReplicationTransport? transport = null;
        var walSender = 0;
        try
        {
            try
            {
                transport = await ReplicationTransports.OpenAsync(_options, _logger, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (ConnectionLoss.Is(e) && !cancellationToken.IsCancellationRequested)
            {
                throw new StreamInterruptedException(e);
            }
            walSender = transport.BackendPid;
            transport.SetConfirmed((ulong)ConfirmedLsn);
            _transport = transport;
            await StreamAsync(transport, protocol, pluginOptions, onStreaming, handlerCancellation, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (transport is not null)
                await transport.DisposeAsync().ConfigureAwait(false);
            if (walSender != 0)
                await ReleaseSlotAsync(walSender).ConfigureAwait(false);
        }
    }

    private async Task StreamAsync(IReplicationTransport transport, int protocol, List<KeyValuePair<string, string>> pluginOptions,
        Action onStreaming, CancellationToken handlerCancellation, CancellationToken cancellationToken)
    {
        var idleConfirmation = ConfirmWhileIdleAsync(transport, _readCancellation.Token);
        var heartbeats = HeartbeatAsync(_readCancellation.Token);
        var walEnd = SampleServerWalEndAsync(_readCancellation.Token);
        var partitionWatch = Task.CompletedTask;
        var stopRegistration = cancellationToken.Register(static state => ((ReplicationSession)state!).RequestStop(), this);
        _activityParent = Activity.Current;
        try
        {
            if (!_stopRequested)
                await ReadAsync(transport.StartAsync(_options.SlotName, (ulong)ConfirmedLsn, pluginOptions, _readCancellation.Token)).ConfigureAwait(false);
            // The partitions as they are now, before anything is reported as streaming: what changes later is seen.
            partitionWatch = await _partitions.StartAsync(() => (ulong)ConfirmedLsn, _readCancellation.Token).ConfigureAwait(false);
            Log.StreamStarted(_logger, _options.SlotName, protocol, protocol >= 2 && !_options.TextFormat ? "binary" : "text", ConfirmedLsn.ToString(), transport.Name);
            _idle = true;
            onStreaming();
            // A stop ends the loop between transactions; a graceful one (the handlers' token not cancelled) lets the
            // transaction being delivered finish first, its remaining frames being on their way. A stop requested before
            // the loop was idle found nothing to end: with no frame coming, reading on would wait forever.
            while ((!_stopRequested || FinishesTransaction(handlerCancellation)) && await ReadAsync(transport.ReadFrameAsync(_readCancellation.Token)).ConfigureAwait(false))
            {
                // A stop that found the loop idle ended the stream; frames already on their way are not started on.
                if (_stopRequested && !_inTransaction && _streamBlock is null)
                    break;
                _idle = false;
                Interlocked.Increment(ref _framesReceived);
                if (Telemetry.ReceivedBytes.Enabled)
                    Telemetry.ReceivedBytes.Add(transport.Frame.Length, _telemetry.SlotTags);
                await HandleFrameAsync(transport.Frame, transport.FrameLsn, inStream: false, handlerCancellation).ConfigureAwait(false);

                if (_inTransaction || _streamBlock is not null)
                    continue;
                // Between transactions: stop here if asked, else mark the loop idle and check once more, so a stop
                // request that saw the loop busy is not missed.
                if (_stopRequested)
                    break;
                _idle = true;
                if (_stopRequested)
                    break;
            }
            if (!_stopRequested && !_readCancellation.IsCancellationRequested)
                throw new StreamInterruptedException(new EndOfStreamException("The server ended the replication stream."));

            await FlushStatusAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopRequested || cancellationToken.IsCancellationRequested || handlerCancellation.IsCancellationRequested)
        {
            // Stopped while waiting for a frame (the stop callback already sent the confirmed position), or a handler
            // gave up on the stop's token, possibly before the stop callback ran: send the position now.
            if (Interlocked.Read(ref _framesReceived) > 0)
                await FlushStatusAsync().ConfigureAwait(false);
        }
        catch (StreamInterruptedException)
        {
            throw; // the run reconnects; what was confirmed stays confirmed
        }
        catch (PostgresException e) when (e.SqlState == ObjectInUse && _reconnecting)
        {
            // The walsender of the lost connection may hold the slot until it notices (wal_sender_timeout).
            throw new StreamInterruptedException(e);
        }
        catch (PostgresException e) when (e.SqlState == UndefinedObject || (e.SqlState == ObjectNotInPrerequisiteState && IsSlotInvalidated(e)))
        {
            var confirmed = ConfirmedLsn.ToString();
            var what = e.SqlState == UndefinedObject
                ? $"Replication slot \"{_options.SlotName}\" no longer exists: it was dropped while DBSync was using it"
                : $"Replication slot \"{_options.SlotName}\" was invalidated by the server ({e.MessageText}{(e.Detail is { } detail ? ": " + detail : "")}): it held back more WAL than max_slot_wal_keep_size allows, and the WAL it needed is gone";
            throw new SlotLostException(_options.SlotName, confirmed,
                $"{what}. Every change up to {confirmed} was delivered; changes after it may be lost. To recover, start again with a new slot " +
                $"and a full snapshot: drop the slot if it still exists (SELECT pg_drop_replication_slot('{_options.SlotName}')), delete its checkpoint, " +
                "and run with DBSyncOptions.InitialSnapshot = true (the default). To prevent it, raise max_slot_wal_keep_size or keep the consumer running.", e);
        }
        catch (PostgresException e) when (e.SqlState == ObjectInUse)
        {
            throw new DBSyncConfigurationException(
                $"Replication slot \"{_options.SlotName}\" is in use by another connection ({e.MessageText}). " +
                "A slot serves one consumer at a time: stop the other consumer, or give this one its own DBSyncOptions.SlotName.", e);
        }
        catch (Exception e)
        {
            // Transactions whose handlers completed stay confirmed; the failed one is delivered again on the next run.
            _activity?.SetStatus(ActivityStatusCode.Error, e.GetType().FullName);
            Log.StreamFailed(_logger, _options.SlotName, $"{e.GetType().Name}: {e.Message}", ConfirmedLsn.ToString());
            await FlushStatusAsync().ConfigureAwait(false);
            throw;
        }
        finally
        {
            // No stop request may reach the cancellation source or transport once they are being torn down.
            await stopRegistration.DisposeAsync().ConfigureAwait(false);
            _idle = false;
            await _readCancellation.CancelAsync().ConfigureAwait(false);
            await idleConfirmation.ConfigureAwait(false);
            await heartbeats.ConfigureAwait(false);
            await walEnd.ConfigureAwait(false);
            await partitionWatch.ConfigureAwait(false);
            _readCancellation.Dispose();
            _streams.Dispose(); // transactions not yet committed are streamed again by the next session
            _streamBlock = null;
            EndTransactionActivity(); // a transaction cut off: it is delivered again, whole, by the next session
            Volatile.Write(ref _deliveringCommitTicks, 0);
            if (_replayBuffer.Length > 0)
                ArrayPool<byte>.Shared.Return(_replayBuffer);
            _replayBuffer = [];
        }

        Log.StreamStopped(_logger, _options.SlotName, ConfirmedLsn.ToString());
    }

    /// <summary>Whether a stop waits for the transaction (or stream block) being received to end: only while the
    /// handlers may still finish it.</summary>
    private bool FinishesTransaction(CancellationToken handlerCancellation)
        => (_inTransaction || _streamBlock is not null) && !handlerCancellation.IsCancellationRequested;

    // PostgreSQL 13-15 say "cannot read from logical replication slot", 16 and later "can no longer get changes from
    // replication slot"; both explain the invalidation in the detail.
    private static bool IsSlotInvalidated(PostgresException e)
        => e.MessageText.Contains("can no longer get changes", StringComparison.Ordinal)
           || e.MessageText.Contains("cannot read from logical replication slot", StringComparison.Ordinal)
           || e.MessageText.Contains("invalidated", StringComparison.Ordinal)
           || (e.Detail?.Contains("invalidated", StringComparison.Ordinal) ?? false);

    // A server shutting down ends the COPY stream with CommandComplete, which Npgsql reports as a protocol error; any
    // client-side NpgsqlException on the replication connection leaves it unusable, so it counts as a lost connection.
    private static bool IsStreamLoss(Exception e) => ConnectionLoss.Is(e) || e is NpgsqlException and not PostgresException;

    /// <summary>A read from the replication connection: a lost connection becomes <see cref="StreamInterruptedException"/>.</summary>
    private async ValueTask<T> ReadAsync<T>(ValueTask<T> read)
    {
        try
        {
            return await read.ConfigureAwait(false);
        }
        catch (Exception e) when (IsStreamLoss(e) && !_stopRequested)
        {
            throw new StreamInterruptedException(e);
        }
    }

    private async ValueTask ReadAsync(ValueTask read)
    {
        try
        {
            await read.ConfigureAwait(false);
        }
        catch (Exception e) when (IsStreamLoss(e) && !_stopRequested)
        {
            throw new StreamInterruptedException(e);
        }
    }

    /// <summary>
    /// After the replication connection is closed, its walsender must let go of the slot so the next run can take it.
    /// A stop that cancels the START_REPLICATION handshake can leave Npgsql unable to close the socket, and the
    /// walsender then holds the slot until wal_sender_timeout; end that backend (it is this session's own). Once the
    /// slot is free, it must stand where this session confirmed: a status update sent just before the socket closed can
    /// be lost with it (a close with unread frames resets the connection, and the server drops what it had not read),
    /// so a slot found behind is advanced to the confirmed position.
    /// </summary>
    private async Task ReleaseSlotAsync(int pid)
    {
        try
        {
            await using var admin = await _connections.OpenAsync(CancellationToken.None).ConfigureAwait(false);
            var gone = false;
            for (var attempt = 0; attempt < 20 && !gone; attempt++)
            {
                await using var alive = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", admin);
                alive.Parameters.Add(new NpgsqlParameter { Value = pid });
                gone = (long)(await alive.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false))! == 0;
                if (!gone)
                    await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
            }
            if (!gone)
            {
                await using var terminate = new NpgsqlCommand("SELECT pg_terminate_backend($1)", admin);
                terminate.Parameters.Add(new NpgsqlParameter { Value = pid });
                await terminate.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
                Log.WalSenderTerminated(_logger, pid, _options.SlotName);
                return;
            }

            // Only a slot no other consumer took meanwhile, and only forward.
            await using var advance = new NpgsqlCommand(
                "SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active AND confirmed_flush_lsn < $2::pg_lsn", admin);
            advance.Parameters.Add(new NpgsqlParameter { Value = _options.SlotName });
            advance.Parameters.Add(new NpgsqlParameter { Value = ConfirmedLsn.ToString() });
            await advance.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (NpgsqlException e)
        {
            // The server is unreachable; its walsender ends with the connection or at wal_sender_timeout, and the next
            // run starts from the last position the server received (at least once).
            Log.WalSenderCheckFailed(_logger, e, pid);
        }
    }

    private void RequestStop()
    {
        _stopRequested = true;
        if (_idle)
            _ = _transport!.EndStreamAsync(flushStatus: Interlocked.Read(ref _framesReceived) > 0);
    }

    /// <summary>Sends the confirmed position now, while the connection is still streaming.</summary>
    private Task FlushStatusAsync()
    {
        _transport!.SetConfirmed((ulong)ConfirmedLsn);
        return _transport.FlushStatusAsync();
    }

    /// <summary>One pgoutput message. <paramref name="inStream"/>: a frame of a streamed transaction, replayed at its
    /// Stream Commit (its message carries the transaction id).</summary>
    private ValueTask HandleFrameAsync(ReadOnlySpan<byte> frame, ulong lsn, bool inStream, CancellationToken cancellationToken)
    {
        var kind = PgOutputParser.KindOf(frame);
        if (_streamBlock is { } block && !inStream)
        {
            // Between Stream Start and Stream Stop: a part of an in-progress transaction, kept until it commits.
            if (kind == PgOutputMessageKind.StreamStop)
            {
                PgOutputParser.ReadStreamStop(frame);
                _streamBlock = null;
            }
            else if (kind is PgOutputMessageKind.Begin or PgOutputMessageKind.Commit or PgOutputMessageKind.StreamStart
                     or PgOutputMessageKind.StreamCommit or PgOutputMessageKind.StreamAbort)
            {
                throw new ProtocolException($"pgoutput message '{(char)kind}' at {new NpgsqlLogSequenceNumber(lsn)} arrived inside the stream block of transaction {block.Xid}.");
            }
            else
            {
                block.Append(frame, lsn);
            }
            return default;
        }

        switch (kind)
        {
            case PgOutputMessageKind.Begin when !inStream:
            {
                var begin = PgOutputParser.ReadBegin(frame);
                if (_inTransaction)
                    throw new ProtocolException($"Begin of transaction {begin.Xid} at {new NpgsqlLogSequenceNumber(lsn)} arrived inside transaction {_transaction.Xid}.");
                BeginTransaction(begin.Xid, begin.FinalLsn, begin.CommitTime);
                return default;
            }
            case PgOutputMessageKind.Commit when !inStream:
            {
                var commit = PgOutputParser.ReadCommit(frame);
                RequireTransaction(kind, lsn);
                if (commit.CommitLsn != (ulong)_transaction.CommitLsn)
                {
                    throw new ProtocolException(
                        $"Commit at {new NpgsqlLogSequenceNumber(commit.CommitLsn)} does not match the Begin of transaction {_transaction.Xid} (final LSN {_transaction.CommitLsn}).");
                }
                return CompleteTransactionAsync(commit.EndLsn, cancellationToken);
            }
            case PgOutputMessageKind.StreamStart when !inStream:
            {
                var start = PgOutputParser.ReadStreamStart(frame);
                if (_inTransaction)
                    throw new ProtocolException($"Stream Start of transaction {start.Xid} at {new NpgsqlLogSequenceNumber(lsn)} arrived inside transaction {_transaction.Xid}.");
                _streamBlock = _streams.Open(start.Xid);
                return default;
            }
            case PgOutputMessageKind.StreamCommit when !inStream:
            {
                var commit = PgOutputParser.ReadStreamCommit(frame);
                if (_inTransaction)
                    throw new ProtocolException($"Stream Commit of transaction {commit.Xid} at {new NpgsqlLogSequenceNumber(lsn)} arrived inside transaction {_transaction.Xid}.");
                var streamed = _streams.Take(commit.Xid)
                    ?? throw new ProtocolException($"Stream Commit of transaction {commit.Xid} at {new NpgsqlLogSequenceNumber(lsn)}, whose changes were never streamed.");
                return ReplayAsync(streamed, commit, cancellationToken);
            }
            case PgOutputMessageKind.StreamAbort when !inStream:
            {
                var abort = PgOutputParser.ReadStreamAbort(frame);
                _streams.Abort(abort.Xid, abort.SubXid);
                return default;
            }
            case PgOutputMessageKind.Origin:
                _origin = PgOutputParser.ReadOrigin(frame).Name;
                return default;
            case PgOutputMessageKind.Relation:
                Bind(PgOutputParser.ReadRelation(frame, inStream));
                return default;
            case PgOutputMessageKind.Type:
            {
                var type = PgOutputParser.ReadType(frame, inStream);
                _typeNames[type.TypeOid] = $"{type.Namespace}.{type.Name}";
                return default;
            }
            case PgOutputMessageKind.Insert:
            {
                var insert = PgOutputParser.ReadInsert(frame, inStream);
                return IsDelivered(insert.RelationId, kind, lsn, out var relation)
                    ? relation.Registration!.OnInsertAsync(insert.NewTuple, relation.Binding!, _transaction, lsn, cancellationToken)
                    : OnUnmappedAsync(relation, frame, lsn, inStream, cancellationToken);
            }
            case PgOutputMessageKind.Update:
            {
                var update = PgOutputParser.ReadUpdate(frame, inStream);
                return IsDelivered(update.RelationId, kind, lsn, out var relation)
                    ? relation.Registration!.OnUpdateAsync(update.NewTuple, update.OldKind, update.OldTuple, relation.Binding!, _transaction, lsn, cancellationToken)
                    : OnUnmappedAsync(relation, frame, lsn, inStream, cancellationToken);
            }
            case PgOutputMessageKind.Delete:
            {
                var delete = PgOutputParser.ReadDelete(frame, inStream);
                return IsDelivered(delete.RelationId, kind, lsn, out var relation)
                    ? relation.Registration!.OnDeleteAsync(delete.OldKind, delete.OldTuple, relation.Binding!, _transaction, lsn, cancellationToken)
                    : OnUnmappedAsync(relation, frame, lsn, inStream, cancellationToken);
            }
            case PgOutputMessageKind.Truncate:
            {
                var truncate = PgOutputParser.ReadTruncate(frame, inStream);
                RequireTransaction(kind, lsn);
                return TruncateAsync(truncate.RelationIds, lsn, cancellationToken);
            }
            case PgOutputMessageKind.Message:
            {
                var message = PgOutputParser.ReadMessage(frame, inStream);
                if (message.Transactional && message.Prefix.SequenceEqual(_watermarkPrefix))
                {
                    // This pipeline's snapshot watermark or heartbeat: handled here, never shown to message or
                    // transaction handlers (the snapshot coordinator ignores what is not a watermark of its run).
                    RequireTransaction(kind, lsn);
                    _internalTransaction = true;
                    return _snapshots.OnWatermarkAsync(message.Content, _transaction, lsn, cancellationToken);
                }
                if (_messageHandlers.Count == 0)
                    return default;
                var xid = message.Transactional && _inTransaction ? _transaction.Xid : message.Xid;
                return DeliverMessageAsync(new LogicalMessage(message.Transactional, new NpgsqlLogSequenceNumber(message.Lsn),
                    Encoding.UTF8.GetString(message.Prefix), message.Content.ToArray(), xid), cancellationToken);
            }
            default:
                throw new ProtocolException(
                    $"Unexpected pgoutput message '{(char)kind}' at {new NpgsqlLogSequenceNumber(lsn)}{(inStream ? " inside a streamed transaction" : "")}: DBSync did not request two-phase decoding.");
        }
    }

    private void BeginTransaction(uint xid, ulong commitLsn, DateTime commitTime)
    {
        _inTransaction = true;
        _changes.Reset();
        _transaction = new TransactionContext(xid, new NpgsqlLogSequenceNumber(commitLsn), new DateTimeOffset(commitTime, TimeSpan.Zero), _changes);
        _origin = null;
        _internalTransaction = false;
        _signals?.Reset();
        Volatile.Write(ref _deliveringCommitTicks, commitTime.Ticks);
        if (Telemetry.Source.HasListeners())
            BeginTransactionActivity();
    }

    /// <summary>One activity per transaction, the parent of whatever the handlers trace. Each starts from the run's own
    /// context, never under the previous transaction's (which an async handler path may have left current).</summary>
    private void BeginTransactionActivity()
    {
        Activity.Current = _activityParent;
        _activity = Telemetry.Source.StartActivity(DBSyncDiagnostics.TransactionActivityName, ActivityKind.Consumer);
        if (_activity is { IsAllDataRequested: true } activity)
        {
            activity.SetTag("db.system.name", "postgresql");
            activity.SetTag(DBSyncDiagnostics.Tags.Slot, _options.SlotName);
            activity.SetTag("dbsync.xid", (long)_transaction.Xid);
            activity.SetTag("dbsync.commit_lsn", _transaction.CommitLsn.ToString());
            activity.SetTag("dbsync.commit_time", _transaction.CommitTime.ToString("O", CultureInfo.InvariantCulture));
        }
    }

    /// <summary>Ends the transaction's activity: acknowledged (with its end position) or cut off (without).</summary>
    private void EndTransactionActivity(ulong? endLsn = null)
    {
        if (_activity is not { } activity)
            return;
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("dbsync.change_count", _changes.Count);
            if (endLsn is { } end)
                activity.SetTag("dbsync.end_lsn", new NpgsqlLogSequenceNumber(end).ToString());
            if (_internalTransaction)
                activity.SetTag("dbsync.internal", true);
        }
        activity.Stop();
        _activity = null;
        Activity.Current = _activityParent;
    }

    /// <summary>A streamed transaction committed: its frames are delivered now, in order, as one transaction.</summary>
    private async ValueTask ReplayAsync(StreamedTransactions.Transaction streamed, StreamCommitMessage commit, CancellationToken cancellationToken)
    {
        using (streamed)
        {
            BeginTransaction(commit.Xid, commit.CommitLsn, commit.CommitTime);
            var reader = streamed.OpenReader();
            while (reader.TryRead(ref _replayBuffer, out var length, out var lsn))
                await HandleFrameAsync(_replayBuffer.AsSpan(0, length), lsn, inStream: true, cancellationToken).ConfigureAwait(false);
        }
        await CompleteTransactionAsync(commit.EndLsn, cancellationToken).ConfigureAwait(false);
    }

    private void RequireTransaction(PgOutputMessageKind kind, ulong lsn)
    {
        if (!_inTransaction)
            throw new ProtocolException($"pgoutput message '{(char)kind}' at {new NpgsqlLogSequenceNumber(lsn)} arrived outside a transaction.");
    }

    /// <summary>Checks a row change is inside a transaction and finds its relation; true when a handler is registered for
    /// the table (the registration numbers the change as it delivers it), false for a table that no handler maps.</summary>
    private bool IsDelivered(uint relationId, PgOutputMessageKind kind, ulong lsn, out RelationState relation)
    {
        RequireTransaction(kind, lsn);
        relation = RelationOf(relationId, kind);
        return relation.Registration is not null;
    }

    private RelationState RelationOf(uint relationId, PgOutputMessageKind kind)
        => _relations.TryGetValue(relationId, out var relation)
            ? relation
            : throw new ProtocolException($"pgoutput message '{(char)kind}' names relation oid {relationId} before any Relation message described it.");

    private void Bind(RelationMessage relation)
    {
        ColumnBinding? binding = null;
        if (_tables.TryGetValue((relation.Namespace, relation.Name), out var registration))
        {
            // Throws SchemaMismatchException when a mapped column vanished or changed to an incompatible type: the
            // stream stops before any change of the new shape is delivered or acknowledged.
            binding = ColumnBinding.Create(registration.Table, relation, _typeNames, registration.Types);
            Log.RelationBound(_logger, $"{relation.Namespace}.{relation.Name}", relation.RelationId, registration.Table.EntityType.Name);
            // A changed shape inside a snapshot window means the chunk may have been read with the old one: it is read
            // again. The first Relation message of a session cannot be compared with anything, so it counts as a change.
            if (!_relations.TryGetValue(relation.RelationId, out var previous) || !previous.Relation.Columns.AsSpan().SequenceEqual(relation.Columns))
                registration.OnShapeChanged();
        }
        _relations[relation.RelationId] = new RelationState(relation, registration, binding);
    }

    private async ValueTask TruncateAsync(uint[] relationIds, ulong lsn, CancellationToken cancellationToken)
    {
        List<RelationState>? partitions = null;
        foreach (var relationId in relationIds)
        {
            var relation = RelationOf(relationId, PgOutputMessageKind.Truncate);
            if (relation.Registration is null && !relation.Resolved)
                relation = await ResolveUnmappedAsync(relation, cancellationToken).ConfigureAwait(false);
            if (relation.Registration is null)
                continue;
            if (relation.IsPartition)
                (partitions ??= []).Add(relation);
            else
                await DeliverTruncateAsync(relation.Registration, lsn, cancellationToken).ConfigureAwait(false);
        }
        if (partitions is not null)
            await TruncatePartitionsAsync(partitions, lsn, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask DeliverTruncateAsync(TableRegistration registration, ulong lsn, CancellationToken cancellationToken)
    {
        _partitions.OnTruncated(registration.Table.DisplayName, (ulong)_transaction.CommitLsn);
        return registration.OnTruncateAsync(_transaction, lsn, cancellationToken);
    }

    /// <summary>A TRUNCATE sent under partitions' own names: all partitions of a mapped table together are a truncate of
    /// it (as a publication that sends partitions carries <c>TRUNCATE table</c>); fewer are not, and are reported.</summary>
    private async ValueTask TruncatePartitionsAsync(List<RelationState> partitions, ulong lsn, CancellationToken cancellationToken)
    {
        foreach (var group in partitions.GroupBy(p => p.Registration!))
        {
            if (_partitions.AreAllPartitionsOf(group.Key.Table, group.Select(p => p.Relation.RelationId).ToList()))
            {
                await DeliverTruncateAsync(group.Key, lsn, cancellationToken).ConfigureAwait(false);
                continue;
            }
            foreach (var partition in group)
                _partitions.OnPartitionTruncated(group.Key.Table, partition.Relation.RelationId, $"{partition.Relation.Namespace}.{partition.Relation.Name}", (ulong)_transaction.CommitLsn);
        }
    }

    /// <summary>
    /// A row change of a relation no type maps. The first one (per Relation message) asks the database what the relation
    /// is: a partition of a mapped table (its changes arrive under its own name when the publication sends partitions, as
    /// one without publish_via_partition_root did when they were written) is bound to that table and the change delivered
    /// as the table's; a partitioned table above a mapped one stops the stream; anything else is logged once and skipped.
    /// The frame is copied, since it does not outlive the lookup.
    /// </summary>
    private ValueTask OnUnmappedAsync(RelationState relation, ReadOnlySpan<byte> frame, ulong lsn, bool inStream, CancellationToken cancellationToken)
    {
        if (relation.Resolved)
            return default;
        var copy = ArrayPool<byte>.Shared.Rent(frame.Length);
        frame.CopyTo(copy);
        return ResolveAndHandleAsync(relation, copy, frame.Length, lsn, inStream, cancellationToken);
    }

    private async ValueTask ResolveAndHandleAsync(RelationState relation, byte[] frame, int length, ulong lsn, bool inStream, CancellationToken cancellationToken)
    {
        try
        {
            await ResolveUnmappedAsync(relation, cancellationToken).ConfigureAwait(false);
            await HandleFrameAsync(frame.AsSpan(0, length), lsn, inStream, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    private async ValueTask<RelationState> ResolveUnmappedAsync(RelationState state, CancellationToken cancellationToken)
    {
        var relation = state.Relation;
        var name = $"{relation.Namespace}.{relation.Name}";
        PartitionOwner? owner;
        try
        {
            owner = await _partitions.FindOwnerAsync(relation.RelationId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (ConnectionLoss.Is(e) && !cancellationToken.IsCancellationRequested)
        {
            throw new StreamInterruptedException(e);
        }

        RelationState resolved;
        if (owner is null)
        {
            Log.UnmappedRelation(_logger, _options.PublicationName, name, relation.RelationId);
            resolved = state with { Resolved = true };
        }
        else if (!owner.IsPartition)
        {
            var table = owner.Registration.Table;
            throw new DBSyncConfigurationException(
                $"Publication \"{_options.PublicationName}\" sent a change of {name} (relation oid {relation.RelationId}), a partitioned table that {table.DisplayName} " +
                $"(mapped by {table.EntityType.FullName}) is a partition of. With publish_via_partition_root the changes of {table.DisplayName} arrive as changes of " +
                $"{name}, mixed with its other partitions', so DBSync cannot deliver them as {table.EntityType.Name}: nothing after {ConfirmedLsn} is confirmed. " +
                $"Map {name} instead of {table.DisplayName} (it carries the changes of all its partitions), or remove {name} from the publication " +
                $"(ALTER PUBLICATION \"{_options.PublicationName}\" DROP TABLE ...), then start again.");
        }
        else
        {
            // Bound by name like the mapped table's own Relation: a partition has the same columns, possibly in another order.
            var binding = ColumnBinding.Create(owner.Registration.Table, relation, _typeNames, owner.Registration.Types);
            owner.Registration.OnShapeChanged();
            Log.PartitionDeliveredAsTable(_logger, name, relation.RelationId, owner.Registration.Table.DisplayName);
            resolved = state with { Registration = owner.Registration, Binding = binding, Resolved = true, IsPartition = true };
        }
        _relations[relation.RelationId] = resolved;
        return resolved;
    }

    private ValueTask DeliverMessageAsync(LogicalMessage message, CancellationToken cancellationToken)
    {
        var start = Telemetry.StartHandlers();
        return Telemetry.EndHandlers(InvokeAllAsync(_messageHandlers, message, cancellationToken), start, _telemetry.MessageHandlerTags);
    }

    private async ValueTask InvokeAllAsync<TArgument>(IReadOnlyList<Func<TArgument, CancellationToken, ValueTask>> handlers, TArgument argument, CancellationToken cancellationToken)
    {
        foreach (var handler in handlers)
            await _invoker.InvokeAsync(handler, argument, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask CompleteTransactionAsync(ulong endLsn, CancellationToken cancellationToken)
    {
        _inTransaction = false;
        _snapshots.OnCommitted(_transaction.Xid);
        if (_signals?.TakePending() is { } signals)
            return CompleteSignalTransactionAsync(signals, endLsn, cancellationToken);
        return CompleteHandledTransactionAsync(endLsn, cancellationToken);
    }

    /// <summary>Signals act (and are checkpointed) before their transaction is acknowledged: none is lost in a crash.</summary>
    private async ValueTask CompleteSignalTransactionAsync(List<Signal> signals, ulong endLsn, CancellationToken cancellationToken)
    {
        try
        {
            await _snapshots.ApplySignalsAsync(signals, (ulong)_transaction.CommitLsn, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (ConnectionLoss.Is(e) && !cancellationToken.IsCancellationRequested)
        {
            // The checkpoint could not be saved: the transaction is not acknowledged and comes again after reconnecting.
            throw new StreamInterruptedException(e);
        }
        await CompleteHandledTransactionAsync(endLsn, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask CompleteHandledTransactionAsync(ulong endLsn, CancellationToken cancellationToken)
    {
        if ((_transactionHandlers.Count == 0 || _internalTransaction) && _appliers.Count == 0 && _participants.Count == 0)
        {
            Acknowledge(endLsn);
            return default;
        }

        var committed = new CommittedTransaction(_transaction.Xid, _transaction.CommitLsn, new NpgsqlLogSequenceNumber(endLsn),
            _transaction.CommitTime, _changes.Count, _origin);
        return DeliverCommitAsync(committed, cancellationToken);
    }

    /// <summary>Appliers commit their target transactions first, then the transaction handlers run (never for the
    /// pipeline's own watermark and heartbeat transactions), then the participants end what they kept for the transaction,
    /// then the transaction is acknowledged.</summary>
    private async ValueTask DeliverCommitAsync(CommittedTransaction committed, CancellationToken cancellationToken)
    {
        foreach (var applier in _appliers)
            await applier.OnTransactionEndAsync(committed.CommitLsn, committed.EndLsn, committed.Xid, cancellationToken).ConfigureAwait(false);
        if (!_internalTransaction && _transactionHandlers.Count > 0)
        {
            var start = Telemetry.StartHandlers();
            await Telemetry.EndHandlers(InvokeAllAsync(_transactionHandlers, committed, cancellationToken), start, _telemetry.TransactionHandlerTags).ConfigureAwait(false);
        }
        foreach (var participant in _participants)
            await participant.OnTransactionEndAsync().ConfigureAwait(false);
        Acknowledge((ulong)committed.EndLsn);
    }

    /// <summary>Every handler of the transaction ending at <paramref name="endLsn"/> completed: it may be confirmed.</summary>
    private void Acknowledge(ulong endLsn)
    {
        _snapshots.OnTransactionHandled();
        AdvanceConfirmed(endLsn);
        _transport!.SetConfirmed((ulong)ConfirmedLsn);
        Volatile.Write(ref _deliveringCommitTicks, 0);
        if (!_internalTransaction && Telemetry.Transactions.Enabled)
            Telemetry.Transactions.Add(1, _telemetry.SlotTags);
        if (_activity is not null)
            EndTransactionActivity(endLsn);
    }

    private void AdvanceConfirmed(ulong lsn) => _confirmed.Advance(lsn);

    /// <summary>
    /// Confirms the server's keepalive position while no transaction is in flight, so a slot whose tables are quiet does
    /// not hold back WAL. The transports consume keepalives themselves and fold their position into LastReceivedLsn, as
    /// they do the end position of data frames; a frame's end can lie past the commit of a transaction still being
    /// delivered. So the position is confirmed only when the loop was idle and neither the frame count nor the position
    /// changed over a whole interval: a transport hands the frames before a keepalive to the loop before it takes the
    /// keepalive's position, which would have changed the count.
    /// </summary>
    private async Task ConfirmWhileIdleAsync(IReplicationTransport transport, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.IdleConfirmInterval);
        long seenFrames = -1;
        ulong seenLsn = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                var idle = _idle;
                var frames = Interlocked.Read(ref _framesReceived);
                var lsn = transport.LastReceivedLsn;
                idle &= _idle;
                if (idle && frames == seenFrames && lsn == seenLsn && lsn > (ulong)ConfirmedLsn)
                {
                    AdvanceConfirmed(lsn);
                    transport.SetConfirmed((ulong)ConfirmedLsn);
                }
                (seenFrames, seenLsn) = idle ? (frames, lsn) : (-1, 0UL);
            }
        }
        catch (OperationCanceledException)
        {
            // The session is ending.
        }
    }

    /// <summary>
    /// With <see cref="DBSyncOptions.HeartbeatInterval"/>: whenever a whole interval passed without the confirmed position
    /// moving, writes a transactional logical message with this pipeline's prefix. Its transaction is decoded by the slot
    /// like any other and confirmed when it arrives, so the slot follows the WAL even when nothing it publishes changes.
    /// </summary>
    private Task HeartbeatAsync(CancellationToken cancellationToken)
    {
        if (_options.HeartbeatInterval is not { } interval)
            return Task.CompletedTask;
        var seen = _confirmed.Value;
        return OnSideConnectionAsync(interval, "SET synchronous_commit = local",
            due: () =>
            {
                var confirmed = _confirmed.Value;
                if (confirmed == seen)
                    return true;
                seen = confirmed;
                return false;
            },
            (connection, token) => LogicalMessages.EmitAsync(connection, _snapshots.Prefix, "heartbeat", token),
            e => Log.HeartbeatFailed(_logger, e, _options.SlotName, (long)interval.TotalMilliseconds),
            cancellationToken);
    }

    /// <summary>
    /// While the replication lag gauge has a listener, reads the server's WAL end every <see cref="DBSyncOptions.StatusInterval"/>.
    /// The stream itself cannot tell it: pgoutput frames carry their own position, keepalives how far the server decoded.
    /// </summary>
    private Task SampleServerWalEndAsync(CancellationToken cancellationToken)
        => OnSideConnectionAsync(_options.StatusInterval, setupSql: null, static () => Telemetry.ReplicationLag.Enabled,
            async (connection, token) =>
            {
                await using var command = new NpgsqlCommand("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END", connection);
                if (await command.ExecuteScalarAsync(token).ConfigureAwait(false) is NpgsqlLogSequenceNumber end)
                    Volatile.Write(ref _serverWalEnd, unchecked((long)(ulong)end));
            },
            e => Log.WalEndUnknown(_logger, e, _options.SlotName),
            cancellationToken);

    /// <summary>
    /// Runs <paramref name="work"/> every <paramref name="interval"/> while the session lasts and <paramref name="due"/>
    /// says so, on an ordinary connection of its own: opened (then set up with <paramref name="setupSql"/>) when first
    /// needed, and opened again after a failure, which <paramref name="failed"/> reports.
    /// </summary>
    private async Task OnSideConnectionAsync(TimeSpan interval, string? setupSql, Func<bool> due, Func<NpgsqlConnection, CancellationToken, Task> work,
        Action<Exception> failed, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        NpgsqlConnection? connection = null;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!due())
                    continue;
                try
                {
                    if (connection is null)
                    {
                        connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
                        if (setupSql is not null)
                        {
                            await using var setup = new NpgsqlCommand(setupSql, connection);
                            await setup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                        }
                    }
                    await work(connection, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException && !cancellationToken.IsCancellationRequested)
                {
                    failed(e);
                    if (connection is not null)
                        await connection.DisposeAsync().ConfigureAwait(false);
                    connection = null;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The session is ending.
        }
        finally
        {
            if (connection is not null)
                await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <param name="Relation">The last Relation message of the relation.</param>
    /// <param name="Registration">The mapped table its changes are delivered to, if any.</param>
    /// <param name="Binding">Its columns bound to the mapped table's.</param>
    /// <param name="Resolved">An unmapped relation whose relation to the mapped tables was looked up (once per Relation message).</param>
    /// <param name="IsPartition">A partition of <paramref name="Registration"/>'s table, sent under its own name.</param>
    private sealed record RelationState(RelationMessage Relation, TableRegistration? Registration, ColumnBinding? Binding, bool Resolved = false, bool IsPartition = false);
}
