using DBSync.Replication.Transport;

namespace DBSync.Replication;

/// <summary>
/// Confirms the server's keepalive position while no transaction is in flight, so a slot whose tables are quiet does not
/// hold back WAL. The transports consume keepalives themselves and fold their position into LastReceivedLsn, as they do
/// the end position of data frames; a frame's end can lie past the commit of a transaction still being delivered. So the
/// position is confirmed only when the read loop was idle and neither the frame count nor the position changed over a
/// whole interval: a transport hands the frames before a keepalive to the loop before it takes the keepalive's position,
/// which would have changed the count.
/// </summary>
internal sealed class IdleConfirmation(ConfirmedPosition confirmed)
{
    private volatile bool _idle;
    private long _frames;

    /// <summary>Whether the read loop is between transactions, waiting for a frame. Set by the read loop only.</summary>
    public bool Idle
    {
        get => _idle;
        set => _idle = value;
    }

    /// <summary>Frames the read loop received in this session.</summary>
    public long FramesReceived => Interlocked.Read(ref _frames);

    /// <summary>The read loop received a frame.</summary>
    public void OnFrame() => Interlocked.Increment(ref _frames);

    /// <summary>Checks every <paramref name="interval"/> until cancelled.</summary>
    public async Task RunAsync(IReplicationTransport transport, TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        long seenFrames = -1;
        ulong seenLsn = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                var idle = _idle;
                var frames = FramesReceived;
                var lsn = transport.LastReceivedLsn;
                idle &= _idle;
                if (idle && frames == seenFrames && lsn == seenLsn && confirmed.Advance(lsn))
                    transport.SetConfirmed(confirmed.Value);
                (seenFrames, seenLsn) = idle ? (frames, lsn) : (-1, 0UL);
            }
        }
        catch (OperationCanceledException)
        {
            // The session is ending.
        }
    }
}
