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
/// The two .NET consumers, each run in a process of its own (the parent measures pg_recvlogical the same way from the
/// outside): from connecting until the commit that ends at <c>end</c> was handled. Every value of every row is read into
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
            "dbsync" => await DbSyncAsync(connectionString, slot, end),
            "npgsql" => await NpgsqlAsync(connectionString, slot, end),
            "frames" => await FramesAsync(connectionString, slot, end),
            "rawframes" => RawFrames(connectionString, slot, end),
            _ => throw new ArgumentException($"Unknown consumer '{consumer}' (dbsync or npgsql)."),
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

    private static async Task<(long, long)> DbSyncAsync(string connectionString, string slot, NpgsqlLogSequenceNumber end)
    {
        long events = 0, checksum = 0;
        using var stop = new CancellationTokenSource();
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = connectionString,
            SlotName = slot,
            PublicationName = Backlog.Publication,
            InitialSnapshot = false,
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

    /// <summary>Npgsql's raw frames only, read and dropped: the floor of any consumer built on its replication loop.</summary>
    private static async Task<(long, long)> FramesAsync(string connectionString, string slot, NpgsqlLogSequenceNumber end)
    {
        long events = 0;
        await using var connection = new LogicalReplicationConnection(connectionString);
        await connection.Open();
        using var stop = new CancellationTokenSource();
        var buffer = new byte[1 << 20];
        var options = new KeyValuePair<string, string?>[] { new("proto_version", "2"), new("publication_names", Backlog.Publication), new("binary", "true") };
        try
        {
            await foreach (var frame in Npgsql.Replication.Internal.LogicalReplicationConnectionExtensions.StartLogicalReplication(
                               connection, new PgOutputReplicationSlot(slot), stop.Token, walLocation: null, options, bypassingStream: false))
            {
                var length = (int)frame.Data.Length;
                await frame.Data.ReadExactlyAsync(buffer.AsMemory(0, length), stop.Token);
                if (buffer[0] is (byte)'I' or (byte)'U')
                    events++;
                if (buffer[0] == (byte)'C' && System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(10)) >= (ulong)end)
                    await stop.CancelAsync();
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        return (events, 0);
    }

    /// <summary>
    /// Prototype: the replication protocol read straight from a socket (trust authentication only, no TLS), on this
    /// thread with blocking reads into a 1 MiB buffer, and a 1 ms pause after a read that found less than 64 KiB, so
    /// that frames accumulate instead of waking the reader one at a time. Measures what batching alone saves.
    /// </summary>
    private static (long, long) RawFrames(string connectionString, string slot, NpgsqlLogSequenceNumber end)
    {
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
        socket.Connect(target.Host!, target.Port);
        var startup = new List<byte>();
        void CString(string value)
        {
            startup.AddRange(System.Text.Encoding.UTF8.GetBytes(value));
            startup.Add(0);
        }
        startup.AddRange([0, 0, 0, 0, 0, 3, 0, 0]); // length (patched below), protocol 3.0
        CString("user");
        CString(target.Username!);
        CString("database");
        CString(target.Database!);
        CString("replication");
        CString("database");
        startup.Add(0);
        var startupBytes = startup.ToArray();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(startupBytes, startupBytes.Length);
        socket.Send(startupBytes);

        var buffer = new byte[1 << 20];
        int filled = 0, offset = 0;
        long events = 0;
        var streaming = false;
        var done = false;
        while (!done)
        {
            // Every complete message in the buffer.
            while (filled - offset >= 5)
            {
                var kind = (char)buffer[offset];
                var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(offset + 1));
                if (filled - offset < 1 + length)
                    break;
                var body = buffer.AsSpan(offset + 5, length - 4);
                offset += 1 + length;
                switch (kind)
                {
                    case 'R' when System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(body) != 0:
                        throw new InvalidOperationException("rawframes supports trust authentication only.");
                    case 'E':
                        throw new InvalidOperationException($"Server error: {System.Text.Encoding.UTF8.GetString(body)}");
                    case 'Z' when !streaming:
                        streaming = true;
                        var query = System.Text.Encoding.UTF8.GetBytes(
                            $"START_REPLICATION SLOT {slot} LOGICAL 0/0 (proto_version '2', publication_names '{Backlog.Publication}', binary 'true')\0");
                        var message = new byte[5 + query.Length];
                        message[0] = (byte)'Q';
                        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + query.Length);
                        query.CopyTo(message, 5);
                        socket.Send(message);
                        break;
                    case 'd' when body[0] == (byte)'w':
                        var data = body[25..];
                        if (data[0] is (byte)'I' or (byte)'U')
                            events++;
                        if (data[0] == (byte)'C' && System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(data[10..]) >= (ulong)end)
                            done = true;
                        break;
                    case 'd' when body[0] == (byte)'k' && body[17] == 1:
                        SendStatus(socket, System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(body[1..]));
                        break;
                }
                if (done)
                    break;
            }
            if (done)
                break;
            if (offset > 0)
            {
                buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
                filled -= offset;
                offset = 0;
            }
            var read = socket.Receive(buffer, filled, buffer.Length - filled, System.Net.Sockets.SocketFlags.None);
            if (read == 0)
                throw new EndOfStreamException("The server closed the connection.");
            filled += read;
            if (streaming && read < 64 * 1024)
                Thread.Sleep(1); // let frames accumulate
        }
        return (events, 0);
    }

    private static void SendStatus(System.Net.Sockets.Socket socket, ulong lsn)
    {
        var message = new byte[1 + 4 + 34];
        message[0] = (byte)'d';
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + 34);
        message[5] = (byte)'r';
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(message.AsSpan(6), lsn);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(message.AsSpan(14), lsn);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(message.AsSpan(22), lsn);
        socket.Send(message);
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
