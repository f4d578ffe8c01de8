namespace DBSync.Snapshots;

/// <summary>A progress handler threw while its table was being snapshotted: that table's failure (never taken for a lost
/// connection, even when the handler's own I/O failed).</summary>
internal sealed class ProgressHandlerException(Exception inner) : Exception(inner.Message, inner);
