using System.Diagnostics.Metrics;
using DBSync.Replication;
using DBSync.Snapshots;

namespace DBSync.Diagnostics;

/// <summary>
/// One client's part of DBSync's metrics: its tags, built once (the hot path passes these arrays, never new ones), and
/// what its gauges read while it runs (<see cref="Telemetry.Register"/>).
/// </summary>
internal sealed class PipelineTelemetry
{
    private readonly KeyValuePair<string, object?> _slot;

    public PipelineTelemetry(string slot)
    {
        _slot = new(DBSyncDiagnostics.Tags.Slot, slot);
        SlotTags = [_slot];
        TransactionHandlerTags = [_slot, new(DBSyncDiagnostics.Tags.HandlerType, "transaction")];
        MessageHandlerTags = [_slot, new(DBSyncDiagnostics.Tags.HandlerType, "message")];
    }

    /// <summary>The slot alone.</summary>
    public KeyValuePair<string, object?>[] SlotTags { get; }

    /// <summary>The timing of transaction handlers.</summary>
    public KeyValuePair<string, object?>[] TransactionHandlerTags { get; }

    /// <summary>The timing of message handlers.</summary>
    public KeyValuePair<string, object?>[] MessageHandlerTags { get; }

    /// <summary>The stream of the current session, while there is one.</summary>
    public ReplicationSession? Session { get; set; }

    /// <summary>The pipeline's snapshots.</summary>
    public SnapshotCoordinator? Snapshots { get; set; }

    /// <summary>The client's role now.</summary>
    public Func<DBSyncRole>? Role { get; set; }

    public Measurement<long>? ObserveActive() => Role is { } role ? new Measurement<long>(role() == DBSyncRole.Active ? 1 : 0, SlotTags) : null;

    /// <summary>The tags of one table's changes and handlers.</summary>
    public TableTelemetry ForTable(string table) => new(_slot, new(DBSyncDiagnostics.Tags.Table, table));

    public Measurement<long>? ObserveLag() => Session is { } session ? new Measurement<long>(session.LagBytes, SlotTags) : null;

    public Measurement<double>? ObserveDelay() => Session is { } session ? new Measurement<double>(session.DelaySeconds, SlotTags) : null;

    public Measurement<double>? ObserveSnapshotProgress()
        => Snapshots?.RunningProgress is var (table, share) ? new Measurement<double>(share, _slot, new(DBSyncDiagnostics.Tags.Table, table)) : null;

    public Measurement<long>? ObserveSnapshotTables() => Snapshots is { } snapshots ? new Measurement<long>(snapshots.QueuedTables, SlotTags) : null;
}

/// <summary>The pre-built tags of one table: its changes by kind, and the timing of its handlers.</summary>
internal sealed class TableTelemetry
{
    private readonly KeyValuePair<string, object?>[][] _changes;

    public TableTelemetry(KeyValuePair<string, object?> slot, KeyValuePair<string, object?> table)
    {
        _changes = new KeyValuePair<string, object?>[(int)ChangeKind.Read + 1][];
        foreach (var (kind, name) in new[] { (ChangeKind.Insert, "insert"), (ChangeKind.Update, "update"), (ChangeKind.Delete, "delete"), (ChangeKind.Truncate, "truncate"), (ChangeKind.Read, "read") })
            _changes[(int)kind] = [slot, table, new(DBSyncDiagnostics.Tags.ChangeKind, name)];
        HandlerTags = [slot, table, new(DBSyncDiagnostics.Tags.HandlerType, "change")];
        TableTags = [slot, table];
    }

    public KeyValuePair<string, object?>[] HandlerTags { get; }

    /// <summary>The slot and the table (snapshot counters).</summary>
    public KeyValuePair<string, object?>[] TableTags { get; }

    public KeyValuePair<string, object?>[] Changes(ChangeKind kind) => _changes[(int)kind];
}
