using DBSync.Snapshots;

namespace DBSync.Runtime.Tests.Snapshots;

/// <summary>
/// The snapshot throttle's controller on a simulated clock and workload: the snapshot loop of <see cref="SnapshotThrottle"/>
/// (sample when due, hold through a paused window, pause after each chunk, read the next) against a database whose
/// transactions per second drop by a given share while a chunk is being read, and which counts the snapshot's own
/// transactions too (per chunk and per sample), reported one second late as PostgreSQL's statistics are.
/// </summary>
[Trait("Category", "Snapshots")]
public sealed class ThrottleControllerTests
{
    private const double MaxImpact = 0.10;
    private const double MinShare = 0.05;

    [Fact]
    public void HurtWorkload_KeepsItsLossWithinTheTarget()
    {
        // Reading flat out costs the workload 40% of its rate: at most a quarter of the time keeps it within 10%.
        var run = new SimulatedSnapshot(flatOutImpact: 0.40, rate: 500);
        run.RunFor(TimeSpan.FromMinutes(2));
        var settled = run.RunFor(TimeSpan.FromMinutes(5));

        Assert.InRange(settled.WorkloadLoss, 0, 0.12);
        Assert.InRange(run.Controller.Share, 0.12, 0.30);
        Assert.True(settled.ReadShare > 0.10, $"the snapshot read only {settled.ReadShare:P1} of the time");
    }

    [Fact]
    public void UnhurtWorkload_SnapshotRunsAtFullShare()
    {
        // A busy workload that the reads do not slow (spare cores): only the windows that measure it pause the snapshot.
        var run = new SimulatedSnapshot(flatOutImpact: 0, rate: 500);
        run.RunFor(TimeSpan.FromMinutes(2));
        var settled = run.RunFor(TimeSpan.FromMinutes(5));

        Assert.Equal(1, run.Controller.Share);
        Assert.True(settled.ReadShare > 0.80, $"the snapshot read only {settled.ReadShare:P1} of the time");
    }

    [Fact]
    public void NoWorkload_SnapshotNeverPauses()
    {
        var run = new SimulatedSnapshot(flatOutImpact: 0.40, rate: 500) { BusySessions = 0 };
        var settled = run.RunFor(TimeSpan.FromMinutes(1));

        Assert.Equal(1, settled.ReadShare, 3);
        Assert.Equal(0, settled.Measurements);
    }

    [Fact]
    public void WorkloadThatStops_SnapshotRunsFlatOutAgain()
    {
        var run = new SimulatedSnapshot(flatOutImpact: 0.40, rate: 500);
        run.RunFor(TimeSpan.FromMinutes(2));
        Assert.True(run.Controller.Share < 0.5);

        run.BusySessions = 0;
        run.RunFor(ThrottleController.MaxRunningWindow + ThrottleController.PausedWindow + TimeSpan.FromSeconds(5));
        var idle = run.RunFor(TimeSpan.FromSeconds(30));

        Assert.Equal(1, idle.ReadShare, 3);
        Assert.Equal(1, run.Controller.EffectiveShare);
    }

    [Fact]
    public void WorkloadStoppedByEveryRead_ShareStaysAtTheFloor()
    {
        // Reading a fifth of the time costs a fifth of the workload, over the target: the floor still reads that much.
        var run = new SimulatedSnapshot(flatOutImpact: 1, rate: 500, minShare: 0.2);
        var settled = run.RunFor(TimeSpan.FromMinutes(5));

        Assert.Equal(0.2, run.Controller.Share, 6);
        Assert.True(settled.ReadShare > 0.15, $"the snapshot read only {settled.ReadShare:P1} of the time");
    }

    [Fact]
    public void WorkloadWithoutCommits_ShareHolds()
    {
        // One long query: the database commits nothing, so the snapshot's effect cannot be measured.
        var run = new SimulatedSnapshot(flatOutImpact: 0.40, rate: 0);
        var settled = run.RunFor(TimeSpan.FromMinutes(2));

        Assert.Equal(ThrottleController.InitialShare, run.Controller.Share);
        Assert.True(settled.Measurements > 0);
    }

