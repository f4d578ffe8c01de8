using System.Diagnostics.Metrics;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>A <see cref="MeterListener"/> on DBSync's meter that keeps the measurements of one slot: sums of counters,
/// records of histograms, and the latest value of each gauge (read with <see cref="Observe"/>).</summary>
public sealed class MetricsCapture : IDisposable
{
    private readonly string _slot;
    private readonly MeterListener _listener = new();
    private readonly List<(string Instrument, double Value, Dictionary<string, object?> Tags)> _measurements = [];

    public MetricsCapture(string slot)
    {
        _slot = slot;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == DBSyncDiagnostics.MeterName)
                listener.EnableMeasurementEvents(instrument, this);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>Every instrument the meter published, with its unit and description.</summary>
    public static IReadOnlyList<Instrument> Published()
    {
        var instruments = new List<Instrument>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, _) =>
        {
            if (instrument.Meter.Name == DBSyncDiagnostics.MeterName)
                instruments.Add(instrument);
        };
        listener.Start();
        return instruments;
    }

    /// <summary>Asks the gauges for their current values.</summary>
    public void Observe() => _listener.RecordObservableInstruments();

    /// <summary>The sum of the measurements of <paramref name="instrument"/> whose tags include <paramref name="tags"/>.</summary>
    public double Sum(string instrument, params (string Key, object Value)[] tags) => Matching(instrument, tags).Sum(m => m.Value);

    /// <summary>How many measurements of <paramref name="instrument"/> had tags including <paramref name="tags"/>.</summary>
    public int Count(string instrument, params (string Key, object Value)[] tags) => Matching(instrument, tags).Count;

    /// <summary>The latest measurement of <paramref name="instrument"/> with tags including <paramref name="tags"/>, if any.</summary>
    public double? Last(string instrument, params (string Key, object Value)[] tags) => Matching(instrument, tags).LastOrDefault() is { Tags: not null } last ? last.Value : null;

    /// <summary>The tag sets recorded for <paramref name="instrument"/>, as text, for failure messages.</summary>
    public string Describe(string instrument)
    {
        lock (_measurements)
        {
            return string.Join("; ", _measurements.Where(m => m.Instrument == instrument)
                .Select(m => $"{m.Value} {{{string.Join(", ", m.Tags.Select(t => $"{t.Key}={t.Value}"))}}}"));
        }
    }

    private List<(string Instrument, double Value, Dictionary<string, object?> Tags)> Matching(string instrument, (string Key, object Value)[] tags)
    {
        lock (_measurements)
        {
            return _measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Key, out var v) && Equals(v, t.Value))).ToList();
        }
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, object?>();
        foreach (var tag in tags)
            copy[tag.Key] = tag.Value;
        if (!Equals(copy.GetValueOrDefault(DBSyncDiagnostics.Tags.Slot), _slot))
            return; // another pipeline's
        lock (_measurements)
            _measurements.Add((instrument.Name, value, copy));
    }

    public void Dispose() => _listener.Dispose();
}
