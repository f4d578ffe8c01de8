namespace DBSync.Snapshots;

/// <summary>The table of a snapshot request does not exist (any more): the request is reported and skipped.</summary>
internal sealed class SnapshotTableMissingException(string message) : Exception(message);
