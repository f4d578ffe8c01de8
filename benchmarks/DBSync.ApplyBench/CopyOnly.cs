using System.Diagnostics;
using System.Globalization;
using DBSync.Testing;
using static DBSync.Bench.Stats;

namespace DBSync.ApplyBench;

/// <summary>
/// DBSync's initial copy alone (<c>--dbsync-copies N</c>): one pgbench source database (a new one before each copy with
/// <c>--fresh-source 1</c>), then N copies, each into a fresh target database with a new slot, timed as phase (a) of the full run, with the process's CPU time for each. For
/// profiling (attach dotnet-trace) and for comparing DBSync's settings; no subscription, so no ratio.
/// </summary>
internal static class CopyOnly
{
    public static async Task<int> RunAsync(ApplySettings settings)
    {
        await using var sourceServer = await PostgresServer.StartAsync(forceLocal: true);
        await using var targetServer = await PostgresServer.StartAsync(forceLocal: true);
        var sourceDatabase = await sourceServer.CreateDatabaseAsync("apply_source");
        var source = sourceServer.ConnectionStringFor(sourceDatabase);
        var pgbench = new DBSync.Bench.Pgbench(DBSync.Bench.Pgbench.Find(sourceServer.BinDirectory), source);
        await PgbenchSchema.CreateSourceAsync(pgbench, source, settings.Scale);
        var rows = (await PgbenchSchema.CountsAsync(source)).Sum();
        Log($"pgbench -i -s {settings.Scale}: {rows:N0} rows; {Environment.ProcessorCount} cores; process id {Environment.ProcessId}");
        var seconds = new List<double>();
        for (var copy = 1; copy <= settings.DbSyncCopies; copy++)
        {
            if (copy > 1 && settings.FreshSource)
            {
                await sourceServer.DropDatabaseAsync(sourceDatabase);
                sourceDatabase = await sourceServer.CreateDatabaseAsync("apply_source");
                source = sourceServer.ConnectionStringFor(sourceDatabase);
                pgbench = new DBSync.Bench.Pgbench(DBSync.Bench.Pgbench.Find(sourceServer.BinDirectory), source);
                await PgbenchSchema.CreateSourceAsync(pgbench, source, settings.Scale);
            }
            var database = await targetServer.CreateDatabaseAsync("apply_dbsync");
            var target = targetServer.ConnectionStringFor(database);
            await PgbenchSchema.CopySchemaAsync(sourceServer.BinDirectory, source, target);
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            await using (var dbsync = new DbSyncTarget(target, source, $"dbsync_copy_{copy}"))
            {
                seconds.Add(await FullRun.InitialCopyAsync(dbsync, source));
            }
            var used = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
            Log($"copy {copy}: {rows:N0} rows in {seconds[^1]:0.00} s ({rows / seconds[^1]:N0} rows/s); this process used {used:0.00} s of CPU");
            await targetServer.DropDatabaseAsync(database);
        }
        Log($"median of {seconds.Count}: {Median(seconds):0.00} s (runs {Runs(seconds, "0.00")})");
        return 0;
    }

    private static void Log(FormattableString message) => Console.WriteLine(message.ToString(CultureInfo.InvariantCulture));
}
