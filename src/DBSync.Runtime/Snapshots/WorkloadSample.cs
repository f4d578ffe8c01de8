namespace DBSync.Snapshots;

/// <summary>The workload of the snapshot's database beside DBSync, at one moment.</summary>
/// <param name="BusySessions">Sessions of other clients running a statement, holding a transaction open, or idle for less
/// than a second.</param>
/// <param name="HiddenSessions">Sessions whose state the connecting role may not see (no <c>pg_read_all_stats</c>).</param>
/// <param name="Transactions">Transactions the database committed or rolled back so far (<c>pg_stat_database</c>).</param>
internal readonly record struct WorkloadSample(long BusySessions, long HiddenSessions, long Transactions);
