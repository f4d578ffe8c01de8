namespace DBSync.Replication;

/// <summary>What DBSync needs of the server's version, said once for every place that checks it.</summary>
internal static class ServerSupport
{
    /// <summary>Snapshot watermarks are logical decoding messages, which pgoutput sends from PostgreSQL 14 on.</summary>
    public static string SnapshotsNeed14(int versionNum)
        => $"Snapshots need PostgreSQL 14 or later (the server runs {versionNum / 10000}): their watermarks are logical decoding messages, " +
           "which pgoutput sends from 14 on. Changes stream on this server; for the tables' current state, upgrade it, or copy the tables yourself " +
           "before the first run (DBSyncOptions.InitialSnapshot = false, SnapshotOnStart = false).";
}
