using System.Globalization;
using DBSync.Internal;
using DBSync.Replication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using NpgsqlTypes;

namespace DBSync.Nats;

/// <summary>Which stream a <see cref="JetStreamConsumer"/> reads and as whom.</summary>
public sealed class JetStreamConsumerOptions
{
    /// <summary>The stream the publisher writes to (its <see cref="JetStreamPublisher.StreamName"/>: by default
    /// <c>DBSYNC_</c> and the slot name in upper case).</summary>
    public string Stream { get; set; } = "";

    /// <summary>The durable consumer's name: JetStream remembers what it acknowledged, so a process that restarts with the
    /// same name goes on where the last one stopped. Processes that should each see every change use different names.</summary>
    public string Name { get; set; } = "";

    /// <summary>The publisher's <see cref="JetStreamPublisherOptions.SubjectPrefix"/> (default <c>dbsync</c>).</summary>
    public string SubjectPrefix { get; set; } = "dbsync";

    /// <summary>Null (the default): every message of the stream. A list: only those partitions of a publisher with
    /// <see cref="JetStreamPublisherOptions.Partitions"/>, so that N processes share the tables by key (each key's changes
    /// stay in one process, in order). One durable consumer per partition, named <c>&lt;Name&gt;_p&lt;partition&gt;</c>.</summary>
    public IReadOnlyList<int>? Partitions { get; set; }

    /// <summary>How long JetStream waits for an acknowledgement before it delivers a message again (default 30 s).</summary>
    public TimeSpan AckWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The wait before a message whose handler failed is delivered again (default 1 s; it doubles for each
    /// failure of the same message, up to <see cref="MaxRetryDelay"/>).</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between deliveries of a failing message (default 30 s).</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Messages requested from JetStream at a time (default 256).</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>Where the consumer logs (nothing when null).</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Throws when a setting is missing or out of range, naming it.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Stream))
            throw new ArgumentException("JetStreamConsumerOptions.Stream is required: the stream the publisher writes to (DBSYNC_ and its slot name in upper case, unless JetStreamPublisherOptions.Stream names another).", nameof(Stream));
        if (string.IsNullOrWhiteSpace(Name) || Name.AsSpan().IndexOfAny(" \t\r\n.*>") >= 0)
            throw new ArgumentException($"JetStreamConsumerOptions.Name \"{Name}\" is not a valid durable consumer name: it is required, without spaces, '.', '*' or '>'.", nameof(Name));
        if (Partitions is { Count: 0 } || Partitions?.Any(p => p < 0) == true || Partitions?.Distinct().Count() != Partitions?.Count)
            throw new ArgumentException("JetStreamConsumerOptions.Partitions must be null (every message) or distinct partition numbers from 0.", nameof(Partitions));
        if (AckWait < TimeSpan.FromSeconds(1))
            throw new ArgumentOutOfRangeException(nameof(AckWait), AckWait, "JetStreamConsumerOptions.AckWait must be at least 1 s.");
        if (RetryDelay < TimeSpan.Zero || MaxRetryDelay < RetryDelay)
            throw new ArgumentOutOfRangeException(nameof(RetryDelay), RetryDelay, "JetStreamConsumerOptions.RetryDelay must be 0 or more, and MaxRetryDelay at least as long.");
        if (BatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "JetStreamConsumerOptions.BatchSize must be at least 1.");
    }
}

/// <summary>
/// Delivers the changes a <see cref="JetStreamPublisher"/> wrote to a stream as <see cref="Change{T}"/>, to handlers
/// registered with <see cref="On{T}(Func{Change{T}, CancellationToken, ValueTask})"/> as on a <see cref="DBSyncClient"/>,
/// in stream order (commit order) per durable consumer, at least once: a message is acknowledged after its handlers
/// completed; one whose handler fails is delivered again, and nothing after it before it.
/// </summary>
/// <remarks>A durable JetStream consumer keeps the position. So that a message delivered again never comes after later
/// ones (JetStream would put it behind those already in flight), the consumer is set up again from the first message
/// not acknowledged, when a handler fails and when a process starts and finds messages that a previous one received
/// but did not acknowledge.</remarks>
public sealed class JetStreamConsumer : IChangeSource
{
    private readonly INatsConnection _connection;
    private readonly JetStreamConsumerOptions _options;
    private readonly NatsJSContext _js;
    private readonly ILogger _logger;
    private readonly Dictionary<string, Func<INatsJSMsg<ReadOnlyMemory<byte>>, CancellationToken, ValueTask>> _tables = [];
    private readonly List<ICommitGroupSink> _sinks = [];
    private int _running;

