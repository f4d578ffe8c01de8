using System.Globalization;

namespace DBSync.StreamBench;

/// <summary>The command line of the full run.</summary>
internal sealed class StreamSettings
{
    public const string Usage =
        "usage: DBSync.StreamBench [--rows N] [--batch N] [--updates N] [--rounds N] [--latency-rate N] [--latency-seconds N]\n" +
        "       DBSync.StreamBench drain dbsync|dbsync-npgsql|npgsql <slot> <end lsn>   (child process; needs DBSYNC_BENCH_CONNECTION)";

    /// <summary>users rows inserted into the backlog.</summary>
    public int Rows { get; private set; } = 1_000_000;

    /// <summary>Rows per insert transaction.</summary>
    public int Batch { get; private set; } = 1_000;

    /// <summary>Single-row update transactions after the inserts.</summary>
    public int Updates { get; private set; } = 200_000;

    public int Rounds { get; private set; } = 3;

    /// <summary>Transactions per second of the latency measurement.</summary>
    public int LatencyRate { get; private set; } = 5_000;

    public int LatencySeconds { get; private set; } = 20;

    public static StreamSettings Parse(IReadOnlyList<string> args)
    {
        var settings = new StreamSettings();
        for (var i = 0; i < args.Count; i += 2)
        {
            if (i + 1 >= args.Count)
                throw new ArgumentException($"Option {args[i]} needs a value.");
            var value = int.Parse(args[i + 1], NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            if (value < 1)
                throw new ArgumentException($"Option {args[i]} must be at least 1.");
            switch (args[i])
            {
                case "--rows": settings.Rows = value; break;
                case "--batch": settings.Batch = value; break;
                case "--updates": settings.Updates = value; break;
                case "--rounds": settings.Rounds = value; break;
                case "--latency-rate": settings.LatencyRate = value; break;
                case "--latency-seconds": settings.LatencySeconds = value; break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'.");
            }
        }
        return settings;
    }

    public string ToArguments() => string.Create(CultureInfo.InvariantCulture,
        $"--rows {Rows} --batch {Batch} --updates {Updates} --rounds {Rounds} --latency-rate {LatencyRate} --latency-seconds {LatencySeconds}");
}
