using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using DBSync.Internal;
using DBSync.Replication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using NpgsqlTypes;

namespace DBSync.Nats;

/// <summary>
/// Publishes every change of every table the client maps (snapshot <c>Read</c> rows included) to a NATS JetStream
/// stream, exactly once and in commit order.
/// </summary>
/// <remarks>
/// <para>Publishes are pipelined (up to <see cref="JetStreamPublisherOptions.MaxInFlight"/> awaiting their
/// acknowledgement). A transaction is confirmed to PostgreSQL only once JetStream acknowledged every message of it and
/// of every transaction before it.</para>
/// <para>Exactly once: each message carries a <c>Nats-Msg-Id</c> made of the slot, the transaction's commit position and
/// the change's index in it, so JetStream drops one published again within its duplicate window; and when a session
/// starts, DBSync reads the last message of the stream and skips every change at or before it, so a restart after the
/// window passed publishes nothing twice either. Each publish also states the stream sequence it must follow
/// (<c>Nats-Expected-Last-Sequence</c>): when one fails (a timeout, a leader election, a full stream), the ones behind
/// it are refused rather than stored after a gap; DBSync stops confirming, reconnects with the client's growing delay,
/// and publishes again from the first message the stream does not have. A subject never gets a gap or a reordering.</para>
/// <para>Snapshot rows are published again when a crash cuts their chunk short (the chunk is read again, in a new
/// transaction).</para>
/// </remarks>
public sealed class JetStreamPublisher : IAsyncDisposable, ICommitGroupSink, ITableVisitor
{
    /// <summary>The headers of every message.</summary>
    public static class Headers
    {
        /// <summary>The slot of the pipeline that published the message.</summary>
        public const string Slot = "DBSync-Slot";

        /// <summary>The table, <c>schema.name</c>.</summary>
        public const string Table = "DBSync-Table";

        /// <summary><c>insert</c>, <c>update</c>, <c>delete</c>, <c>truncate</c> or <c>read</c> (a snapshot row); <c>commit</c> on the
        /// message that ends a transaction (<see cref="JetStreamPublisherOptions.TransactionEnds"/>).</summary>
        public const string Kind = "DBSync-Kind";

        /// <summary>The commit position of the change's transaction, as PostgreSQL writes it (<c>0/16B3748</c>).</summary>
        public const string CommitLsn = "DBSync-Commit-Lsn";

        /// <summary>The transaction id.</summary>
        public const string Xid = "DBSync-Xid";

        /// <summary>The commit time, ISO 8601 in UTC.</summary>
        public const string CommitTime = "DBSync-Commit-Time";

        /// <summary>The change's position in its transaction (0, 1, ...); on a <c>commit</c> message, the transaction's number
        /// of changes.</summary>
        public const string Index = "DBSync-Index";

        /// <summary>On a snapshot row: the number of the chunk it was read in (<see cref="Change{T}.SnapshotChunk"/>).</summary>
        public const string Chunk = "DBSync-Chunk";

        /// <summary>On a <c>commit</c> message: the end of the transaction's commit record, the position PostgreSQL is
        /// confirmed up to once the transaction is handled.</summary>
        public const string EndLsn = "DBSync-End-Lsn";

        /// <summary>On a change published to several partitions (a truncate goes to every one; an update that moves the key to
        /// another partition goes to the old key's and the new key's): the partition of this copy.</summary>
        public const string Part = "DBSync-Part";
    }

    private readonly DBSyncClient _client;
    private readonly JetStreamPublisherOptions _options;
    private readonly NatsJSContext _js;
    private readonly INatsConnection _connection;
    private readonly System.Diagnostics.TagList _tags;
    private bool _reachedOnce;
    private readonly ILogger _logger;
    private readonly string _slot;
    private readonly string _stream;
    private readonly string _contentType;
    private readonly HashSet<Type> _published = [];
    private readonly Queue<Pending> _pending = new();
    private readonly PublishAcks _acks;
    private readonly NatsHeaders _headers = [];
    private readonly ArrayBufferWriter<byte> _body = new(1024);
    private readonly ArrayBufferWriter<byte> _key = new(64);
    private readonly Dictionary<Type, string[]> _subjects = [];
    private Position _last;
    private ulong _lastSequence;
    private bool _streamReady;
    private bool _resync;
    private bool _disposed;
    private long _firstPendingAt;
    private int _lossesSinceAck;
    private Transaction _transaction;

