// End-to-end stream benchmark; benchmarks/run-e2e.sh builds and runs it.
//
//   DBSync.StreamBench [--rows N] [--batch N] [--updates N] [--rounds N] [--latency-rate N] [--latency-seconds N]
//       on a throwaway PostgreSQL (or the server named by POSTGRES_*): builds the backlog once, drains copies of its slot
//       with pg_recvlogical, Npgsql's pgoutput decoder, DBSync and DBSync on Npgsql's replication connection, turning the
//       order every round, then measures commit-to-handler latency at a steady rate; the last three lines printed are
//       the ratios
//   DBSync.StreamBench drain dbsync|dbsync-npgsql|npgsql <slot> <end lsn>
//       child process of one .NET drain (connection string in DBSYNC_BENCH_CONNECTION); prints one drain-result line
//   DBSync.StreamBench latency <pgbench> <rate> <seconds> Auto|Npgsql
//       child process of the latency measurement (same variable) on a replication transport; prints one latency-result line
using System.Globalization;
using DBSync.StreamBench;

if (args.Length > 0 && args[0] is "drain" or "latency")
{
    var connectionString = Environment.GetEnvironmentVariable("DBSYNC_BENCH_CONNECTION")
        ?? throw new InvalidOperationException("Set DBSYNC_BENCH_CONNECTION to the benchmark database's connection string.");
    Console.WriteLine(args[0] == "drain"
        ? (await Drains.RunAsync(args[1], connectionString, args[2], NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(args[3]))).ToLine()
        : (await Latency.MeasureAsync(connectionString, new DBSync.Bench.Pgbench(args[1], connectionString),
            int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture), Enum.Parse<DBSync.ReplicationTransport>(args[4]))).ToLine());
    return 0;
}

StreamSettings settings;
try
{
    settings = StreamSettings.Parse(args);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    await Console.Error.WriteLineAsync(StreamSettings.Usage);
    return 2;
}
return await FullRun.RunAsync(settings);
