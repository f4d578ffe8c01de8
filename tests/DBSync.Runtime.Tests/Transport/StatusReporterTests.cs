using System.Buffers.Binary;
using DBSync.Protocol.Wire;
using DBSync.Replication.Transport;
using Xunit;

namespace DBSync.Runtime.Tests.Transport;

/// <summary>The direct transport's status decisions, given a clock that only moves when told.</summary>
[Trait("Category", "Transport")]
public sealed class StatusReporterTests
{
    private static readonly StreamTimings s_timings = new(StatusInterval: TimeSpan.FromSeconds(10), ReceiveTimeout: TimeSpan.FromSeconds(60), BatchDelay: TimeSpan.Zero);

    [Fact]
    public void Keepalive_IsAnsweredOnlyWhenItAsks_AndMovesTheReceivedPosition()
    {
        var reporter = new StatusReporter(s_timings, new ManualClock());

        Assert.False(reporter.OnKeepalive(new KeepaliveMessage(WalEnd: 500, ReplyRequested: false)));
        Assert.True(reporter.OnKeepalive(new KeepaliveMessage(WalEnd: 400, ReplyRequested: true)));
        Assert.Equal(500UL, reporter.Received);
    }

    [Fact]
    public void Tick_BeforeStatusInterval_DoesNothing_AndAfterIt_Reports()
    {
        var clock = new ManualClock();
        var reporter = new StatusReporter(s_timings, clock);

        clock.Advance(TimeSpan.FromSeconds(9.9));
        Assert.Equal(StatusAction.None, reporter.OnTick(waiting: false));
        clock.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(StatusAction.Report, reporter.OnTick(waiting: false));

        reporter.WriteStatus(new byte[FrontendMessages.StandbyStatusLength], replyRequested: false);
        Assert.Equal(StatusAction.None, reporter.OnTick(waiting: false));
    }

    [Fact]
    public void Tick_WhileAReadWaitsPastHalfReceiveTimeout_Probes_AndPastAllOfIt_GivesUp()
    {
        var clock = new ManualClock();
        var reporter = new StatusReporter(s_timings with { StatusInterval = TimeSpan.FromHours(1) }, clock);

        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(StatusAction.None, reporter.OnTick(waiting: true));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(StatusAction.Probe, reporter.OnTick(waiting: true));
        Assert.Equal(StatusAction.None, reporter.OnTick(waiting: false)); // the silence only counts while a read waits
        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(StatusAction.GiveUp, reporter.OnTick(waiting: true));
        Assert.Equal(TimeSpan.FromSeconds(61), reporter.Silence);
    }

    [Fact]
    public void DataArrived_StartsTheSilenceAgain()
    {
        var clock = new ManualClock();
        var reporter = new StatusReporter(s_timings with { StatusInterval = TimeSpan.FromHours(1) }, clock);

        clock.Advance(TimeSpan.FromSeconds(59));
        reporter.DataArrived();
        clock.Advance(TimeSpan.FromSeconds(29));

        Assert.Equal(StatusAction.None, reporter.OnTick(waiting: true));
        Assert.Equal(TimeSpan.FromSeconds(29), reporter.Silence);
    }

    [Fact]
    public void WriteStatus_ReportsTheConfirmedPosition_AndAsReceivedTheFurtherOfBoth()
    {
        var clock = new ManualClock();
        var reporter = new StatusReporter(s_timings, clock);
        var status = new byte[FrontendMessages.StandbyStatusLength];

        reporter.AdvanceConfirmed(300);
        reporter.WriteStatus(status, replyRequested: true);
        Assert.Equal((300UL, 300UL, 300UL, true), Read(status));

        reporter.AdvanceReceived(900);
        reporter.AdvanceConfirmed(200); // a confirmed position never moves back
        reporter.WriteStatus(status, replyRequested: false);
        Assert.Equal((900UL, 300UL, 300UL, false), Read(status));
        Assert.Equal(clock.GetUtcNow(), PostgresTime(status));
    }

    [Theory]
    [InlineData(10, 60, 10)]
    [InlineData(10, 8, 2)]
    public void TickInterval_IsStatusInterval_OrAQuarterOfReceiveTimeoutWhenShorter(int statusSeconds, int receiveSeconds, int tickSeconds)
    {
        var reporter = new StatusReporter(new StreamTimings(TimeSpan.FromSeconds(statusSeconds), TimeSpan.FromSeconds(receiveSeconds), TimeSpan.Zero), new ManualClock());

        Assert.Equal(TimeSpan.FromSeconds(tickSeconds), reporter.TickInterval);
    }

    private static (ulong Received, ulong Flushed, ulong Applied, bool ReplyRequested) Read(byte[] status)
    {
        Assert.Equal((byte)'d', status[0]);
        Assert.Equal((byte)'r', status[5]);
        return (BinaryPrimitives.ReadUInt64BigEndian(status.AsSpan(6)), BinaryPrimitives.ReadUInt64BigEndian(status.AsSpan(14)),
            BinaryPrimitives.ReadUInt64BigEndian(status.AsSpan(22)), status[38] == 1);
    }

    private static DateTimeOffset PostgresTime(byte[] status)
        => new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(BinaryPrimitives.ReadInt64BigEndian(status.AsSpan(30)) * TimeSpan.TicksPerMicrosecond);

    /// <summary>A clock that moves only by <see cref="Advance"/>.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private readonly DateTimeOffset _origin = new(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public override DateTimeOffset GetUtcNow() => _origin.AddTicks(_ticks);

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