    /// <summary>Creates a publisher of the changes <paramref name="client"/> delivers, for every table it maps when it runs.</summary>
    /// <param name="client">The client; not yet running.</param>
    /// <param name="connection">A connection to the NATS server or cluster (the caller's; not disposed here).</param>
    /// <param name="options">Where and how to publish; the defaults when null.</param>
    public JetStreamPublisher(DBSyncClient client, INatsConnection connection, JetStreamPublisherOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(connection);
        _options = options ?? new JetStreamPublisherOptions();
        _options.Validate();
        _client = client;
        _slot = client.Options.SlotName;
        _stream = _options.StreamFor(_slot);
        _contentType = _options.Format == BodyFormat.Json ? "application/json" : "application/msgpack";
        _js = new NatsJSContext(connection);
        _connection = connection;
        _acks = new PublishAcks(connection);
        _logger = (client.Options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("DBSync.Nats");
        _tags = new System.Diagnostics.TagList { { DBSyncDiagnostics.Tags.Slot, _slot }, { DBSyncDiagnostics.Tags.Stream, _stream } };
        client.AddApplier(this);
        client.BeforeRun(() => client.VisitTables(this));
    }

    /// <summary>The stream published to.</summary>
    public string StreamName => _stream;

    /// <summary>Messages JetStream stored since this publisher was created (duplicates it dropped not counted).</summary>
    public long Published { get; private set; }

    /// <summary>Changes skipped because the stream had them already (published before a restart).</summary>
    public long Skipped { get; private set; }

    /// <summary>Times publishing was interrupted (JetStream unreachable, an acknowledgement missing or refused): each ended
    /// the session unconfirmed, and publishing went on from where the stream ends.</summary>
    public long Interruptions { get; private set; }

    void ITableVisitor.Visit<T>()
    {
        if (!_published.Add(typeof(T)))
            return;
        var table = T.TableInfo;
        foreach (var token in (string[])[table.Schema, table.Name])
        {
            if (token.Length == 0 || token.AsSpan().IndexOfAny(" \t\r\n.*>") >= 0 || token.Any(char.IsControl))
            {
                throw new DBSyncConfigurationException(
                    $"Table {table.DisplayName} cannot be published to JetStream: its name \"{token}\" is no NATS subject token (a '.', '*', '>' or white space " +
                    "would split or widen the subject <prefix>.<schema>.<table>). Rename it, or leave it unmapped by the client that publishes.");
            }
        }
        if (table.Schema == CommitToken && table.Name == "commit")
            throw new DBSyncConfigurationException($"Table {table.DisplayName} cannot be published to JetStream: its subject is the one of DBSync's commit messages. Leave it unmapped by the client that publishes.");
        _client.On<T>(PublishAsync);
    }

    /// <summary>The token after the prefix of the commit messages' subjects.</summary>
    internal const string CommitToken = "_dbsync";

    private async ValueTask PublishAsync<T>(Change<T> change, CancellationToken cancellationToken) where T : ISyncTable<T>
    {
        var commit = (ulong)change.CommitLsn;
        var index = change.IndexInTransaction;
        var partitions = _options.Partitions;
        if (_transaction.Commit != commit)
            _transaction = new Transaction(commit, change.CommitLsn.ToString(), change.Xid, change.CommitTime, partitions);
        _transaction.Changes = Math.Max(_transaction.Changes, index + 1);
        if (partitions == 0)
        {
            await PublishOneAsync(change, new Position(commit, index, 0), partition: -1, cancellationToken).ConfigureAwait(false);
            return;
        }
        if (change.Kind == ChangeKind.Truncate)
        {
            // Every partition's consumers must see it, in order with the rows of theirs.
            for (var part = 0; part < partitions; part++)
                await PublishOneAsync(change, new Position(commit, index, part + 1), part, cancellationToken).ConfigureAwait(false);
            return;
        }
        var partition = PartitionOf(change.Row!);
        if (change is { Kind: ChangeKind.Update, Old: { } old, OldRowKind: not OldRowKind.None } && PartitionOf(old) is var before && before != partition)
        {
            // The key moved to another partition: the old key's consumers see the update too (its old key says which
            // row left them), and the new key's; the copies go in partition order.
            foreach (var part in before < partition ? [before, partition] : new[] { partition, before })
                await PublishOneAsync(change, new Position(commit, index, part + 1), part, cancellationToken).ConfigureAwait(false);
            return;
        }
        await PublishOneAsync(change, new Position(commit, index, 0), partition, cancellationToken).ConfigureAwait(false);
    }

    private int PartitionOf<T>(T row) where T : ISyncTable<T>
    {
        _key.ResetWrittenCount();
        ChangeMessages.WriteKey(_key, row);
        return ChangeMessages.Partition(_key.WrittenSpan, _options.Partitions);
    }

    private async ValueTask PublishOneAsync<T>(Change<T> change, Position position, int partition, CancellationToken cancellationToken) where T : ISyncTable<T>
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _transaction.Touch(partition);
        if (!await ResyncAsync(position, cancellationToken).ConfigureAwait(false))
            return;
        var table = T.TableInfo;
        if (!_subjects.TryGetValue(typeof(T), out var subjects))
        {
            var subject = $"{_options.SubjectPrefix}.{table.Schema}.{table.Name}";
            subjects = [subject, .. Enumerable.Range(0, _options.Partitions).Select(p => subject + "." + p.ToString(CultureInfo.InvariantCulture))];
            _subjects.Add(typeof(T), subjects);
        }
        _body.ResetWrittenCount();
        ChangeMessages.WriteBody(_body, change, _options.Format);
        var headers = HeadersFor(position);
        headers[Headers.Table] = table.DisplayName;
        headers[Headers.Kind] = ChangeMessages.KindName(change.Kind);
        headers["Content-Type"] = _contentType;
        if (change.SnapshotChunk > 0)
            headers[Headers.Chunk] = change.SnapshotChunk.ToString(CultureInfo.InvariantCulture);
        else
            headers.Remove(Headers.Chunk);
        headers.Remove(Headers.EndLsn);
        await PublishMessageAsync(subjects[partition + 1], _body, position, table, change.Kind, change.CommitTime, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The reused headers, set for a message of the current transaction at <paramref name="position"/>: what
    /// every message has.</summary>
    private NatsHeaders HeadersFor(Position position)
    {
        var headers = _headers;
        headers[Headers.Slot] = _slot;
        headers[Headers.CommitLsn] = _transaction.CommitText;
        headers[Headers.Xid] = _transaction.XidText;
        headers[Headers.CommitTime] = _transaction.CommitTimeText;
        headers[Headers.Index] = position.Index.ToString(CultureInfo.InvariantCulture);
        if (position.Part > 0)
            headers[Headers.Part] = (position.Part - 1).ToString(CultureInfo.InvariantCulture);
        else
            headers.Remove(Headers.Part);
        headers["Nats-Msg-Id"] = position.Part == 0
            ? $"{_slot}:{_transaction.CommitText}:{position.Index}"
            : $"{_slot}:{_transaction.CommitText}:{position.Index}:{position.Part - 1}";
        headers["Nats-Expected-Last-Sequence"] = _lastSequence.ToString(CultureInfo.InvariantCulture);
        return headers;
    }

    /// <summary>After the changes of a transaction, its <c>commit</c> message in each partition it touched.</summary>
    private async ValueTask PublishTransactionEndAsync(NpgsqlLogSequenceNumber commitLsn, NpgsqlLogSequenceNumber endLsn, CancellationToken cancellationToken)
    {
        var transaction = _transaction;
        try
        {
            if (!_options.TransactionEnds || transaction.Commit != (ulong)commitLsn || !transaction.Touched)
                return;
            var partitions = _options.Partitions;
            var endText = endLsn.ToString();
            for (var part = partitions == 0 ? -1 : 0; part < Math.Max(partitions, 0); part++)
            {
                if (part >= 0 && !transaction.Parts![part])
                    continue;
                var position = new Position(transaction.Commit, transaction.Changes, part + 1);
                if (!await ResyncAsync(position, cancellationToken).ConfigureAwait(false))
                    continue;
                var subject = $"{_options.SubjectPrefix}.{CommitToken}.commit";
                if (part >= 0)
                    subject += "." + part.ToString(CultureInfo.InvariantCulture);
                var headers = HeadersFor(position);
                headers[Headers.Kind] = ChangeMessages.CommitKind;
                headers[Headers.EndLsn] = endText;
                headers.Remove(Headers.Table);
                headers.Remove(Headers.Chunk);
                headers.Remove("Content-Type");
                await PublishMessageAsync(subject, null, position, null, null, transaction.CommitTime, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _transaction = default;
        }
    }

    /// <summary>Whether the message at <paramref name="position"/> is to be published: not when the stream has it already.
    /// After a failure in this session, where the stream ends is read again first.</summary>
    private async ValueTask<bool> ResyncAsync(Position position, CancellationToken cancellationToken)
    {
        if (_resync)
        {
            // A failure in this session dropped what awaited an acknowledgement (a handler retried after it): where the
            // stream ends is read again before anything more is published.
            try
            {
                await ReadLastAsync(await _js.GetStreamAsync(_stream, cancellationToken: cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsLoss(e, cancellationToken))
            {
                throw await LostAsync(e, position).ConfigureAwait(false);
            }
            _resync = false;
        }
        if (position.CompareTo(_last) > 0)
            return true;
        Skipped++;
        return false;
    }

    /// <summary>Publishes a message with the reused headers, its acknowledgement awaited later (<see cref="DrainAsync"/>).</summary>
    private async ValueTask PublishMessageAsync(string subject, ArrayBufferWriter<byte>? body, Position position, SyncTableInfo? table, ChangeKind? kind,
        DateTimeOffset commitTime, CancellationToken cancellationToken)
    {
        var replyTo = _acks.Next(out var reply);
        try
        {
            await _connection.PublishAsync(subject, body?.WrittenMemory ?? default, _headers, replyTo, NatsRawSerializer<ReadOnlyMemory<byte>>.Default,
                cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (NatsPayloadTooLargeException e)
        {
            await ResetAsync().ConfigureAwait(false);
            throw new DBSyncConfigurationException(
                $"Publishing {What(table, kind)} (transaction committed at {new NpgsqlLogSequenceNumber(position.Commit)}, change {position.Index}) makes a message of " +
                $"{body?.WrittenCount ?? 0} bytes, more than the NATS server's max_payload allows. Raise max_payload in the server's configuration (up to 64 MB), or map fewer or smaller columns.", e);
        }
        catch (Exception e) when (IsLoss(e, cancellationToken))
        {
            throw await LostAsync(e, position).ConfigureAwait(false);
        }
        if (_pending.Count == 0)
            _firstPendingAt = Stopwatch.GetTimestamp();
        _lastSequence++;
        _pending.Enqueue(new Pending(reply, position, _lastSequence, table, kind, commitTime));
        if (_pending.Count >= _options.MaxInFlight)
            await DrainAsync(cancellationToken).ConfigureAwait(false);
    }

    private static string What(SyncTableInfo? table, ChangeKind? kind)
        => table is null ? "the commit message" : $"the {ChangeMessages.KindName(kind!.Value)} of {table.DisplayName}";

    async ValueTask<bool> ICommitGroupSink.OnTransactionEndAsync(NpgsqlLogSequenceNumber commitLsn, NpgsqlLogSequenceNumber endLsn, uint xid, bool mayGroup,
        CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await PublishTransactionEndAsync(commitLsn, endLsn, cancellationToken).ConfigureAwait(false);
        // What JetStream acknowledged already is taken now (without waiting): its commit-to-ack time is measured when it
        // came, and the transactions it completes are confirmed sooner.
        await DrainAsync(cancellationToken, wait: false).ConfigureAwait(false);
        if (_pending.Count == 0)
            return false; // nothing of it awaits an acknowledgement
        if (mayGroup && _pending.Count < _options.MaxInFlight && Stopwatch.GetElapsedTime(_firstPendingAt) < _options.MaxAckDelay)
            return true;
        await DrainAsync(cancellationToken).ConfigureAwait(false);
        return false;
    }

    ValueTask ICommitGroupSink.CommitGroupAsync(CancellationToken cancellationToken) => DrainAsync(cancellationToken);

    /// <summary>Awaits the acknowledgement of every message published, in order (with <paramref name="wait"/> false,
    /// takes those that came, up to the first that did not). Whatever ends it early drops the rest (none of it is
    /// confirmed) and has the stream's end read again before the next publish.</summary>
    private async ValueTask DrainAsync(CancellationToken cancellationToken, bool wait = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            await DrainPendingAsync(wait, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception)
        {
            await ResetAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async ValueTask DrainPendingAsync(bool wait, CancellationToken cancellationToken)
    {
        while (_pending.TryPeek(out var pending))
        {
            PublishAck ack;
            try
            {
                if (!wait)
                {
                    if (!_acks.TryTake(pending.Reply, out ack))
                        return;
                }
                else
                {
                    ack = await _acks.WaitAsync(pending.Reply, _connection.Opts.RequestTimeout, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (IsLoss(e, cancellationToken))
            {
                throw await LostAsync(e, pending.Position).ConfigureAwait(false);
            }
            var commitLsn = new NpgsqlLogSequenceNumber(pending.Position.Commit);
            if (ack.Error is { } error)
            {
                if (ack.ErrCode == 10054)
                {
                    await ResetAsync().ConfigureAwait(false);
                    throw new DBSyncConfigurationException(
                        $"Stream {_stream} refused {What(pending.Table, pending.Kind)} (transaction committed at {commitLsn}, change {pending.Position.Index}): " +
                        $"{error}. Raise the stream's max_msg_size, or map fewer or smaller columns.");
                }
                // A full stream (10077), a message behind one that was not stored (10071, wrong last sequence), a leader
                // that went away: publish again from the first message the stream lacks, after the reconnect delay.
                throw await LostAsync(new DBSyncException($"JetStream refused the message ({error})"), pending.Position).ConfigureAwait(false);
            }
            if (ack.Sequence != pending.Sequence)
            {
                throw await LostAsync(new DBSyncException(
                    $"JetStream stored the message at sequence {ack.Sequence} where DBSync expected {pending.Sequence}{(ack.Duplicate ? " (a duplicate)" : "")}: another publisher writes to stream {_stream}, which must be this pipeline's own"),
                    pending.Position).ConfigureAwait(false);
            }
            _pending.Dequeue();
            _last = pending.Position;
            _lossesSinceAck = 0;
            if (!ack.Duplicate)
            {
                Published++;
                if (JetStreamMetrics.Published.Enabled)
                    JetStreamMetrics.Published.Add(1, _tags);
            }
            if (JetStreamMetrics.CommitToAck.Enabled)
                JetStreamMetrics.CommitToAck.Record((DateTimeOffset.UtcNow - pending.CommitTime).TotalSeconds, _tags);
        }
    }

    /// <summary>A new session: what awaited an acknowledgement belongs to transactions the stream delivers again. The
    /// stream is created when missing, and the last message in it says where publishing stopped.</summary>
    async ValueTask ICommitGroupSink.OnSessionStartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await ResetAsync().ConfigureAwait(false);
        _transaction = default;
        try
        {
            var stream = await EnsureStreamAsync(cancellationToken).ConfigureAwait(false);
            await ReadLastAsync(stream, cancellationToken).ConfigureAwait(false);
            await _acks.StartAsync(_options.MaxInFlight * 2 + 1024, cancellationToken).ConfigureAwait(false);
            _resync = false;
            _reachedOnce = true;
        }
        catch (Exception e) when (IsLoss(e, cancellationToken) && !_reachedOnce)
        {
            // Never reached since this publisher was created: a wrong address, or a server without JetStream, is an error
            // to fix, not an outage to wait out (once reached, the same failure is waited out).
            throw new DBSyncConfigurationException(
                $"Cannot reach JetStream at {_connection.Opts.Url} ({e.Message}). Check the NATS connection's address (NatsOpts.Url), that the server runs, " +
                "and that it has JetStream enabled (nats-server -js, or a jetstream block in its configuration).", e);
        }
        catch (Exception e) when (IsLoss(e, cancellationToken))
        {
            Interruptions++;
            JetStreamMetrics.Interruptions.Add(1, _tags);
            throw new StreamInterruptedException(new DBSyncException($"JetStream stream {_stream} cannot be reached yet ({e.Message}).", e))
            {
                Repeated = ++_lossesSinceAck > 1,
            };
        }
    }

    private async Task<INatsJSStream> EnsureStreamAsync(CancellationToken cancellationToken)
    {
        var subjects = _options.SubjectPrefix + ".>";
        INatsJSStream stream;
        try
        {
            stream = await _js.GetStreamAsync(_stream, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSApiException e) when (e.Error.ErrCode == 10059)
        {
            var config = new StreamConfig(_stream, [subjects])
            {
                NumReplicas = _options.Replicas,
                Storage = _options.Storage == JetStreamStorage.Memory ? StreamConfigStorage.Memory : StreamConfigStorage.File,
                DuplicateWindow = _options.DuplicateWindow,
                MaxBytes = _options.MaxBytes,
                Discard = StreamConfigDiscard.New,
                Retention = StreamConfigRetention.Limits,
                AllowDirect = true,
            };
            try
            {
                stream = await _js.CreateStreamAsync(config, cancellationToken).ConfigureAwait(false);
                Log.StreamCreated(_logger, _stream, subjects, _options.Replicas);
            }
            catch (NatsJSApiException created) when (created.Error.ErrCode == 10058)
            {
                stream = await _js.GetStreamAsync(_stream, cancellationToken: cancellationToken).ConfigureAwait(false); // another instance created it
            }
            catch (NatsJSApiException created) when (created.Error.ErrCode != 10008) // 10008: JetStream is electing a leader
            {
                throw new DBSyncConfigurationException(
                    $"JetStream refused to create stream {_stream} for subjects {subjects} ({created.Error.Code}/{created.Error.ErrCode}: {created.Error.Description}). " +
                    "Check JetStreamPublisherOptions (Replicas above 1 needs a cluster; the subjects may not overlap another stream's).", created);
            }
        }
        if (!_streamReady)
            CheckStream(stream.Info.Config, subjects);
        _streamReady = true;
        return stream;
    }

    /// <summary>An existing stream must take the pipeline's subjects and keep what is published to it; DBSync leaves its
    /// limits alone otherwise.</summary>
    private void CheckStream(StreamConfig config, string subjects)
    {
        string? problem = null;
        if (config.Subjects is null || !config.Subjects.Contains(subjects))
            problem = $"its subjects are {string.Join(", ", config.Subjects ?? [])}, not {subjects} (JetStreamPublisherOptions.SubjectPrefix)";
        else if (config.Retention != StreamConfigRetention.Limits)
            problem = $"its retention is {config.Retention}: a stream whose messages go once consumed cannot tell DBSync where it stopped; use the limits retention";
        else if (config.MaxAge > TimeSpan.Zero)
            problem = $"its messages expire after {config.MaxAge} (max age): after a quiet period longer than that, the stream's last message is gone and DBSync cannot tell where it stopped; remove the max age (limit the stream by size instead)";
        else if (config.MaxMsgsPerSubject > 0)
            problem = $"it keeps {config.MaxMsgsPerSubject} message(s) per subject: JetStream drops older ones whatever the discard policy; remove the per-subject limit";
        else if (config.Discard != StreamConfigDiscard.New && (config.MaxBytes > 0 || config.MaxMsgs > 0))
            problem = $"its discard policy is {config.Discard} with limits set: JetStream would drop published messages to make room; use the new discard policy";
        else if (config.NumReplicas != _options.Replicas)
            problem = $"it has {config.NumReplicas} replica(s) where JetStreamPublisherOptions.Replicas says {_options.Replicas}";
        else if ((config.Storage == StreamConfigStorage.Memory) != (_options.Storage == JetStreamStorage.Memory))
            problem = $"its storage is {config.Storage} where JetStreamPublisherOptions.Storage says {_options.Storage}";
        else if (config.DuplicateWindow != _options.DuplicateWindow)
            problem = $"its duplicate window is {config.DuplicateWindow} where JetStreamPublisherOptions.DuplicateWindow says {_options.DuplicateWindow}";
        if (problem is not null)
        {
            throw new DBSyncConfigurationException(
                $"JetStream stream {_stream} exists, but {problem}. Change the stream (nats stream edit {_stream}) or the option, or name another stream (JetStreamPublisherOptions.Stream).");
        }
    }

    private async Task ReadLastAsync(INatsJSStream stream, CancellationToken cancellationToken)
    {
        await stream.RefreshAsync(cancellationToken).ConfigureAwait(false);
        var lastSequence = stream.Info.State.LastSeq;
        _lastSequence = lastSequence;
        _last = default;
        if (lastSequence == 0)
            return;
        StoredMessage message;
        try
        {
            message = (await stream.GetAsync(new StreamMsgGetRequest { Seq = lastSequence }, cancellationToken).ConfigureAwait(false)).Message;
        }
        catch (NatsJSApiException e) when (e.Error.ErrCode == 10037)
        {
            throw new DBSyncConfigurationException(
                $"The last message of JetStream stream {_stream} (sequence {lastSequence}) is gone (deleted, or past the stream's max age), so DBSync cannot tell " +
                "where it stopped publishing. Keep the stream's last message (no max age shorter than DBSync's downtime), or publish to a new stream.", e);
        }
        var headers = ParseHeaders(message.Hdrs);
        if (!headers.TryGetValue(Headers.Slot, out var slot) || slot != _slot
            || !headers.TryGetValue(Headers.CommitLsn, out var lsnText) || !NpgsqlLogSequenceNumber.TryParse(lsnText.ToString(), out var lsn)
            || !headers.TryGetValue(Headers.Index, out var indexText) || !int.TryParse(indexText, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            throw new DBSyncConfigurationException(
                $"The last message of JetStream stream {_stream} (sequence {lastSequence}, subject {message.Subject}) was not published by the DBSync pipeline of slot " +
                $"\"{_slot}\" ({Headers.Slot}: {(slot.Count == 0 ? "none" : slot.ToString())}). Each pipeline needs a stream of its own (JetStreamPublisherOptions.Stream).");
        }
        var part = headers.TryGetValue(Headers.Part, out var partText) && int.TryParse(partText, NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p + 1 : 0;
        _last = new Position((ulong)lsn, index, part);
        Log.Resuming(_logger, _stream, lastSequence, lsn.ToString(), index);
    }

    /// <summary>Where a pipeline's stream ends: its last message's sequence and the change it carries; null for an empty
    /// stream. What <c>dbsync lag --nats</c> shows.</summary>
    /// <exception cref="NatsJSApiException">The stream does not exist (error code 10059), or another JetStream error.</exception>
    public static async Task<JetStreamPosition?> ReadLastPositionAsync(INatsConnection connection, string stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var info = await new NatsJSContext(connection).GetStreamAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
        var last = info.Info.State.LastSeq;
        if (last == 0)
            return null;
        var message = (await info.GetAsync(new StreamMsgGetRequest { Seq = last }, cancellationToken).ConfigureAwait(false)).Message;
        var headers = ParseHeaders(message.Hdrs);
        string? Header(string name) => headers.TryGetValue(name, out var value) ? value.ToString() : null;
        return new JetStreamPosition(last, info.Info.State.Messages, Header(Headers.Slot),
            NpgsqlLogSequenceNumber.TryParse(Header(Headers.CommitLsn) ?? "", out var lsn) ? lsn : null,
            DateTimeOffset.TryParse(Header(Headers.CommitTime), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) ? time : null);
    }

    private static NatsHeaders ParseHeaders(string? base64)
    {
        var headers = new NatsHeaders();
        if (string.IsNullOrEmpty(base64))
            return headers;
        var bytes = Convert.FromBase64String(base64);
        new NatsHeaderParser(Encoding.UTF8).ParseHeaders(new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes)), headers);
        return headers;
    }

    private static bool IsLoss(Exception e, CancellationToken cancellationToken)
        => !cancellationToken.IsCancellationRequested && e is NatsException or TimeoutException or OperationCanceledException;

    private async Task<Exception> LostAsync(Exception e, Position position)
    {
        await ResetAsync().ConfigureAwait(false);
        Interruptions++;
        JetStreamMetrics.Interruptions.Add(1, _tags);
        Log.PublishFailed(_logger, _stream, new NpgsqlLogSequenceNumber(position.Commit).ToString(), position.Index, e.Message);
        return new StreamInterruptedException(new DBSyncException(
            $"Publishing to JetStream stream {_stream} failed at the change {position.Index} of the transaction committed at {new NpgsqlLogSequenceNumber(position.Commit)} " +
            $"({e.Message}); nothing after the last acknowledged message is confirmed, and DBSync publishes again from the first message the stream lacks.", e))
        {
            Repeated = ++_lossesSinceAck > 1,
        };
    }

    private ValueTask ResetAsync()
    {
        // Their acknowledgements, should they come, are skipped: each is numbered.
        _resync = true;
        _pending.Clear();
        return ValueTask.CompletedTask;
    }

    /// <summary>Drops what awaits an acknowledgement (nothing of it was confirmed). Dispose the publisher after the
    /// client's run ended: a run still going fails its next transaction, unconfirmed.</summary>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        await ResetAsync().ConfigureAwait(false);
        await _acks.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>A message awaiting its acknowledgement: its reply number, position and expected stream sequence; the
    /// table and kind for messages (none on a commit message); the commit time for the commit-to-ack metric.</summary>
    private readonly record struct Pending(long Reply, Position Position, ulong Sequence, SyncTableInfo? Table, ChangeKind? Kind, DateTimeOffset CommitTime);

    /// <summary>The transaction whose changes are being published: what its commit messages say, and the partitions they
    /// go to.</summary>
    private struct Transaction(ulong commit, string commitText, uint xid, DateTimeOffset commitTime, int partitions)
    {
        public readonly ulong Commit = commit;
        public readonly DateTimeOffset CommitTime = commitTime;
        public readonly string CommitText = commitText;
        public readonly string XidText = xid.ToString(CultureInfo.InvariantCulture);
        public readonly string CommitTimeText = commitTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
        public readonly bool[]? Parts = partitions > 0 ? new bool[partitions] : null;
        public int Changes;
        public bool Touched;

        public void Touch(int partition)
        {
            Touched = true;
            if (partition >= 0)
                Parts![partition] = true;
        }
    }

    /// <summary>Where a message stands in the stream of changes: the transaction's commit position, the change's index in
    /// it, and (for a change sent to several partitions) the partition plus one.</summary>
    private readonly record struct Position(ulong Commit, int Index, int Part) : IComparable<Position>
    {
        public int CompareTo(Position other)
        {
            var c = Commit.CompareTo(other.Commit);
            if (c != 0)
                return c;
            c = Index.CompareTo(other.Index);
            return c != 0 ? c : Part.CompareTo(other.Part);
        }
    }
}

/// <summary>The publisher's instruments, on DBSync's meter (<see cref="DBSyncDiagnostics.MeterName"/>).</summary>
internal static class JetStreamMetrics
{
    public static readonly System.Diagnostics.Metrics.Counter<long> Published = DBSync.Diagnostics.Telemetry.Meter.CreateCounter<long>(
        DBSyncDiagnostics.Metrics.JetStreamPublished, "{message}", "Messages the JetStream publisher had stored by JetStream.");

    public static readonly System.Diagnostics.Metrics.Histogram<double> CommitToAck = DBSync.Diagnostics.Telemetry.Meter.CreateHistogram(
        DBSyncDiagnostics.Metrics.JetStreamCommitToAck, "s", "From a change's commit (the server's clock) to JetStream's acknowledgement of its message.", tags: null,
        new System.Diagnostics.Metrics.InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });

    public static readonly System.Diagnostics.Metrics.Counter<long> Interruptions = DBSync.Diagnostics.Telemetry.Meter.CreateCounter<long>(
        DBSyncDiagnostics.Metrics.JetStreamInterruptions, "{interruption}", "Times publishing was interrupted and went on from where the stream ends.");
}

/// <summary>Where a stream ends (<see cref="JetStreamPublisher.ReadLastPositionAsync"/>).</summary>
/// <param name="Sequence">The last message's stream sequence.</param>
/// <param name="Messages">How many messages the stream holds.</param>
/// <param name="Slot">The slot of the pipeline that published it (null for a message DBSync did not publish).</param>
/// <param name="CommitLsn">The commit position of its change's transaction.</param>
/// <param name="CommitTime">Its transaction's commit time.</param>
public sealed record JetStreamPosition(ulong Sequence, long Messages, string? Slot, NpgsqlLogSequenceNumber? CommitLsn, DateTimeOffset? CommitTime);

internal static partial class Log
{
    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Created JetStream stream {Stream} for subjects {Subjects} with {Replicas} replica(s).")]
    public static partial void StreamCreated(ILogger logger, string stream, string subjects, int replicas);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Information, Message = "JetStream stream {Stream} ends at sequence {Sequence}, the change {Index} of the transaction committed at {CommitLsn}: publishing resumes after it.")]
    public static partial void Resuming(ILogger logger, string stream, ulong sequence, string commitLsn, int index);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "Publishing to JetStream stream {Stream} failed at the change {Index} of the transaction committed at {CommitLsn}: {Reason}. Nothing after the last acknowledged message is confirmed; publishing resumes from the first message the stream lacks.")]
    public static partial void PublishFailed(ILogger logger, string stream, string commitLsn, int index, string reason);
}
