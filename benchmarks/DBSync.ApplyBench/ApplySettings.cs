using System.Globalization;

namespace DBSync.ApplyBench;

/// <summary>The command line.</summary>
internal sealed class ApplySettings
{
    public const string Usage =
        "usage: DBSync.ApplyBench [--rounds N] [--scale N] [--pgbench-seconds N] [--clients N]\n" +
        "  --scale N            pgbench -i -s N on the source (default 10: 1M pgbench_accounts rows)\n" +
        "  --pgbench-seconds N  length of the unthrottled pgbench run of phase (b) (default 60)\n" +
        "  --clients N          pgbench clients in phase (b) (default 4)\n" +
        "  --dbsync-copies N    only DBSync's initial copy, N times into fresh target databases (no subscription, no ratio):\n" +
        "                       for profiling and comparing DBSync's settings\n" +
        "  --fresh-source 1     with --dbsync-copies: a new pgbench source database before each copy, as each round of the\n" +
        "                       full run has (the default copies one source again and again)";

    public int Rounds { get; private set; } = 3;

    public int Scale { get; private set; } = 10;

    public int PgbenchSeconds { get; private set; } = 60;

    public int Clients { get; private set; } = 4;

    /// <summary>When set, only DBSync's initial copy runs, this many times (<see cref="CopyOnly"/>).</summary>
    public int DbSyncCopies { get; private set; }

    /// <summary>With <see cref="DbSyncCopies"/>: a new source database before each copy.</summary>
    public bool FreshSource { get; private set; }

    public static ApplySettings Parse(IReadOnlyList<string> args)
    {
        var settings = new ApplySettings();
        for (var i = 0; i < args.Count; i += 2)
        {
            if (i + 1 >= args.Count)
                throw new ArgumentException($"Option {args[i]} needs a value.");
            if (!int.TryParse(args[i + 1], NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out var value) || value < 1)
                throw new ArgumentException($"Option {args[i]} needs a whole number of at least 1, not '{args[i + 1]}'.");
            switch (args[i])
            {
                case "--rounds": settings.Rounds = value; break;
                case "--scale": settings.Scale = value; break;
                case "--pgbench-seconds": settings.PgbenchSeconds = value; break;
                case "--clients": settings.Clients = value; break;
                case "--dbsync-copies": settings.DbSyncCopies = value; break;
                case "--fresh-source": settings.FreshSource = true; break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'.");
            }
        }
        return settings;
    }

    public string ToArguments() => string.Create(CultureInfo.InvariantCulture,
        $"--rounds {Rounds} --scale {Scale} --pgbench-seconds {PgbenchSeconds} --clients {Clients}");
}
