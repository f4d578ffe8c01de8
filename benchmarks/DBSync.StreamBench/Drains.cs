using System.Diagnostics;
using System.Globalization;
using DBSync.Sample;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;
using Npgsql.Replication.PgOutput.Messages;
using NpgsqlTypes;

namespace DBSync.StreamBench;

/// <summary>What one drain of a slot measured: wall and process CPU seconds, bytes allocated, row events seen.</summary>
internal sealed record DrainResult(string Consumer, double WallSeconds, double CpuSeconds, double UserSeconds, long AllocatedBytes, long Events, long Checksum)
{
    public const string Prefix = "drain-result";

    public string ToLine() => string.Create(CultureInfo.InvariantCulture,
        $"{Prefix} {Consumer} {WallSeconds:R} {CpuSeconds:R} {UserSeconds:R} {AllocatedBytes} {Events} {Checksum}");

    public static DrainResult Parse(string line)
    {
        var f = line.Split(' ');
        return new DrainResult(f[1], double.Parse(f[2], CultureInfo.InvariantCulture), double.Parse(f[3], CultureInfo.InvariantCulture),
            double.Parse(f[4], CultureInfo.InvariantCulture), long.Parse(f[5], CultureInfo.InvariantCulture), long.Parse(f[6], CultureInfo.InvariantCulture),
            long.Parse(f[7], CultureInfo.InvariantCulture));
    }
}

/// <summary>
/// The .NET consumers, each run in a process of its own until the commit that ends at <c>end</c> was handled. The
/// parent times each consumer's process from its start to its exit, pg_recvlogical's too; the figures measured here
/// (from connecting) give the bytes allocated and are printed alongside. Every value of every row is read into
/// a <see cref="User"/> and every field of it touched (a checksum), so neither consumer can skip work.
/// </summary>
internal static class Drains
{
    public static async Task<DrainResult> RunAsync(string consumer, string connectionString, string slot, NpgsqlLogSequenceNumber end)
    {
        var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var user = process.UserProcessorTime;
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var watch = Stopwatch.StartNew();
        var (events, checksum) = consumer switch
        {
            "dbsync" => await DbSyncAsync(connectionString, slot, end, ReplicationTransport.Auto),
            "dbsync-npgsql" => await DbSyncAsync(connectionString, slot, end, ReplicationTransport.Npgsql),
            "npgsql" => await NpgsqlAsync(connectionString, slot, end),
            _ => throw new ArgumentException($"Unknown consumer '{consumer}' (dbsync, dbsync-npgsql or npgsql)."),
        };
        var wall = watch.Elapsed.TotalSeconds;
        process.Refresh();
        return new DrainResult(consumer, wall, (process.TotalProcessorTime - cpu).TotalSeconds, (process.UserProcessorTime - user).TotalSeconds,
            GC.GetTotalAllocatedBytes(precise: true) - allocated, events, checksum);
    }

    /// <summary>Touches every field, so that the JIT cannot drop the work.</summary>
    private static long Touch(User user)
    {
        long sum = user.Id + user.FirstName.Length + user.UserName.Length + user.Email.Length + (user.Avatar?.Length ?? 0)
                   + (user.Homepage?.Length ?? 0) + (user.DateOfBirth?.DayNumber ?? 0) + (user.Address?.Length ?? 0);
        if (user.Interests is { } interests)
        {
            foreach (var interest in interests)
                sum += interest?.Length ?? 0;
        }
        return sum;
    }

    /// <summary>DBSync with the default replication transport (its own connection here), or on Npgsql's.</summary>
    private static async Task<(long, long)> DbSyncAsync(string connectionString, string slot, NpgsqlLogSequenceNumber end, ReplicationTransport transport)
    {
        long events = 0, checksum = 0;
        using var stop = new CancellationTokenSource();
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = connectionString,
            SlotName = slot,
            PublicationName = Backlog.Publication,
            InitialSnapshot = false,
            ReplicationTransport = transport,
        });
        client.On<User>(change =>
        {
            events++;
            checksum += Touch(change.New!);
        });
        client.OnTransaction((tx, _) =>
        {
            if (tx.EndLsn >= end)
                stop.Cancel();
            return ValueTask.CompletedTask;
        });
        await client.RunAsync(stop.Token);
        return (events, checksum);
    }

    private static async Task<(long, long)> NpgsqlAsync(string connectionString, string slot, NpgsqlLogSequenceNumber end)
    {
        long events = 0, checksum = 0;
        await using var connection = new LogicalReplicationConnection(connectionString);
        await connection.Open();
        using var stop = new CancellationTokenSource();
        var options = new PgOutputReplicationOptions([Backlog.Publication], PgOutputProtocolVersion.V2, binary: true);
        try
        {
            await foreach (var message in connection.StartReplication(new PgOutputReplicationSlot(slot), options, stop.Token))
            {
                switch (message)
                {
                    case InsertMessage insert:
                        events++;
                        checksum += Touch(await ReadAsync(insert.NewRow, stop.Token));
                        break;
                    case UpdateMessage update:
                        events++;
                        checksum += Touch(await ReadAsync(update.NewRow, stop.Token));
                        break;
                    case CommitMessage commit when commit.TransactionEndLsn >= end:
                        await stop.CancelAsync();
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        return (events, checksum);
    }

    /// <summary>What a .NET user writes today: every value read with Get&lt;T&gt;() into the POCO.</summary>
    private static async ValueTask<User> ReadAsync(ReplicationTuple row, CancellationToken cancellationToken)
    {
        var user = new User();
        var column = 0;
        await foreach (var value in row)
        {
            switch (column++)
            {
                case 0: user.Id = await value.Get<int>(cancellationToken); break;
                case 1: user.FirstName = await value.Get<string>(cancellationToken); break;
                case 2: user.UserName = await value.Get<string>(cancellationToken); break;
                case 3: user.Email = await value.Get<string>(cancellationToken); break;
                case 4: user.Avatar = value.IsDBNull ? null : await value.Get<string>(cancellationToken); break;
                case 5: user.Homepage = value.IsDBNull ? null : await value.Get<string>(cancellationToken); break;
                case 6: user.DateOfBirth = value.IsDBNull ? null : await value.Get<DateOnly>(cancellationToken); break;
                case 7: user.Address = value.IsDBNull ? null : await value.Get<string>(cancellationToken); break;
                case 8: user.Interests = value.IsDBNull ? null : await value.Get<string[]>(cancellationToken); break;
            }
        }
        return user;
    }
}
