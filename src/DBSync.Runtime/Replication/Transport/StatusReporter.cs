using DBSync.Protocol.Wire;

namespace DBSync.Replication.Transport;

/// <summary>What the status timer does on one tick.</summary>
internal enum StatusAction
{
    /// <summary>Nothing is due.</summary>
    None,

    /// <summary>StatusInterval passed since the last update: report the positions.</summary>
    Report,

    /// <summary>A read has waited half of ReceiveTimeout without a byte: report and ask the server to answer at once.</summary>
    Probe,

    /// <summary>A read has waited all of ReceiveTimeout without a byte: the connection is given up.</summary>
    GiveUp,
}

/// <summary>
/// The direct transport's status reporting, without the socket: the positions it reports (the server's, as received,
/// and the one confirmed), when a keepalive is answered, and what the status timer does given the clock: a status update
/// every StatusInterval; while a read waits, after half of ReceiveTimeout without a byte from the server (a live
/// walsender sends keepalives well within it) updates that ask for an immediate reply, and after all of it the
/// connection given up, as Npgsql's WalReceiverTimeout does. Safe to use from the reader thread and the timer at once.
/// </summary>
internal sealed class StatusReporter(StreamTimings timings, TimeProvider clock)
{
    private readonly ConfirmedPosition _received = new();
    private readonly ConfirmedPosition _confirmed = new();
    private long _lastData = clock.GetTimestamp();
    private long _lastStatus = clock.GetTimestamp();

    public StatusReporter(StreamTimings timings)
        : this(timings, TimeProvider.System)
    {
    }

    /// <summary>How often the timer ticks: every StatusInterval, and a few times per ReceiveTimeout to watch the silence.</summary>
    public TimeSpan TickInterval => TimeSpan.FromTicks(Math.Min(timings.StatusInterval.Ticks, timings.ReceiveTimeout.Ticks / 4));

    public StreamTimings Timings => timings;

    /// <summary>The server's WAL position as of the last frame or keepalive taken.</summary>
    public ulong Received => _received.Value;

    /// <summary>The position reported as confirmed (flushed and applied).</summary>
    public ulong Confirmed => _confirmed.Value;

    /// <summary>How long the server has sent nothing.</summary>
    public TimeSpan Silence => clock.GetElapsedTime(Volatile.Read(ref _lastData));

    /// <summary>Bytes arrived from the server (or a command went out whose answer the silence counts towards).</summary>
    public void DataArrived() => Volatile.Write(ref _lastData, clock.GetTimestamp());

    /// <summary>A frame or keepalive told the server's position.</summary>
    public void AdvanceReceived(ulong walEnd) => _received.Advance(walEnd);

    /// <summary>The session confirmed up to <paramref name="lsn"/>; the confirmed position only moves forward.</summary>
    public void AdvanceConfirmed(ulong lsn) => _confirmed.Advance(lsn);

    /// <summary>A keepalive: its position is taken; true when it asks for an answer now.</summary>
    public bool OnKeepalive(KeepaliveMessage keepalive)
    {
        AdvanceReceived(keepalive.WalEnd);
        return keepalive.ReplyRequested;
    }

    /// <summary>What the status timer does now; <paramref name="waiting"/>: a read is blocked waiting for the server.</summary>
    public StatusAction OnTick(bool waiting)
    {
        var now = clock.GetTimestamp();
        var silence = clock.GetElapsedTime(Volatile.Read(ref _lastData), now);
        if (waiting && silence > timings.ReceiveTimeout)
            return StatusAction.GiveUp;
        if (waiting && silence > timings.ReceiveTimeout / 2)
            return StatusAction.Probe;
        return clock.GetElapsedTime(Volatile.Read(ref _lastStatus), now) >= timings.StatusInterval ? StatusAction.Report : StatusAction.None;
    }

    /// <summary>Writes a standby status update into <paramref name="destination"/> and counts it as sent: received is the
    /// further of the server's position and the confirmed one, flushed and applied the confirmed one.</summary>
    public void WriteStatus(Span<byte> destination, bool replyRequested)
    {
        var confirmed = Confirmed;
        FrontendMessages.WriteStandbyStatus(destination, Math.Max(Received, confirmed), confirmed, confirmed, clock.GetUtcNow().UtcDateTime, replyRequested);
        Volatile.Write(ref _lastStatus, clock.GetTimestamp());
    }
}
