namespace DBSync.Snapshots;

/// <summary>One row inserted into the signal table.</summary>
internal sealed record Signal(long Id, string Kind, IReadOnlyList<string> Tables, string? Filter, IReadOnlyList<string?> FilterParameters, string? ChunkKey);
