using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;

namespace DBSync.Diagnostics;

/// <summary>
/// DBSync's meter and activity source, shared by every client in the process (each measurement carries its slot). The
/// stream's hot path asks <see cref="Instrument.Enabled"/> or <see cref="ActivitySource.HasListeners"/> before doing any
/// work, and passes tags pre-built per pipeline, table and kind (<see cref="PipelineTelemetry"/>), so with nobody
/// listening it costs a field read per event, and with a listener it still allocates nothing per event.
/// </summary>
internal static class Telemetry
{
    private static readonly string? s_version = typeof(Telemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
    private static readonly List<PipelineTelemetry> s_running = [];

    public static readonly ActivitySource Source = new(DBSyncDiagnostics.ActivitySourceName, s_version);

    public static readonly Meter Meter = new(DBSyncDiagnostics.MeterName, s_version);

    public static readonly Counter<long> Changes = Meter.CreateCounter<long>(DBSyncDiagnostics.Metrics.Changes, "{change}",
        "Changes delivered to handlers (a transaction delivered again after a reconnect or restart counts again).");

    public static readonly Counter<long> Transactions = Meter.CreateCounter<long>(DBSyncDiagnostics.Metrics.Transactions, "{transaction}",
        "Transactions whose handlers all completed and that were acknowledged (DBSync's own watermark and heartbeat transactions not counted).");

    public static readonly Counter<long> ReceivedBytes = Meter.CreateCounter<long>(DBSyncDiagnostics.Metrics.ReceivedBytes, "By",
        "Bytes of pgoutput messages received on the replication connection.");

    public static readonly Counter<long> Reconnects = Meter.CreateCounter<long>(DBSyncDiagnostics.Metrics.Reconnects, "{reconnect}",
        "Times the replication connection was lost and the stream reconnects.");

    public static readonly Histogram<double> HandlerDuration = Meter.CreateHistogram(DBSyncDiagnostics.Metrics.HandlerDuration, "s",
        "How long the handlers of one change, transaction or message took, retries included.", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30] });

    public static readonly Counter<long> SnapshotRows = Meter.CreateCounter<long>(DBSyncDiagnostics.Metrics.SnapshotRows, "{row}",
        "Rows read by snapshot chunk queries (those the stream changed meanwhile are not delivered as Read changes).");

    public static readonly Counter<long> SnapshotChunks = Meter.CreateCounter<long>(DBSyncDiagnostics.Metrics.SnapshotChunks, "{chunk}",
        "Snapshot chunks whose rows were delivered.");

    public static readonly ObservableGauge<long> ReplicationLag = Meter.CreateObservableGauge(DBSyncDiagnostics.Metrics.ReplicationLag,
        static () => Observe(static p => p.ObserveLag()), "By",
        "The server's WAL end (read every StatusInterval while observed) minus the position confirmed to the server.");

    public static readonly ObservableGauge<double> ReplicationDelay = Meter.CreateObservableGauge(DBSyncDiagnostics.Metrics.ReplicationDelay,
        static () => Observe(static p => p.ObserveDelay()), "s",
        "While a transaction is being delivered, now minus its commit time (server clock); 0 while the stream waits for the server.");

    public static readonly ObservableGauge<double> SnapshotProgress = Meter.CreateObservableGauge(DBSyncDiagnostics.Metrics.SnapshotProgress,
        static () => Observe(static p => p.ObserveSnapshotProgress()), "1",
        "The share of the table being snapshotted that was read so far, against the server's row estimate (pg_class.reltuples) when it started.");

    public static readonly ObservableUpDownCounter<long> SnapshotTables = Meter.CreateObservableUpDownCounter(DBSyncDiagnostics.Metrics.SnapshotTables,
        static () => Observe(static p => p.ObserveSnapshotTables()), "{table}",
        "Tables queued for a snapshot or being snapshotted.");

    public static readonly ObservableGauge<long> Active = Meter.CreateObservableGauge(DBSyncDiagnostics.Metrics.Active,
        static () => Observe(static p => p.ObserveActive()), "1",
        "1 while this instance streams from the slot; 0 while it starts, reconnects or stands by for a slot another instance holds.");

    /// <summary>A running pipeline's gauges are observed until <see cref="Unregister"/>.</summary>
    public static void Register(PipelineTelemetry pipeline)
    {
        lock (s_running)
            s_running.Add(pipeline);
    }

    public static void Unregister(PipelineTelemetry pipeline)
    {
        lock (s_running)
            s_running.Remove(pipeline);
    }

    /// <summary>A timestamp to pass to <see cref="EndHandlers"/> when handler durations are measured, else 0 (nothing measured).</summary>
    public static long StartHandlers() => HandlerDuration.Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>Records how long <paramref name="handlers"/> took once it completes successfully, if
    /// <paramref name="start"/> came from <see cref="StartHandlers"/> while a listener was there. A task that completed
    /// synchronously is recorded at once; only a pending one goes through an async method.</summary>
    public static ValueTask EndHandlers(ValueTask handlers, long start, KeyValuePair<string, object?>[] tags)
    {
        if (start == 0)
            return handlers;
        if (!handlers.IsCompletedSuccessfully)
            return EndHandlersAsync(handlers, start, tags);
        handlers.GetAwaiter().GetResult(); // a ValueTask is consumed once, even a completed one
        HandlerDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, tags);
        return default;
    }

    private static async ValueTask EndHandlersAsync(ValueTask handlers, long start, KeyValuePair<string, object?>[] tags)
    {
        await handlers.ConfigureAwait(false);
        HandlerDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, tags);
    }

    private static List<Measurement<T>> Observe<T>(Func<PipelineTelemetry, Measurement<T>?> observe) where T : struct
    {
        var measurements = new List<Measurement<T>>();
        lock (s_running)
        {
            foreach (var pipeline in s_running)
            {
                if (observe(pipeline) is { } measurement)
                    measurements.Add(measurement);
            }
        }
        return measurements;
    }
}