    [Fact]
    public void SnapshotsPausedAndResumedEveryFiveSeconds_PausesAreNotTakenForAHarmlessSnapshot()
    {
        // As the benchmark's interleaved phases do: a window that spans a pause of snapshots (no chunk read) would make
        // the snapshot look harmless, and the share would climb.
        var run = new SimulatedSnapshot(flatOutImpact: 0.40, rate: 500);
        run.RunFor(TimeSpan.FromMinutes(2));
        for (var phase = 0; phase < 40; phase++)
        {
            run.RunFor(TimeSpan.FromSeconds(5));
            run.Idle(TimeSpan.FromSeconds(5));
        }

        Assert.InRange(run.Controller.Share, 0.05, 0.30);
    }

    /// <summary>The snapshot loop (read a chunk, then what <see cref="SnapshotThrottle.PaceAsync"/> does) against a workload of <paramref name="rate"/> transactions per second that loses
    /// <paramref name="flatOutImpact"/> of it while a chunk is being read; chunks take 100 ms; the share never goes under
    /// <paramref name="minShare"/>.</summary>
    private sealed class SimulatedSnapshot(double flatOutImpact, double rate, double minShare = MinShare)
    {
        private static readonly TimeSpan ChunkTime = TimeSpan.FromMilliseconds(100);
        private static readonly TimeSpan ReportDelay = TimeSpan.FromSeconds(1);
        private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(10);

        // Transactions ended by each step's end, to report them late.
        private readonly List<double> _history = [0];
        private TimeSpan _now;
        // What the server counts (the workload's and the snapshot's own), and the workload's alone.
        private double _transactions;
        private double _workload;

        public ThrottleController Controller { get; } = new(MaxImpact, minShare);

        public long BusySessions { get; set; } = 4;

        /// <summary>Runs the loop for <paramref name="duration"/>: what share of the time chunks were read, what share of
        /// its rate the workload lost, and how many measurements ended.</summary>
        public (double ReadShare, double WorkloadLoss, int Measurements) RunFor(TimeSpan duration)
        {
            var (start, startWorkload) = (_now, _workload);
            var (reading, measurements) = (TimeSpan.Zero, 0);
            while (_now - start < duration)
            {
                Advance(ChunkTime, true);
                _transactions += ThrottleController.OwnTransactionsPerChunk;
                reading += ChunkTime;
                Controller.ChunkRead(_now, ChunkTime);
                while (true)
                {
                    if (Controller.SampleDue(_now))
                    {
                        _transactions += 1;
                        if (Controller.Observe(_now, Sample()) is not null)
                            measurements++;
                    }
                    var hold = Controller.Hold(_now);
                    if (hold <= TimeSpan.Zero)
                        break;
                    Advance(hold, false);
                }
                Advance(Controller.PauseAfter(_now, ChunkTime), false);
            }
            var elapsed = _now - start;
            var expected = rate * BusySessionsFactor * elapsed.TotalSeconds;
            var loss = expected > 0 ? 1 - (_workload - startWorkload) / expected : 0;
            return (reading / elapsed, loss, measurements);
        }

        /// <summary>Time passes without chunks (snapshots paused).</summary>
        public void Idle(TimeSpan duration) => Advance(duration, false);

        private double BusySessionsFactor => BusySessions > 0 ? 1 : 0;

        private void Advance(TimeSpan duration, bool reading)
        {
            var end = _now + duration;
            while (_now < end)
            {
                var step = end - _now < Step ? end - _now : Step;
                var done = rate * BusySessionsFactor * (reading ? 1 - flatOutImpact : 1) * step.TotalSeconds;
                _workload += done;
                _transactions += done;
                _now += step;
                _history.Add(_transactions);
            }
        }

        private WorkloadSample Sample()
        {
            // What pg_stat_database shows: the transactions ended a second ago (steps are 10 ms, chunk ends align).
            var stepsBack = (int)(ReportDelay / Step);
            var index = Math.Max(0, _history.Count - 1 - stepsBack);
            return new WorkloadSample(BusySessions, 0, (long)_history[index]);
        }
    }
}
