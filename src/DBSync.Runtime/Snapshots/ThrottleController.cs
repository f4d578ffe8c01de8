namespace DBSync.Snapshots;

/// <summary>
/// How much of the time a snapshot reads chunks (its share), from the measured effect of its reads on the workload of
/// its database. Without a workload (no busy session beside DBSync) the share is 1. With one, it alternates a running
/// window (chunks at the current share) and a paused window (no chunk), compares the database's transactions per second
/// in both (less DBSync's own: its chunks' and samples' transactions), and moves the share toward the largest that costs the workload at most <c>maxImpact</c> of its rate: down in
/// proportion when the cost is above it, up when it is well below, never under <c>minShare</c>. Pure: the caller brings
/// the time and the samples (<see cref="SnapshotThrottle"/> on the server, the tests on a simulated workload).
/// </summary>
internal sealed class ThrottleController(double maxImpact, double minShare)
{
    /// <summary>How often the sessions are looked at.</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    /// <summary>The part of each window not counted: PostgreSQL backends report their transactions at most once a
    /// second, so those of the window before arrive in it.</summary>
    public static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);

    /// <summary>The counted part of a paused window.</summary>
    public static readonly TimeSpan PausedWindow = TimeSpan.FromSeconds(2);

    /// <summary>The counted part of a running window after the share changed; it doubles, up to
    /// <see cref="MaxRunningWindow"/>, while the share holds or grows, so the pauses to measure cost less.</summary>
    public static readonly TimeSpan FirstRunningWindow = TimeSpan.FromSeconds(2);

    public static readonly TimeSpan MaxRunningWindow = TimeSpan.FromSeconds(16);

    /// <summary>A window whose sample comes this much later than due is not counted: it did not run at the share.</summary>
    public static readonly TimeSpan MaxLate = TimeSpan.FromSeconds(10);

    /// <summary>A chunk that comes this much later than its read time after the pause before it ends the running window
    /// without counting it: snapshots were paused, or the stream held them, so chunks did not run at the share.</summary>
    public static readonly TimeSpan StallGap = TimeSpan.FromSeconds(2);

    /// <summary>Below this rate (transactions per second, paused), or below DBSync's own rate in the running window, the
    /// workload commits too little to measure against the statistics' grain (a backend reports its transactions up to a
    /// second late, or ten when it goes idle) and DBSync's own transactions; the share then holds.</summary>
    public const double MinRate = 10;

    /// <summary>The transactions of the snapshot's own per chunk in its database: the chunk's read, its two watermarks
    /// and the checkpoint saved after it.</summary>
    public const int OwnTransactionsPerChunk = 4;

    /// <summary>Samples in a row without a busy session after which the workload counts as gone: one sample may catch
    /// every session of a light workload between two statements.</summary>
    public const int IdleSamples = 3;

    private enum Phase { Watching, Running, Paused }

    private Phase _phase = Phase.Watching;
    private TimeSpan _due;
    private TimeSpan _nextCheck;
    private int _idleSamples;
    private bool _counting;
    private TimeSpan _from;
    private long _fromTransactions;
    private long _chunks;
    private long _fromChunks;
    private long _samples;
    private long _fromSamples;
    private double _runningRate;
    private double _ownRate;
    private TimeSpan _readyAt;
    private TimeSpan _runningWindow = FirstRunningWindow;

    /// <summary>The share a snapshot starts at when it first meets a workload, before anything is measured: full speed,
    /// which cost pgbench -c 4 about 10% on the 2-core machine where the defaults were chosen (docs/snapshots.md); the
    /// first measurement, a few seconds later, lowers it when the workload loses more.</summary>
    public const double InitialShare = 1;

    /// <summary>The share the snapshot reads at while the workload runs (the last one learnt).</summary>
    public double Share { get; private set; } = Math.Max(minShare, Math.Min(InitialShare, 1));

    /// <summary>The share to read at now: 1 without a workload.</summary>
    public double EffectiveShare => _phase == Phase.Watching ? 1 : Share;

    /// <summary>Whether a sample is due at <paramref name="now"/>.</summary>
    public bool SampleDue(TimeSpan now) => now >= _due || now >= _nextCheck;

    /// <summary>How long no chunk may be read from <paramref name="now"/> on: until the next sample of a paused
    /// window.</summary>
    public TimeSpan Hold(TimeSpan now) => _phase == Phase.Paused && _due > now ? _due - now : TimeSpan.Zero;

    /// <summary>A chunk that took <paramref name="chunkTime"/> was read by <paramref name="now"/>.</summary>
    public void ChunkRead(TimeSpan now, TimeSpan chunkTime)
    {
        _chunks++;
        if (_phase == Phase.Running && now - _readyAt > chunkTime + StallGap)
            Start(Phase.Running, now);
    }

    /// <summary>The pause from <paramref name="now"/> on after a chunk that took <paramref name="chunkTime"/>, so that
    /// reads take <see cref="EffectiveShare"/> of the time.</summary>
    public TimeSpan PauseAfter(TimeSpan now, TimeSpan chunkTime)
    {
        var share = EffectiveShare;
        var pause = share >= 1 ? TimeSpan.Zero : chunkTime * ((1 - share) / share);
        _readyAt = now + pause;
        return pause;
    }

    /// <summary>Takes the sample made at <paramref name="now"/>; returns the measurement when it ended a pair of
    /// windows.</summary>
    public ThrottleMeasurement? Observe(TimeSpan now, WorkloadSample sample)
    {
        _samples++;
        _nextCheck = now + CheckInterval;
        _idleSamples = sample.BusySessions == 0 ? _idleSamples + 1 : 0;
        if (_phase == Phase.Watching)
        {
            if (_idleSamples == 0)
                Start(Phase.Running, now);
            return null;
        }
        if (_idleSamples >= IdleSamples)
        {
            // Nobody to slow down: full speed, and the next workload is measured afresh (from the share learnt).
            _phase = Phase.Watching;
            return null;
        }
        if (now < _due)
            return null;
        if (now - _due > MaxLate)
        {
            Start(Phase.Running, now);
            return null;
        }
        if (!_counting)
        {
            (_counting, _from, _fromTransactions, _fromChunks, _fromSamples) = (true, now, sample.Transactions, _chunks, _samples);
            _due = now + (_phase == Phase.Running ? _runningWindow : PausedWindow);
            return null;
        }
        var rate = Rate(now, sample);
        if (_phase == Phase.Running)
        {
            _runningRate = rate;
            Start(Phase.Paused, now);
            return null;
        }
        var measurement = Adjust(_runningRate, rate);
        Start(Phase.Running, now);
        return measurement;
    }

    private void Start(Phase phase, TimeSpan now)
    {
        (_phase, _counting, _due) = (phase, false, now + Settle);
    }

    private double Rate(TimeSpan now, WorkloadSample sample)
    {
        var seconds = (now - _from).TotalSeconds;
        var own = (_chunks - _fromChunks) * OwnTransactionsPerChunk + (_samples - _fromSamples);
        if (seconds <= 0)
            return 0;
        if (_phase == Phase.Running)
            _ownRate = own / seconds;
        return Math.Max(0, sample.Transactions - _fromTransactions - own) / seconds;
    }

    private ThrottleMeasurement Adjust(double running, double paused)
    {
        var before = Share;
        // Too little to tell (one long query, a trickle of commits): the snapshot's effect is not measurable, hold.
        if (paused < Math.Max(MinRate, _ownRate))
            return new ThrottleMeasurement(running, paused, 0, before, before);
        var impact = 1 - running / paused;
        double factor;
        if (impact > maxImpact)
            factor = Math.Max(0.25, 0.8 * maxImpact / impact);
        else if (impact < 0.6 * maxImpact)
            factor = impact > 0 ? Math.Min(1.5, 0.8 * maxImpact / impact) : 1.5;
        else
            factor = 1;
        Share = Math.Clamp(before * factor, minShare, 1);
        _runningWindow = Share < before ? FirstRunningWindow : TimeSpan.FromTicks(Math.Min(MaxRunningWindow.Ticks, _runningWindow.Ticks * 2));
        return new ThrottleMeasurement(running, paused, impact, before, Share);
    }
}

/// <summary>One comparison of a running and a paused window.</summary>
/// <param name="RunningRate">The workload's transactions per second while chunks were read.</param>
/// <param name="PausedRate">The same while none was.</param>
/// <param name="Impact">The share of its rate the workload lost to the snapshot (0 when not measurable).</param>
/// <param name="ShareBefore">The snapshot's share of time in the running window.</param>
/// <param name="Share">The share from now on.</param>
internal readonly record struct ThrottleMeasurement(double RunningRate, double PausedRate, double Impact, double ShareBefore, double Share);
