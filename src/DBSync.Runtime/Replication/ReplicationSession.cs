using System.Globalization;
using System.Text;
using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Protocol;
using DBSync.Replication.Transport;
using DBSync.Snapshots;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// One run of the stream: a replication connection whose frames go, in order, through the <see cref="TransactionAssembler"/>
/// to the handlers and the <see cref="CommitPipeline"/>, and the confirmed position advanced only past transactions whose
/// handlers completed. It owns the session's lifecycle: starting, reading, stopping between transactions, what a failure
/// means (<see cref="StreamErrors"/>), the loops beside the stream, and releasing the slot at the end.
/// </summary>
internal sealed class ReplicationSession : ITransactionSink
{
    private readonly DBSyncOptions _options;
    private readonly ConnectionPool _connections;
    private readonly IReadOnlyList<Func<LogicalMessage, CancellationToken, ValueTask>> _messageHandlers;
    private readonly Schema.SchemaFollower? _schema;
    private readonly ILogger _logger;
    private readonly HandlerInvoker _invoker;
    private readonly SnapshotCoordinator _snapshots;
    private readonly PartitionWatcher _partitions;
    private readonly PipelineTelemetry _telemetry;
    private readonly CancellationTokenSource _readCancellation = new();
    private readonly ConfirmedPosition _confirmed = new();
    private readonly TransactionAssembler _assembler;
    private readonly CommitPipeline _commits;
    private readonly IdleConfirmation _idleConfirmation;
    private readonly SideConnectionLoops _sideLoops;
    private readonly TransactionTracing _tracing;
    private IReplicationTransport? _transport;
    private int _streamingPid;

    /// <summary>The server process of the walsender that streams from the slot for this session; null before START_REPLICATION
    /// succeeded and once the stream ended. What the snapshot checkpoint's saves are fenced by.</summary>
    public int? StreamingPid => Volatile.Read(ref _streamingPid) is var pid and not 0 ? pid : null;
    private bool _reconnecting;
    private Exception? _slotNotHeld; // set once by EndStreamOf: the stream ends as a lost connection

    // Shared with the stop callback and the metrics' observers.
    private volatile bool _stopRequested;
    private long _deliveringCommitTicks;

    public ReplicationSession(
        DBSyncOptions options,
        ConnectionPool connections,
        IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables,
        IReadOnlyList<Func<CommittedTransaction, CancellationToken, ValueTask>> transactionHandlers,
        IReadOnlyList<Func<LogicalMessage, CancellationToken, ValueTask>> messageHandlers,
        IReadOnlyList<ICommitGroupSink> appliers,
        IReadOnlyList<ITransactionParticipant> participants,
        HandlerInvoker invoker,
        SnapshotCoordinator snapshots,
        PipelineTelemetry telemetry,
        ILogger logger,
        PartitionWatcher partitions,
        Schema.SchemaFollower? schema)
    {
        _options = options;
        _connections = connections;
        _messageHandlers = messageHandlers;
        _logger = logger;
        _invoker = invoker;
        _snapshots = snapshots;
        _partitions = partitions;
        _telemetry = telemetry;
        var relations = new RelationMap(tables, partitions, _confirmed, options.PublicationName, logger);
        var streams = new StreamedTransactions(options.StreamingMemoryLimit, options.StreamingSpillDirectory ?? Path.GetTempPath(), logger);
        _schema = schema;
        _assembler = new TransactionAssembler(relations, streams, Encoding.UTF8.GetBytes(snapshots.Prefix), this,
            schema is null ? null : Encoding.UTF8.GetBytes(Schema.DdlCaptureSql.Prefix));
        _commits = new CommitPipeline(appliers, transactionHandlers, participants, invoker, snapshots,
            tables.Values.OfType<SignalRegistration>().FirstOrDefault(), schema, telemetry, Handled, Acknowledge);
        _idleConfirmation = new IdleConfirmation(_confirmed);
        _sideLoops = new SideConnectionLoops(options, connections, _confirmed, snapshots.Prefix, logger);
        _tracing = new TransactionTracing(options.SlotName);
    }

    /// <summary>The last position confirmed to the server.</summary>
    public NpgsqlLogSequenceNumber ConfirmedLsn => new(_confirmed.Value);

