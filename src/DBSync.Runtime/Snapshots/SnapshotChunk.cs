namespace DBSync.Snapshots;

/// <summary>One chunk as read: its rows in key order, the last chunk key of its range (as text; null when it has no
/// rows), and which transactions the snapshot it was read with sees.</summary>
internal readonly record struct SnapshotChunk<T>(List<T> Rows, IReadOnlyList<string>? LastKey, SnapshotVisibility Visibility);
