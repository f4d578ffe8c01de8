using System.Globalization;

namespace DBSync.FailoverBench;

/// <summary>The command line.</summary>
internal sealed class Settings
{
    public const string Usage =
        "usage: DBSync.FailoverBench [--kills N (20)] [--silent N (0: SIGKILLs)] [--rate TPS (100)] [--wal-sender-timeout S (10)]\n" +
        "                            [--receive-timeout S (the wal_sender_timeout)] [--standby-poll-ms N (250, DBSync's default)] [--consumer PATH]";

    /// <summary>SIGKILLs of the active instance (when <see cref="Silent"/> is 0).</summary>
    public int Kills { get; private set; } = 20;

    /// <summary>Instead of SIGKILLs: this many times, the active instance's network goes silent.</summary>
    public int Silent { get; private set; }

    /// <summary>The writer's single-row transactions per second.</summary>
    public int Rate { get; private set; } = 100;

    /// <summary>The server's wal_sender_timeout, in seconds.</summary>
    public int WalSenderTimeoutSeconds { get; private set; } = 10;

    /// <summary>Each instance's ReceiveTimeout (DBSyncOptions), in seconds.</summary>
    public int ReceiveTimeoutSeconds { get; private set; } = -1;

    /// <summary>Each instance's StandbyPollInterval, in milliseconds.</summary>
    public int StandbyPollMilliseconds { get; private set; } = 250;

    /// <summary>The consumer's assembly (tests/DBSync.CrashConsumer, built by benchmarks/run-failover.sh).</summary>
    public string Consumer { get; private set; } = "tests/DBSync.CrashConsumer/bin/Release/net10.0/DBSync.CrashConsumer.dll";

    public int Failovers => Silent > 0 ? Silent : Kills;

    public static Settings Parse(string[] args)
    {
        var settings = new Settings();
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i++])
            {
                case "--kills": settings.Kills = Positive(value); break;
                case "--silent": settings.Silent = Positive(value); break;
                case "--rate": settings.Rate = Positive(value); break;
                case "--wal-sender-timeout": settings.WalSenderTimeoutSeconds = Positive(value); break;
                case "--receive-timeout": settings.ReceiveTimeoutSeconds = Positive(value); break;
                case "--standby-poll-ms": settings.StandbyPollMilliseconds = Positive(value); break;
                case "--consumer": settings.Consumer = value; break;
                default: throw new ArgumentException($"Unknown option {args[i - 1]}.");
            }
        }
        if (settings.ReceiveTimeoutSeconds < 0)
            settings.ReceiveTimeoutSeconds = settings.WalSenderTimeoutSeconds;
        if (!File.Exists(settings.Consumer))
            throw new ArgumentException($"{settings.Consumer} is missing: build tests/DBSync.CrashConsumer (benchmarks/run-failover.sh does).");
        return settings;
    }

    private static int Positive(string value)
        => int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number > 0
            ? number
            : throw new ArgumentException($"{value} is not a positive whole number.");
}
