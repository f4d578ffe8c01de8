// End-to-end snapshot benchmark; benchmarks/run-snapshot.sh builds and runs it.
//
//   DBSync.SnapshotBench [all] [--rows N] [--big-rows N] [--rounds N] [--pgbench-seconds N] [--interleaved-seconds N] [--pgbench-scale N] [--chunk-size N] [--busy-share X]
//       the whole benchmark on a throwaway PostgreSQL (or the server named by POSTGRES_*); the last five lines
//       printed are the ratios (DBSYNC_SNAPSHOT_PARALLELISM: see BenchSettings)
//   DBSync.SnapshotBench chunks [--rows N] [--rounds N]
//       snapshot time per chunk size, as a ratio to COPY (how the default SnapshotChunkSize was chosen)
//   DBSync.SnapshotBench memory --rows N [--chunk-size N]
//       child process of the memory measurement: one DBSync snapshot of the users table of the database named by
//       DBSYNC_BENCH_CONNECTION, then one "memory-result ..." line with the process's peak working set
using DBSync.SnapshotBench;

BenchSettings settings;
try
{
    settings = BenchSettings.Parse(args);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    await Console.Error.WriteLineAsync(BenchSettings.Usage);
    return 2;
}

return settings.Mode == BenchSettings.MemoryMode
    ? await MemoryChild.RunAsync(settings)
    : await FullRun.RunAsync(settings);
