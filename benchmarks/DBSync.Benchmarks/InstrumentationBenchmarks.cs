using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using DBSync.Runtime.Tests;
using DBSync.Sample;

namespace DBSync.Benchmarks;

/// <summary>
/// What DBSync's metrics cost on the decode path: the users Insert of <see cref="DecodeBenchmarks"/> (binary tuples)
/// with nobody listening, and with a <see cref="MeterListener"/> on every DBSync instrument whose callbacks do nothing
/// (so the figure is DBSync's own part: the enabled checks, the change counted with pre-built tags, the handler timed).
/// Allocated bytes must be the same in both (DecodeAllocationTests asserts it exactly).
/// </summary>
[MemoryDiagnoser]
public class InstrumentationBenchmarks
{
    private RecordedInsertDecoder<User> _users = null!;
    private MeterListener? _listener;

    [Params(false, true)]
    public bool Listening { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _users = RecordedInsertDecoder<User>.Create("binary.hex");
        if (!Listening)
            return;
        _listener = new MeterListener
        {
            InstrumentPublished = static (instrument, listener) =>
            {
                if (instrument.Meter.Name == DBSyncDiagnostics.MeterName)
                    listener.EnableMeasurementEvents(instrument);
            },
        };
        _listener.SetMeasurementEventCallback<long>(static (_, _, _, _) => { });
        _listener.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
        _listener.Start();
    }

    [GlobalCleanup]
    public void Cleanup() => _listener?.Dispose();

    [Benchmark]
    public User Users() => _users.Decode();
}
