using System.Diagnostics;
using System.Globalization;
using DBSync.Bench;
using NpgsqlTypes;

namespace DBSync.ApplyBench;

/// <summary>
/// Samples, every second until stopped, the source's WAL insert position and the end position of each target's last
/// applied transaction. Bytes behind is their difference; seconds behind is how long ago the source's WAL passed the
/// target's position (interpolated between samples), so a target that keeps up is at most about a second behind.
/// </summary>
internal sealed class LagSampler(string source, IReadOnlyList<CopyTarget> targets) : IDisposable
{
    private readonly List<(double Seconds, ulong Source, ulong?[] Applied)> _samples = [];
    private readonly CancellationTokenSource _stop = new();

    public async Task RunAsync()
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var at = clock.Elapsed.TotalSeconds;
            var sourceLsn = (ulong)await PgbenchSchema.ScalarAsync<NpgsqlLogSequenceNumber>(source, "SELECT pg_current_wal_lsn()");
            var applied = new ulong?[targets.Count];
            for (var i = 0; i < targets.Count; i++)
                applied[i] = await targets[i].AppliedLsnAsync();
            _samples.Add((at, sourceLsn, applied));
            // The next sample on the next whole second; at once when this one took longer than its second.
            var wait = TimeSpan.FromSeconds(_samples.Count) - clock.Elapsed;
            try
            {
                await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public void Stop() => _stop.Cancel();

    public void Dispose() => _stop.Dispose();

    /// <summary>The figures of target <paramref name="index"/> over the samples taken.</summary>
    public LagSummary Summary(int index)
    {
        var bytes = new List<double>();
        var seconds = new List<double>();
        foreach (var (at, sourceLsn, applied) in _samples)
        {
            var position = applied[index] ?? 0;
            var caughtUp = position >= sourceLsn;
            bytes.Add(caughtUp ? 0 : sourceLsn - position);
            seconds.Add(caughtUp ? 0 : at - WhenSourcePassed(position));
        }
        if (bytes.Count == 0)
            return LagSummary.Empty;
        double Quarter(int q) => bytes[Math.Max(0, ((q + 1) * bytes.Count / 4) - 1)]; // the last sample of quarter q
        return new LagSummary(Stats.Median(bytes), bytes.Max(), bytes[^1], seconds.Max(), seconds[^1], [Quarter(0), Quarter(1), Quarter(2), Quarter(3)]);
    }

    /// <summary>When the source's WAL insert position reached <paramref name="position"/>: interpolated between the two
    /// samples around it; the first sample's time when it was already past it then (so a lower bound).</summary>
    private double WhenSourcePassed(ulong position)
    {
        for (var k = 0; k < _samples.Count; k++)
        {
            if (_samples[k].Source < position)
                continue;
            if (k == 0)
                return _samples[0].Seconds;
            var (t0, l0, _) = _samples[k - 1];
            var (t1, l1, _) = _samples[k];
            return t0 + ((t1 - t0) * (position - l0) / (double)(l1 - l0));
        }
        return _samples[^1].Seconds;
    }
}

/// <summary>One target's lag during one pgbench run.</summary>
internal sealed record LagSummary(double MedianBytes, double MaxBytes, double EndBytes, double MaxSeconds, double EndSeconds, double[] QuarterBytes)
{
    public static readonly LagSummary Empty = new(0, 0, 0, 0, 0, [0, 0, 0, 0]);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"MB behind median {MedianBytes / (1024 * 1024):0.0}, max {MaxBytes / (1024 * 1024):0.0}, at the end {EndBytes / (1024 * 1024):0.0}; seconds behind max {MaxSeconds:0.0}, at the end {EndSeconds:0.0}");
}
