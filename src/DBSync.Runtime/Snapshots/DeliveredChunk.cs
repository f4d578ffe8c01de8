namespace DBSync.Snapshots;

/// <summary>A chunk the stream delivered: its number, rows read, last chunk key (null when it had no rows), rows emitted,
/// reads it took, and whether it was the table's last.</summary>
internal readonly record struct DeliveredChunk(long Chunk, int RowsRead, IReadOnlyList<string>? LastKey, int RowsEmitted, int Attempts, bool IsLast);
