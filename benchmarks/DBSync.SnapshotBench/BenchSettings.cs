using System.Globalization;
using DBSync;

namespace DBSync.SnapshotBench;

/// <summary>The command line: a mode and a few sizes.</summary>
internal sealed class BenchSettings
{
    public const string AllMode = "all";
    public const string MemoryMode = "memory";
    public const string ChunksMode = "chunks";
    public const string TpsMode = "tps";
    public const string ReadPathMode = "readpath";

    public const string Usage =
        "usage: DBSync.SnapshotBench [all] [--rows N] [--big-rows N] [--rounds N] [--pgbench-seconds N] [--interleaved-seconds N] [--pgbench-scale N] [--chunk-size N] [--busy-share X]\n" +
        "       DBSync.SnapshotBench chunks [--rows N] [--rounds N]   (snapshot time per chunk size, as a ratio to COPY)\n" +
        "       DBSync.SnapshotBench tps [--rows N] [--rounds N] [--interleaved-seconds N] [--busy-share X]   (the interleaved tps measurement only)\n" +
        "       DBSync.SnapshotBench readpath [--rows N] [--rounds N] [--chunk-size N]   (a chunk's raw values through binary results or a binary COPY of the chunk query)\n" +
        "       DBSync.SnapshotBench memory --rows N [--chunk-size N]   (child process; needs DBSYNC_BENCH_CONNECTION)";

    public string Mode { get; private set; } = AllMode;

    /// <summary>Rows of the users table for the timing, tps and small memory measurements.</summary>
    public int Rows { get; private set; } = 1_000_000;

    /// <summary>Rows of the users table for the large memory measurement.</summary>
    public int BigRows { get; private set; } = 5_000_000;

    /// <summary>Timed rounds (a COPY, keyset SELECTs and a DBSync snapshot each, and pgbench triples).</summary>
    public int Rounds { get; private set; } = 3;

    public int PgbenchSeconds { get; private set; } = 15;

    /// <summary>Length of the pgbench run in which snapshots are paused and resumed every 5 s.</summary>
    public int InterleavedSeconds { get; private set; } = 60;

    public int PgbenchScale { get; private set; } = 10;

    public int PgbenchClients { get; private set; } = 4;

    public int PgbenchThreads { get; private set; } = 2;

    public int ChunkSize { get; private set; } = new DBSyncOptions().SnapshotChunkSize;

    /// <summary><see cref="DBSyncOptions.SnapshotBusyShare"/> of the runner under pgbench load.</summary>
    public double BusyShare { get; private set; } = new DBSyncOptions().SnapshotBusyShare;

    /// <summary>The environment variable that sets the snapshot parallelism of every DBSync client of the benchmark
    /// (the memory child's too, which inherits it).</summary>
    public const string ParallelismVariable = "DBSYNC_SNAPSHOT_PARALLELISM";

    /// <summary>Chunks read at once by a snapshot (<see cref="ParallelismVariable"/>), or null for DBSync's default.</summary>
    public static int? SnapshotParallelism => ReadParallelism();

    private static int? ReadParallelism()
    {
        var text = Environment.GetEnvironmentVariable(ParallelismVariable);
        if (string.IsNullOrEmpty(text))
            return null;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= 1
            ? value
            : throw new ArgumentException($"{ParallelismVariable} must be a whole number of at least 1, not '{text}'; unset it for DBSync's default.");
    }

    public static BenchSettings Parse(IReadOnlyList<string> args)
    {
        _ = ReadParallelism(); // a bad value is reported with the usage
        var settings = new BenchSettings();
        var i = 0;
        if (args.Count > 0 && !args[0].StartsWith("--", StringComparison.Ordinal))
        {
            settings.Mode = args[0] switch
            {
                AllMode or MemoryMode or ChunksMode or TpsMode or ReadPathMode => args[0],
                _ => throw new ArgumentException($"Unknown mode '{args[0]}'."),
            };
            i = 1;
        }

        for (; i < args.Count; i += 2)
        {
            if (i + 1 >= args.Count)
                throw new ArgumentException($"Option {args[i]} needs a value.");
            if (args[i] == "--busy-share")
            {
                settings.BusyShare = double.Parse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture);
                if (!(settings.BusyShare > 0 && settings.BusyShare <= 1))
                    throw new ArgumentException("--busy-share must be greater than 0 and at most 1.");
                continue;
            }
            var value = int.Parse(args[i + 1], NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            if (value < 1)
                throw new ArgumentException($"Option {args[i]} must be at least 1.");
            switch (args[i])
            {
                case "--rows": settings.Rows = value; break;
                case "--big-rows": settings.BigRows = value; break;
                case "--rounds": settings.Rounds = value; break;
                case "--pgbench-seconds": settings.PgbenchSeconds = value; break;
                case "--interleaved-seconds": settings.InterleavedSeconds = value; break;
                case "--pgbench-scale": settings.PgbenchScale = value; break;
                case "--chunk-size": settings.ChunkSize = value; break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'.");
            }
        }

        if (settings.Mode == AllMode && settings.BigRows <= settings.Rows)
            throw new ArgumentException("--big-rows must be larger than --rows.");
        return settings;
    }

    /// <summary>The options as they would be passed to reproduce this run.</summary>
    public string ToArguments() => string.Create(CultureInfo.InvariantCulture,
        $"{Mode} --rows {Rows} --big-rows {BigRows} --rounds {Rounds} --pgbench-seconds {PgbenchSeconds} --interleaved-seconds {InterleavedSeconds} --pgbench-scale {PgbenchScale} --chunk-size {ChunkSize} --busy-share {BusyShare}");
}
