using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using NATS.Client.Core;

namespace DBSync.Nats;

/// <summary>
/// The acknowledgements of pipelined JetStream publishes, on one inbox subscription of the publisher's own: each publish
/// names the reply subject <c>&lt;inbox&gt;.&lt;number&gt;</c>, numbered in publish order, and JetStream answers there as it
/// stores the messages. One subscription for every publish, instead of one reply subscription and future per message.
/// </summary>
internal sealed class PublishAcks : IAsyncDisposable
{
    private readonly INatsConnection _connection;
    private readonly string _inbox;
    private INatsSub<ReadOnlyMemory<byte>>? _subscription;
    private CancellationTokenSource _timeout = new();
    private long _last;
    private NatsMsg<ReadOnlyMemory<byte>>? _ahead;

    public PublishAcks(INatsConnection connection)
    {
        _connection = connection;
        // Under _INBOX (which permissions usually grant for replies), but not under the connection's own inbox prefix:
        // the client routes those subjects to its shared request inbox by exact subject, never to a wildcard.
        var unique = connection.NewInbox();
        _inbox = "_INBOX." + unique[(unique.LastIndexOf('.') + 1)..] + ".";
    }

    /// <summary>Subscribes to the inbox (once), and drops acknowledgements of publishes no longer awaited.</summary>
    /// <param name="capacity">How many acknowledgements may wait to be read: more than may be awaited at once, so that the
    /// connection never waits for this subscription's reader.</param>
    /// <param name="cancellationToken">Ends the wait for the subscription.</param>
    public async ValueTask StartAsync(int capacity, CancellationToken cancellationToken)
    {
        if (_subscription is null)
        {
            var opts = new NatsSubOpts { ChannelOpts = new NatsSubChannelOpts { Capacity = capacity, FullMode = BoundedChannelFullMode.DropOldest } };
            _subscription = await _connection.SubscribeCoreAsync(_inbox + "*", serializer: NatsRawSerializer<ReadOnlyMemory<byte>>.Default, opts: opts,
                cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        _ahead = null;
        while (_subscription.Msgs.TryRead(out _))
        {
        }
    }

    /// <summary>The reply subject of the next publish, and its number.</summary>
    public string Next(out long number)
    {
        number = ++_last;
        return _inbox + number.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Waits for the acknowledgement of the publish numbered <paramref name="number"/>, skipping those of publishes
    /// before it that are no longer awaited (dropped after a failure).</summary>
    /// <exception cref="TimeoutException">None came within <paramref name="timeout"/>.</exception>
    /// <exception cref="NatsException">The subscription ended, or the acknowledgement of a later publish came first.</exception>
    public async ValueTask<PublishAck> WaitAsync(long number, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var messages = (_subscription ?? throw new InvalidOperationException("StartAsync was not called.")).Msgs;
        while (true)
        {
            if (TryTake(number, out var ack))
                return ack;
            _ahead = await ReadAsync(messages, number, timeout, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The acknowledgement of the publish numbered <paramref name="number"/> if it has come, without waiting.</summary>
    /// <exception cref="NatsException">The acknowledgement of a later publish came first.</exception>
    public bool TryTake(long number, out PublishAck ack)
    {
        var messages = (_subscription ?? throw new InvalidOperationException("StartAsync was not called.")).Msgs;
        while (_ahead is { } message || messages.TryRead(out message))
        {
            _ahead = null;
            var answered = message.Subject.Length > _inbox.Length
                           && long.TryParse(message.Subject.AsSpan(_inbox.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                ? n
                : -1;
            if (answered < number)
                continue; // a publish dropped after a failure, or not ours
            if (answered > number)
                throw new NatsException($"JetStream acknowledged publish {answered} before publish {number}, whose acknowledgement did not come");
            ack = PublishAck.Parse(message);
            return true;
        }
        ack = default;
        return false;
    }

    private async ValueTask<NatsMsg<ReadOnlyMemory<byte>>> ReadAsync(ChannelReader<NatsMsg<ReadOnlyMemory<byte>>> messages, long number, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        if (!_timeout.TryReset())
        {
            _timeout.Dispose();
            _timeout = new CancellationTokenSource();
        }
        _timeout.CancelAfter(timeout);
        using var linked = cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _timeout);
        try
        {
            return await messages.ReadAsync(_timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"JetStream's acknowledgement of publish {number} did not come within {timeout.TotalSeconds:0.#} s (NatsOpts.RequestTimeout)");
        }
        catch (ChannelClosedException e)
        {
            throw new NatsException("The subscription for JetStream's acknowledgements ended", e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_subscription is not null)
            await _subscription.DisposeAsync().ConfigureAwait(false);
        _subscription = null;
        _timeout.Dispose();
    }
}

/// <summary>JetStream's answer to a publish: where it stored the message (or that it had it already), or an error.</summary>
internal readonly record struct PublishAck(ulong Sequence, bool Duplicate, int ErrCode, string? Error)
{
    /// <summary>Reads a publish acknowledgement, <c>{"stream":"S","seq":12,"duplicate":true}</c> or
    /// <c>{"error":{"code":400,"err_code":10071,"description":"..."}}</c>; a "no responders" status or anything that does not
    /// read as one is an error.</summary>
    public static PublishAck Parse(in NatsMsg<ReadOnlyMemory<byte>> message)
    {
        if (message.Headers is { Code: 503 })
            return new PublishAck(0, false, 0, "no responders: JetStream does not answer for the stream's subjects");
        try
        {
            var reader = new Utf8JsonReader(message.Data.Span);
            ulong sequence = 0;
            bool duplicate = false, sawSequence = false;
            int errCode = 0, code = 0;
            string? description = null;
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return Unreadable(message);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("seq"u8))
                {
                    reader.Read();
                    sequence = reader.GetUInt64();
                    sawSequence = true;
                }
                else if (reader.ValueTextEquals("duplicate"u8))
                {
                    reader.Read();
                    duplicate = reader.TokenType == JsonTokenType.True;
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                        return Unreadable(message);
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("code"u8))
                        {
                            reader.Read();
                            code = reader.GetInt32();
                        }
                        else if (reader.ValueTextEquals("err_code"u8))
                        {
                            reader.Read();
                            errCode = reader.GetInt32();
                        }
                        else if (reader.ValueTextEquals("description"u8))
                        {
                            reader.Read();
                            description = reader.GetString();
                        }
                        else
                        {
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            if (code != 0 || errCode != 0 || description is not null)
                return new PublishAck(0, false, errCode, $"{code}/{errCode}: {description}");
            return sawSequence ? new PublishAck(sequence, duplicate, 0, null) : Unreadable(message);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return Unreadable(message);
        }
    }

    private static PublishAck Unreadable(in NatsMsg<ReadOnlyMemory<byte>> message)
        => new(0, false, 0, $"an answer that is no publish acknowledgement ({message.Data.Length} bytes)");
}
