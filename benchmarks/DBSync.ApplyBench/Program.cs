// Applier benchmark; benchmarks/run-apply.sh builds and runs it.
//
//   DBSync.ApplyBench [--rounds N] [--scale N] [--pgbench-seconds N] [--clients N]
//       two throwaway PostgreSQL clusters (source and target); per round pgbench's tables are copied into two target
//       databases by DBSync and by a PostgreSQL subscription; the last two lines printed are the ratios
//   DBSync.ApplyBench --dbsync-copies N [--scale N]
//       DBSync's initial copy alone, N times, each into a fresh target database (profiling, settings)
using DBSync.ApplyBench;

ApplySettings settings;
try
{
    settings = ApplySettings.Parse(args);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    await Console.Error.WriteLineAsync(ApplySettings.Usage);
    return 2;
}
return settings.DbSyncCopies > 0 ? await CopyOnly.RunAsync(settings) : await FullRun.RunAsync(settings);