    /// <summary>Creates a consumer; nothing connects until <see cref="RunAsync"/>.</summary>
    public JetStreamConsumer(INatsConnection connection, JetStreamConsumerOptions options)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _connection = connection;
        _options = options;
        _js = new NatsJSContext(connection);
        _logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("DBSync.Nats");
    }

    /// <summary>Messages whose handlers completed and that were acknowledged.</summary>
    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    private long _acknowledged;

    /// <summary>Handler failures (each followed by a delivery of the same message again).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    private long _failures;

    /// <summary>Adds a handler for the changes of the table <typeparamref name="T"/> maps.</summary>
    public JetStreamConsumer On<T>(Func<Change<T>, CancellationToken, ValueTask> handler) where T : ISyncTable<T>
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (Volatile.Read(ref _running) != 0)
            throw new InvalidOperationException("Handlers cannot be added while the consumer runs.");
        var table = T.TableInfo.DisplayName;
        var handlers = new List<Func<Change<T>, CancellationToken, ValueTask>> { handler };
        if (_tables.TryGetValue(table, out var existing))
        {
            _tables[table] = async (message, cancellationToken) =>
            {
                await existing(message, cancellationToken).ConfigureAwait(false);
                await handler(Decode<T>(message), cancellationToken).ConfigureAwait(false);
            };
        }
        else
        {
            _tables[table] = (message, cancellationToken) => handler(Decode<T>(message), cancellationToken);
        }
        return this;
    }

    /// <summary>Adds a synchronous handler for the changes of the table <typeparamref name="T"/> maps.</summary>
    public JetStreamConsumer On<T>(Action<Change<T>> handler) where T : ISyncTable<T>
    {
        ArgumentNullException.ThrowIfNull(handler);
        return On<T>((change, _) =>
        {
            handler(change);
            return ValueTask.CompletedTask;
        });
    }

    /// <summary>
    /// Creates a <see cref="PostgresApplier"/> that applies the changes this consumer reads into a target database, each
    /// source transaction in one target transaction (or several in one, <see cref="PostgresApplier.MaxGroupedTransactions"/>),
    /// effectively once, as it does on a slot: messages are acknowledged only after the target commit, and a transaction
    /// the target recorded is skipped when it comes again. Map its tables, then run the consumer.
    /// </summary>
    /// <remarks>It needs the whole stream (<see cref="JetStreamConsumerOptions.Partitions"/> null), published with
    /// <see cref="JetStreamPublisherOptions.TransactionEnds"/>: partitions applied apart would split source transactions, and
    /// a truncate in one would remove rows that another had applied already.</remarks>
    /// <param name="connectionString">An Npgsql connection string for the target database.</param>
    /// <param name="name">The applier's row in the progress table (for example the consumer's name).</param>
    /// <param name="progressTable">The progress table, <c>schema.name</c> or <c>name</c> (then in <c>public</c>).</param>
    public PostgresApplier CreateApplier(string connectionString, string name, string progressTable = "public.dbsync_applied")
        => new(this, connectionString, name, progressTable);

    string IChangeSource.Description => $"JetStream consumer {_options.Name} of stream {_options.Stream}";

    // A failing change is delivered again with its whole transaction (the consumer is set up again from the first message
    // not acknowledged), so no savepoint per change.
    bool IChangeSource.RetriesFailedChange => false;

    void IChangeSource.AddHandler<T>(Func<Change<T>, CancellationToken, ValueTask> handler) => On(handler);

    void IChangeSource.AddSink(ICommitGroupSink sink)
    {
        if (Volatile.Read(ref _running) != 0)
            throw new InvalidOperationException("An applier cannot be added while the consumer runs.");
        if (_options.Partitions is not null)
        {
            throw new InvalidOperationException(
                "A PostgresApplier needs the whole stream: set JetStreamConsumerOptions.Partitions to null. Partitions applied apart would split a source " +
                "transaction over several target transactions, and a truncate read in one partition would remove rows another had applied already.");
        }
        _sinks.Add(sink);
    }

    /// <summary>Consumes until <paramref name="cancellationToken"/> is cancelled (then returns) or a message cannot be
    /// read as a change (then throws, having acknowledged nothing of it).</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (_tables.Count == 0)
            throw new InvalidOperationException("No handler is registered. Call On<T>(...) for at least one [SyncTable] type before RunAsync.");
        if (Interlocked.Exchange(ref _running, 1) == 1)
            throw new InvalidOperationException("RunAsync is already running on this consumer.");
        try
        {
            var loops = _options.Partitions is { } partitions
                ? partitions.Select(p => ConsumeAsync($"{_options.Name}_p{p}", $"{_options.SubjectPrefix}.*.*.{p}", cancellationToken))
                : [ConsumeAsync(_options.Name, _options.SubjectPrefix + ".>", cancellationToken)];
            await Task.WhenAll(loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    private async Task ConsumeAsync(string name, string subject, CancellationToken cancellationToken)
    {
        ulong? from = null;
        var failuresInARow = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            INatsJSConsumer consumer;
            try
            {
                consumer = await SetUpAsync(name, subject, from, cancellationToken).ConfigureAwait(false);
                // What a sink held from before is dropped; it comes again, from the first message not acknowledged.
                foreach (var sink in _sinks)
                    await sink.OnSessionStartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is NatsException or StreamInterruptedException)
            {
                failuresInARow++;
                Log.ConsumerUnavailable(_logger, name, _options.Stream, e.Message);
                await Task.Delay(Backoff.Delay(_options.RetryDelay, _options.MaxRetryDelay, failuresInARow), cancellationToken).ConfigureAwait(false);
                continue;
            }
            from = null;
            var opts = new NatsJSConsumeOpts { MaxMsgs = _options.BatchSize };
            var read = new ReadState();
            INatsJSMsg<ReadOnlyMemory<byte>>? lastAcknowledged = null;
            try
            {
                await foreach (var message in consumer.ConsumeAsync(NatsRawSerializer<ReadOnlyMemory<byte>>.Default, opts, cancellationToken).ConfigureAwait(false))
                {
                    var sequence = message.Metadata?.Sequence.Stream ?? 0;
                    if (sequence <= read.LastSequence)
                        continue; // delivered again after the ack wait while a sink held it: it was handled
                    read.LastSequence = sequence;
                    if (read.FirstUnacknowledged == 0)
                        read.FirstUnacknowledged = sequence;
                    read.Unacknowledged++;
                    bool acknowledge;
                    try
                    {
                        acknowledge = await HandleAsync(message, read, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not DecodeException and not DBSyncConfigurationException)
                    {
                        // Delivered again, from the first message not acknowledged on (this one, or the first of the
                        // transactions a sink held), after a growing pause.
                        Interlocked.Increment(ref _failures);
                        failuresInARow++;
                        var delay = Backoff.Delay(_options.RetryDelay, _options.MaxRetryDelay, failuresInARow);
                        Log.HandlerFailed(_logger, name, sequence, message.Subject, delay.TotalSeconds, e);
                        await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                        from = read.FirstUnacknowledged;
                        break;
                    }
                    if (!acknowledge)
                        continue; // a sink holds it, uncommitted
                    // Handled (and committed by the sinks): acknowledged, with everything before it, even while stopping,
                    // so that it does not come again.
                    await message.AckAsync(cancellationToken: CancellationToken.None).ConfigureAwait(false);
                    Interlocked.Add(ref _acknowledged, read.Unacknowledged);
                    read.FirstUnacknowledged = 0;
                    read.Unacknowledged = 0;
                    lastAcknowledged = message;
                    failuresInARow = 0;
                }
            }
            catch (NatsException e) when (!cancellationToken.IsCancellationRequested)
            {
                Log.ConsumerUnavailable(_logger, name, _options.Stream, e.Message);
                await Task.Delay(_options.RetryDelay, cancellationToken).ConfigureAwait(false);
                from = read.FirstUnacknowledged == 0 ? null : read.FirstUnacknowledged;
            }
            finally
            {
                if (cancellationToken.IsCancellationRequested && lastAcknowledged is not null)
                    await ConfirmAcknowledgementsAsync(lastAcknowledged).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Where one setup of a durable consumer stands.</summary>
    private sealed class ReadState
    {
        /// <summary>The last message received (stream sequence).</summary>
        public ulong LastSequence;

        /// <summary>The first message received and not acknowledged; 0 when all are.</summary>
        public ulong FirstUnacknowledged;

        /// <summary>Messages received and not acknowledged.</summary>
        public long Unacknowledged;

        /// <summary>Whether a sink holds the transactions ended since the last acknowledgement, uncommitted.</summary>
        public bool Held;

        /// <summary>The last copy handled of a change published to several partitions (a whole-stream consumer hands on the
        /// first copy only).</summary>
        public (NpgsqlLogSequenceNumber Commit, int Index) LastCopy;

        /// <summary>The transaction whose changes are being handled (a sink's, until its commit message).</summary>
        public NpgsqlLogSequenceNumber OpenCommit;

        /// <summary>The last transaction a commit message ended.</summary>
        public NpgsqlLogSequenceNumber EndedCommit;
    }

    /// <summary>Acknowledgements are sent without waiting for JetStream; on a stop, the last one is sent again and
    /// waited for (JetStream takes a consumer's acknowledgements in order), so that the next process with the same name
    /// does not get what this one handled.</summary>
    private static async Task ConfirmAcknowledgementsAsync(INatsJSMsg<ReadOnlyMemory<byte>> last)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await last.AckAsync(new AckOpts { DoubleAck = true }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NatsException or OperationCanceledException)
        {
            // Unconfirmed: the next process may get those messages again (at least once).
        }
    }

    /// <summary>Hands the message to its table's handlers, or ends its transaction at the sinks; returns whether it may be
    /// acknowledged (false while a sink holds it uncommitted).</summary>
    private async ValueTask<bool> HandleAsync(INatsJSMsg<ReadOnlyMemory<byte>> message, ReadState read, CancellationToken cancellationToken)
    {
        var headers = message.Headers;
        if (headers?.TryGetValue(JetStreamPublisher.Headers.Kind, out var kind) == true && kind == ChangeMessages.CommitKind)
            return await EndTransactionAsync(message, read, cancellationToken).ConfigureAwait(false);
        var table = headers?.TryGetValue(JetStreamPublisher.Headers.Table, out var value) == true ? value.ToString() : null;
        if (table is null)
            throw Unreadable(message, $"it has no {JetStreamPublisher.Headers.Table} header");
        if (_options.Partitions is null && headers!.ContainsKey(JetStreamPublisher.Headers.Part))
        {
            // A change published to several partitions (a truncate, an update that moved its key): a consumer of the whole
            // stream gets its copies one after another and hands on the first.
            var copy = (Position(message, JetStreamPublisher.Headers.CommitLsn), Index(message));
            if (copy == read.LastCopy)
                return _sinks.Count == 0;
            read.LastCopy = copy;
        }
        if (_sinks.Count > 0)
        {
            var commit = Position(message, JetStreamPublisher.Headers.CommitLsn);
            if (read.OpenCommit != default && commit != read.OpenCommit)
            {
                throw new DBSyncConfigurationException(
                    $"Message {message.Metadata?.Sequence.Stream} of stream {_options.Stream} begins the transaction committed at {commit} where the one committed at " +
                    $"{read.OpenCommit} had no commit message: the stream was published without them, and a PostgresApplier needs them to apply each source transaction " +
                    "whole. Set JetStreamPublisherOptions.TransactionEnds to true on the publisher and publish to a new stream.");
            }
            read.OpenCommit = commit;
        }
        if (_tables.TryGetValue(table, out var handle))
            await handle(message, cancellationToken).ConfigureAwait(false);
        // Without a sink a handled message is acknowledged at once; with one, at the end of its transaction.
        return _sinks.Count == 0;
    }

    /// <summary>A transaction's commit message: the sinks end it (and commit it, or hold it open for the transactions
    /// that follow while more are waiting in the stream).</summary>
    private async ValueTask<bool> EndTransactionAsync(INatsJSMsg<ReadOnlyMemory<byte>> message, ReadState read, CancellationToken cancellationToken)
    {
        if (_sinks.Count == 0)
            return true;
        var commit = Position(message, JetStreamPublisher.Headers.CommitLsn);
        if (commit == read.EndedCommit)
            return !read.Held; // the same transaction's commit message in another partition; it was ended
        var end = Position(message, JetStreamPublisher.Headers.EndLsn);
        var headers = message.Headers!;
        if (!headers.TryGetValue(JetStreamPublisher.Headers.Xid, out var xidText) || !uint.TryParse(xidText, NumberStyles.None, CultureInfo.InvariantCulture, out var xid))
            throw Unreadable(message, $"its {JetStreamPublisher.Headers.Xid} header does not parse");
        read.EndedCommit = commit;
        read.OpenCommit = default;
        // More messages waiting: the sinks may hold the transaction open for them (one target transaction for several).
        var mayGroup = message.Metadata?.NumPending > 0;
        var held = false;
        foreach (var sink in _sinks)
            held |= await sink.OnTransactionEndAsync(commit, end, xid, mayGroup, cancellationToken).ConfigureAwait(false);
        read.Held = held;
        return !held;
    }

    private static NpgsqlLogSequenceNumber Position(INatsJSMsg<ReadOnlyMemory<byte>> message, string header)
        => message.Headers?.TryGetValue(header, out var text) == true && NpgsqlLogSequenceNumber.TryParse(text.ToString(), out var lsn)
            ? lsn
            : throw Unreadable(message, $"its {header} header does not parse");

    private static int Index(INatsJSMsg<ReadOnlyMemory<byte>> message)
        => message.Headers?.TryGetValue(JetStreamPublisher.Headers.Index, out var text) == true
           && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            ? index
            : throw Unreadable(message, $"its {JetStreamPublisher.Headers.Index} header does not parse");

    /// <summary>The durable consumer, created when missing; set up again from <paramref name="from"/> after a failure, or
    /// from the first message not acknowledged when a previous process left messages in flight.</summary>
    private async Task<INatsJSConsumer> SetUpAsync(string name, string subject, ulong? from, CancellationToken cancellationToken)
    {
        if (from is null)
        {
            try
            {
                var existing = await _js.GetConsumerAsync(_options.Stream, name, cancellationToken).ConfigureAwait(false);
                if (existing.Info.Config.FilterSubject != subject)
                {
                    throw new DBSyncConfigurationException(
                        $"Durable consumer {name} of stream {_options.Stream} takes {existing.Info.Config.FilterSubject}, not {subject}. Give this consumer another name, " +
                        $"or delete that one (nats consumer rm {_options.Stream} {name}).");
                }
                var config = existing.Info.Config;
                if (existing.Info.NumAckPending == 0 && config.AckPolicy == ConsumerConfigAckPolicy.All && config.MaxAckPending == MaxAckPending
                    && config.AckWait == _options.AckWait)
                    return existing;
                // Messages a previous process received but did not acknowledge, or settings of another version or of a
                // consumer without an applier: set up again from the first message not acknowledged.
                from = existing.Info.AckFloor.StreamSeq + 1;
            }
            catch (NatsJSApiException e) when (e.Error.ErrCode == 10014)
            {
                return await _js.CreateOrUpdateConsumerAsync(_options.Stream, Config(name, subject, null), cancellationToken).ConfigureAwait(false);
            }
        }
        Log.ConsumerRewound(_logger, name, _options.Stream, from.Value);
        try
        {
            await _js.DeleteConsumerAsync(_options.Stream, name, cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSApiException e) when (e.Error.ErrCode == 10014)
        {
        }
        return await _js.CreateOrUpdateConsumerAsync(_options.Stream, Config(name, subject, from), cancellationToken).ConfigureAwait(false);
    }

    private ConsumerConfig Config(string name, string subject, ulong? from) => new(name)
    {
        DurableName = name,
        FilterSubject = subject,
        // An acknowledgement covers every message before it: one per message handled, or one per target commit.
        AckPolicy = ConsumerConfigAckPolicy.All,
        AckWait = _options.AckWait,
        DeliverPolicy = from is null ? ConsumerConfigDeliverPolicy.All : ConsumerConfigDeliverPolicy.ByStartSequence,
        OptStartSeq = from ?? 0,
        MaxAckPending = MaxAckPending,
    };

    /// <summary>With an applier, no limit: a source transaction's messages all stay unacknowledged until its target commit,
    /// however many there are.</summary>
    private int MaxAckPending => _sinks.Count > 0 ? -1 : Math.Max(_options.BatchSize * 2, 1024);

    private static Change<T> Decode<T>(INatsJSMsg<ReadOnlyMemory<byte>> message) where T : ISyncTable<T>
    {
        var headers = message.Headers;
        string Header(string name) => headers?.TryGetValue(name, out var value) == true ? value.ToString() : throw Unreadable(message, $"it has no {name} header");
        var kind = Header(JetStreamPublisher.Headers.Kind) switch
        {
            "insert" => ChangeKind.Insert,
            "update" => ChangeKind.Update,
            "delete" => ChangeKind.Delete,
            "truncate" => ChangeKind.Truncate,
            "read" => ChangeKind.Read,
            var other => throw Unreadable(message, $"its kind '{other}' is none of insert, update, delete, truncate, read"),
        };
        if (!NpgsqlLogSequenceNumber.TryParse(Header(JetStreamPublisher.Headers.CommitLsn), out var commitLsn)
            || !uint.TryParse(Header(JetStreamPublisher.Headers.Xid), NumberStyles.None, CultureInfo.InvariantCulture, out var xid)
            || !int.TryParse(Header(JetStreamPublisher.Headers.Index), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            || !DateTimeOffset.TryParse(Header(JetStreamPublisher.Headers.CommitTime), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var commitTime))
        {
            throw Unreadable(message, "its position headers (commit LSN, xid, index, commit time) do not parse");
        }
        var format = headers?.TryGetValue("Content-Type", out var type) == true && type.ToString() == "application/json" ? BodyFormat.Json : BodyFormat.MessagePack;
        var chunk = headers?.TryGetValue(JetStreamPublisher.Headers.Chunk, out var chunkText) == true
            && long.TryParse(chunkText, NumberStyles.None, CultureInfo.InvariantCulture, out var number) ? number : 0;
        try
        {
            return ChangeMessageReader.Read<T>(message.Data, format, kind, commitLsn, commitTime, xid, index) with { SnapshotChunk = chunk };
        }
        catch (DecodeException e)
        {
            throw new DecodeException($"Message {message.Metadata?.Sequence.Stream} of stream {message.Metadata?.Stream} (subject {message.Subject}): {e.Message}", e);
        }
    }

    private static DecodeException Unreadable(INatsJSMsg<ReadOnlyMemory<byte>> message, string problem)
        => new($"Message {message.Metadata?.Sequence.Stream} of stream {message.Metadata?.Stream} (subject {message.Subject}) is not a DBSync change: {problem}. " +
               "Only a JetStreamPublisher may write to the stream.");
}

internal static partial class Log
{
    [LoggerMessage(EventId = 6010, Level = LogLevel.Warning, Message = "JetStream consumer {Name} of stream {Stream} is not available: {Reason}; trying again.")]
    public static partial void ConsumerUnavailable(ILogger logger, string name, string stream, string reason);

    [LoggerMessage(EventId = 6011, Level = LogLevel.Warning, Message = "A handler of JetStream consumer {Name} failed on message {Sequence} ({Subject}); it is delivered again, with everything after it, in {Seconds} s.")]
    public static partial void HandlerFailed(ILogger logger, string name, ulong sequence, string subject, double seconds, Exception exception);

    [LoggerMessage(EventId = 6013, Level = LogLevel.Critical, Message = "JetStream consumer {Name} of stream {Stream} failed; the application stops.")]
    public static partial void ConsumerFailed(ILogger logger, string name, string stream, Exception exception);

    [LoggerMessage(EventId = 6012, Level = LogLevel.Information, Message = "JetStream consumer {Name} of stream {Stream} set up again from message {Sequence}, so that nothing comes out of order.")]
    public static partial void ConsumerRewound(ILogger logger, string name, string stream, ulong sequence);
}
