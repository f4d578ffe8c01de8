using System.Diagnostics;
using System.Globalization;
using DBSync.Diagnostics;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>One activity per delivered transaction, the parent of whatever the handlers trace. Used by the read loop only.</summary>
internal sealed class TransactionTracing(string slot)
{
    private Activity? _parent;
    private Activity? _activity;
    private ChangeCounter? _changes;

    /// <summary>The session's own context, under which every transaction's activity starts.</summary>
    public void CaptureParent() => _parent = Activity.Current;

    /// <summary>Starts the transaction's activity, when anyone listens. Each starts from the session's own context, never
    /// under the previous transaction's (which an async handler path may have left current).</summary>
    public void Begin(in TransactionContext transaction)
    {
        if (!Telemetry.Source.HasListeners())
            return;
        Activity.Current = _parent;
        _activity = Telemetry.Source.StartActivity(DBSyncDiagnostics.TransactionActivityName, ActivityKind.Consumer);
        _changes = transaction.Changes;
        if (_activity is { IsAllDataRequested: true } activity)
        {
            activity.SetTag("db.system.name", "postgresql");
            activity.SetTag(DBSyncDiagnostics.Tags.Slot, slot);
            activity.SetTag("dbsync.xid", (long)transaction.Xid);
            activity.SetTag("dbsync.commit_lsn", transaction.CommitLsn.ToString());
            activity.SetTag("dbsync.commit_time", transaction.CommitTime.ToString("O", CultureInfo.InvariantCulture));
        }
    }

    /// <summary>The transaction failed.</summary>
    public void Fail(Exception e) => _activity?.SetStatus(ActivityStatusCode.Error, e.GetType().FullName);

    /// <summary>Ends the transaction's activity: acknowledged (with its end position) or cut off (without).</summary>
    /// <param name="isInternal">A transaction of the pipeline's own watermarks or heartbeats.</param>
    /// <param name="endLsn">The end position the transaction was acknowledged at; null when it was cut off.</param>
    public void End(bool isInternal, ulong? endLsn = null)
    {
        if (_activity is not { } activity)
            return;
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("dbsync.change_count", _changes?.Count ?? 0);
            if (endLsn is { } end)
                activity.SetTag("dbsync.end_lsn", new NpgsqlLogSequenceNumber(end).ToString());
            if (isInternal)
                activity.SetTag("dbsync.internal", true);
        }
        activity.Stop();
        _activity = null;
        Activity.Current = _parent;
    }
}