    /// <summary>The server's WAL end minus the confirmed position. The WAL end is read every StatusInterval while the lag
    /// gauge has a listener (<see cref="SideConnectionLoops.SampleServerWalEndAsync"/>); in between, frames and keepalives
    /// received since move it (they carry how far the server decoded).</summary>
    public long LagBytes
    {
        get
        {
            var end = Math.Max(_transport?.LastReceivedLsn ?? 0, _sideLoops.ServerWalEnd);
            var confirmed = _confirmed.Value;
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
        _confirmed.Advance((ulong)server.SlotStart);
        IReplicationTransport? transport = null;
        var walSender = 0;
        try
        {
            try
            {
                transport = await ReplicationTransports.OpenAsync(_options, _connections, _logger, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (ConnectionLoss.Is(e) && !cancellationToken.IsCancellationRequested)
            {
                throw new StreamInterruptedException(e);
            }
            walSender = transport.BackendPid;
            transport.SetConfirmed(_confirmed.Value);
            _transport = transport;
            await StreamAsync(transport, protocol, onStreaming, handlerCancellation, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (transport is not null)
                await transport.DisposeAsync().ConfigureAwait(false);
            if (walSender != 0)
                await SlotRelease.ReleaseAsync(_connections, _options.SlotName, walSender, ConfirmedLsn.ToString(), _logger).ConfigureAwait(false);
        }
    }

    /// <summary>pgoutput's options for <paramref name="protocol"/>.</summary>
    private List<KeyValuePair<string, string>> PluginOptions(int protocol)
    {
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
        return pluginOptions;
    }

    private async Task StreamAsync(IReplicationTransport transport, int protocol, Action onStreaming, CancellationToken handlerCancellation, CancellationToken cancellationToken)
    {
        var idleConfirmation = _idleConfirmation.RunAsync(transport, _options.IdleConfirmInterval, _readCancellation.Token);
        var heartbeats = _sideLoops.HeartbeatAsync(_readCancellation.Token);
        var walEnd = _sideLoops.SampleServerWalEndAsync(_readCancellation.Token);
        var partitionWatch = Task.CompletedTask;
        var stopRegistration = cancellationToken.Register(static state => ((ReplicationSession)state!).RequestStop(), this);
        _tracing.CaptureParent();
        try
        {
            // Npgsql's replication connection sends START_REPLICATION only with its first read, so a slot another instance
            // holds would show only after the stream is reported started: standing by, the slot is looked at first.
            if (_options.WhenSlotInUse == SlotInUse.Wait && !_stopRequested && await SlotActiveAsync(cancellationToken).ConfigureAwait(false))
                throw new SlotHeldException(_options.SlotName);
            if (!_stopRequested)
                await ReadAsync(transport.StartAsync(_options.SlotName, _confirmed.Value, PluginOptions(protocol), _readCancellation.Token)).ConfigureAwait(false);
            Volatile.Write(ref _streamingPid, transport.BackendPid);
            // The partitions as they are now, before anything is reported as streaming: what changes later is seen.
            partitionWatch = await _partitions.StartAsync(() => _confirmed.Value, _readCancellation.Token).ConfigureAwait(false);
            Log.StreamStarted(_logger, _options.SlotName, protocol, protocol >= 2 && !_options.TextFormat ? "binary" : "text", ConfirmedLsn.ToString(), transport.Name);
            MarkIdle(); // a stop requested from here on ends the stream, or the loop sees it first
            onStreaming();
            // A stop ends the loop between transactions; a graceful one (the handlers' token not cancelled) lets the
            // transaction being delivered finish first, its remaining frames being on their way. A stop requested before
            // the loop was idle found nothing to end: with no frame coming, reading on would wait forever.
            while ((!_stopRequested || FinishesTransaction(handlerCancellation)) && await NextFrameAsync(transport, handlerCancellation).ConfigureAwait(false))
            {
                // A stop that found the loop idle ended the stream; frames already on their way are not started on.
                if (_stopRequested && !_assembler.InTransaction)
                    break;
                _idleConfirmation.Idle = false;
                _idleConfirmation.OnFrame();
                if (Telemetry.ReceivedBytes.Enabled)
                    Telemetry.ReceivedBytes.Add(transport.Frame.Length, _telemetry.SlotTags);
                await _assembler.HandleAsync(transport.Frame, transport.FrameLsn, handlerCancellation).ConfigureAwait(false);

                if (_assembler.InTransaction)
                    continue;
                // Between transactions: stop here if asked, else mark the loop idle and check once more, so a stop
                // request that saw the loop busy is not missed.
                if (_stopRequested)
                    break;
                // A target transaction held open for the next source transactions keeps the loop busy: the idle
                // confirmation must not confirm past it. NextFrameAsync commits it when no frame is waiting.
                if (_commits.HasUncommittedGroup)
                    continue;
                if (MarkIdle())
                    break;
            }
            if (!_stopRequested && Volatile.Read(ref _slotNotHeld) is { } slotNotHeld)
                throw new StreamInterruptedException(slotNotHeld);
            if (!_stopRequested && !_readCancellation.IsCancellationRequested)
                throw new StreamInterruptedException(new EndOfStreamException("The server ended the replication stream."));

            // A stop between transactions: what the appliers hold commits, and is confirmed, before the stream ends. A stop
            // that cut a transaction off leaves the target transaction uncommitted: it holds part of that transaction,
            // and everything in it is delivered again.
            if (!_assembler.DeliveringTransaction)
                await _commits.CommitGroupAsync(handlerCancellation).ConfigureAwait(false);
            await FlushStatusAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (Volatile.Read(ref _slotNotHeld) is { } slotNotHeld && !_stopRequested)
        {
            throw new StreamInterruptedException(slotNotHeld); // the read was ended by EndStreamOf
        }
        catch (OperationCanceledException) when (_stopRequested || cancellationToken.IsCancellationRequested || handlerCancellation.IsCancellationRequested)
        {
            // Stopped while waiting for a frame (the stop callback already sent the confirmed position), or a handler
            // gave up on the stop's token, possibly before the stop callback ran: send the position now.
            if (_idleConfirmation.FramesReceived > 0)
                await FlushStatusAsync().ConfigureAwait(false);
        }
        catch (StreamInterruptedException)
        {
            throw; // the run reconnects; what was confirmed stays confirmed
        }
        catch (SlotHeldException)
        {
            throw; // the run stands by: nothing was streamed in this session
        }
        catch (PostgresException e) when (StreamErrors.Translate(e, _options.SlotName, _reconnecting, ConfirmedLsn, _options.WhenSlotInUse == SlotInUse.Wait) is { } translated)
        {
            throw translated;
        }
        catch (Exception e)
        {
            // Transactions whose handlers completed stay confirmed; the failed one is delivered again on the next run.
            _tracing.Fail(e);
            Log.StreamFailed(_logger, _options.SlotName, $"{e.GetType().Name}: {e.Message}", ConfirmedLsn.ToString());
            await FlushStatusAsync().ConfigureAwait(false);
            throw;
        }
        finally
        {
            // No stop request may reach the cancellation source or transport once they are being torn down.
            await stopRegistration.DisposeAsync().ConfigureAwait(false);
            _idleConfirmation.Idle = false;
            Volatile.Write(ref _streamingPid, 0);
            await _readCancellation.CancelAsync().ConfigureAwait(false);
            await idleConfirmation.ConfigureAwait(false);
            await heartbeats.ConfigureAwait(false);
            await walEnd.ConfigureAwait(false);
            await partitionWatch.ConfigureAwait(false);
            _readCancellation.Dispose();
            _assembler.Dispose(); // transactions not yet committed are streamed again by the next session
            _tracing.End(_assembler.IsInternal); // a transaction cut off: it is delivered again, whole, by the next session
            Volatile.Write(ref _deliveringCommitTicks, 0);
        }

        Log.StreamStopped(_logger, _options.SlotName, ConfirmedLsn.ToString());
    }

    /// <summary>
    /// A fenced checkpoint save found that <paramref name="walSender"/> no longer streams from the slot: another instance's
    /// walsender does. If it is this session's, the stream is over whether or not its connection says so yet (a network
    /// that went silent shows only after <see cref="DBSyncOptions.ReceiveTimeout"/>): the read ends now and the session
    /// with a <see cref="StreamInterruptedException"/> around <paramref name="cause"/>, so the run reconnects and, finding
    /// the slot held, stands by. A handler under way finishes; its transaction is not confirmed here.
    /// </summary>
    public void EndStreamOf(int walSender, Exception cause)
    {
        if (StreamingPid != walSender || Interlocked.CompareExchange(ref _slotNotHeld, cause, null) is not null)
            return;
        try
        {
            _ = _readCancellation.CancelAsync(); // the callbacks run elsewhere, not on the caller's (snapshot) thread
        }
        catch (ObjectDisposedException)
        {
            // the session ended meanwhile
        }
    }

    /// <summary>Whether a stop waits for the transaction (or stream block) being received to end: only while the
    /// handlers may still finish it.</summary>
    private bool FinishesTransaction(CancellationToken handlerCancellation)
        => _assembler.InTransaction && !handlerCancellation.IsCancellationRequested;

    /// <summary>
    /// The next frame. While appliers hold a target transaction open for the source transactions to come, a frame already
    /// received is taken at once; when none is, the target has caught up with what was received: the held transaction
    /// commits before the read waits, and the loop is idle from there on (between a streamed transaction's blocks too,
    /// whose changes wait for its Stream Commit). Never in the middle of a source transaction being delivered: its
    /// changes so far are in the target transaction too, and a commit would make part of it visible, recorded under
    /// the previous transaction's position, so that after a loss its first changes would be applied a second time.
    /// </summary>
    private async ValueTask<bool> NextFrameAsync(IReplicationTransport transport, CancellationToken handlerCancellation)
    {
        if (!_commits.HasUncommittedGroup || _assembler.DeliveringTransaction)
            return await ReadAsync(transport.ReadFrameAsync(_readCancellation.Token)).ConfigureAwait(false);
        bool received;
        try
        {
            received = transport.TryReadReceivedFrame(_readCancellation.Token);
        }
        catch (Exception e) when (StreamErrors.IsStreamLoss(e) && !_stopRequested)
        {
            throw new StreamInterruptedException(e);
        }
        if (received)
            return true;
        await _commits.CommitGroupAsync(handlerCancellation).ConfigureAwait(false);
        // A stop that came while the loop was busy committing did not end the stream: end here.
        if (MarkIdle())
            return false;
        return await ReadAsync(transport.ReadFrameAsync(_readCancellation.Token)).ConfigureAwait(false);
    }

    /// <summary>Whether a walsender streams from the slot now.</summary>
    private async Task<bool> SlotActiveAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ReplicationSlot.ReadAsync(connection, _options.SlotName, cancellationToken).ConfigureAwait(false) is { Active: true };
    }

    /// <summary>A read from the replication connection: a lost connection becomes <see cref="StreamInterruptedException"/>.</summary>
    private async ValueTask<T> ReadAsync<T>(ValueTask<T> read)
    {
        try
        {
            return await read.ConfigureAwait(false);
        }
        catch (Exception e) when (StreamErrors.IsStreamLoss(e) && !_stopRequested)
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
        catch (Exception e) when (StreamErrors.IsStreamLoss(e) && !_stopRequested)
        {
            throw new StreamInterruptedException(e);
        }
    }

    private void RequestStop()
    {
        _stopRequested = true;
        Interlocked.MemoryBarrier(); // see MarkIdle
        if (_idleConfirmation.Idle)
            _ = _transport!.EndStreamAsync(flushStatus: _idleConfirmation.FramesReceived > 0);
    }

    /// <summary>
    /// Marks the read loop idle, then returns whether a stop was requested. <see cref="RequestStop"/> does the reverse (sets
    /// the request, then looks whether the loop is idle); with a full fence between the write and the read on both sides,
    /// at least one of them sees the other's write, so a stop is never missed by both (the loop waiting for a frame that
    /// does not come, the stop waiting for the loop).
    /// </summary>
    private bool MarkIdle()
    {
        _idleConfirmation.Idle = true;
        Interlocked.MemoryBarrier();
        return _stopRequested;
    }

    /// <summary>Sends the confirmed position now, while the connection is still streaming.</summary>
    private Task FlushStatusAsync()
    {
        _transport!.SetConfirmed(_confirmed.Value);
        return _transport.FlushStatusAsync();
    }

    // ---- What the assembler hands on ----

    void ITransactionSink.OnBegin(in TransactionContext transaction)
    {
        _commits.OnBegin();
        Volatile.Write(ref _deliveringCommitTicks, transaction.CommitTime.UtcTicks);
        _tracing.Begin(transaction);
    }

    ValueTask ITransactionSink.OnPipelineMessageAsync(ReadOnlySpan<byte> content, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken)
        // The snapshot coordinator ignores what is not a watermark of its run (heartbeats, an earlier run's watermarks).
        => _snapshots.OnWatermarkAsync(content, transaction, lsn, cancellationToken);

    ValueTask ITransactionSink.OnSchemaMessageAsync(ReadOnlySpan<byte> content, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken)
        => _schema!.OnMessageAsync(content, transaction, lsn, cancellationToken);

    ValueTask ITransactionSink.OnMessageAsync(in LogicalDecodingMessage message, uint xid, CancellationToken cancellationToken)
    {
        if (_messageHandlers.Count == 0)
            return default;
        var delivered = new LogicalMessage(message.Transactional, new NpgsqlLogSequenceNumber(message.Lsn), Encoding.UTF8.GetString(message.Prefix),
            message.Content.ToArray(), xid);
        var start = Telemetry.StartHandlers();
        return Telemetry.EndHandlers(_invoker.InvokeAllAsync(_messageHandlers, delivered, cancellationToken), start, _telemetry.MessageHandlerTags);
    }

    ValueTask ITransactionSink.OnCommitAsync(TransactionEnd end, CancellationToken cancellationToken) => _commits.CommitAsync(end, cancellationToken);

    /// <summary>Every handler of the transaction completed (its target transaction may still be open: see
    /// <see cref="CommitPipeline"/>).</summary>
    private void Handled(TransactionEnd end)
    {
        Volatile.Write(ref _deliveringCommitTicks, 0);
        if (!end.IsInternal && Telemetry.Transactions.Enabled)
            Telemetry.Transactions.Add(1, _telemetry.SlotTags);
        _tracing.End(end.IsInternal, end.EndLsn);
    }

    /// <summary>The transaction was handled and what the appliers did with it committed (the commit pipeline's last step):
    /// it may be confirmed.</summary>
    private void Acknowledge(TransactionEnd end)
    {
        _confirmed.Advance(end.EndLsn);
        _transport!.SetConfirmed(_confirmed.Value);
    }
}
