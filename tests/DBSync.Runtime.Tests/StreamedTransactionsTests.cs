using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.Versioning;
using DBSync.Replication;
using MessagePack;
using Xunit.Abstractions;

namespace DBSync.Runtime.Tests;

/// <summary>The buffer of streamed in-progress transactions: order, subtransaction aborts, the memory limit and the
/// spill file's MessagePack records.</summary>
public sealed class StreamedTransactionsTests(ITestOutputHelper output) : IDisposable
{
    private const uint Top = 700;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"dbsync-stream-tests-{Guid.NewGuid():N}");

    /// <summary>An Insert frame of a streamed transaction: kind, (sub)transaction id, then payload bytes.</summary>
    private static byte[] Frame(uint xid, int n, int payload = 20)
    {
        var frame = new byte[5 + payload];
        WriteFrame(frame, xid, n);
        return frame;
    }

    private static void WriteFrame(byte[] frame, uint xid, int n)
    {
        frame[0] = (byte)'I';
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), xid);
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), n);
    }

    private static List<(int N, ulong Lsn)> Replay(StreamedTransactions.Transaction transaction)
    {
        var result = new List<(int, ulong)>();
        var reader = transaction.OpenReader();
        var buffer = Array.Empty<byte>();
        while (reader.TryRead(ref buffer, out var length, out var lsn))
        {
            Assert.Equal((byte)'I', buffer[0]);
            result.Add((BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(5, length - 5)), lsn));
        }
        return result;
    }

    [Fact]
    public void FramesInMemory_ReplayInOrderWithTheirPositions_AndTakeEndsTheTransaction()
    {
        using var streams = new StreamedTransactions(long.MaxValue, _directory);
        var transaction = streams.Open(Top);
        for (var i = 0; i < 1000; i++)
            transaction.Append(Frame(Top, i), 5000UL + (ulong)i);
        Assert.Same(transaction, streams.Open(Top)); // the next block of the same transaction

        using var taken = streams.Take(Top)!;
        Assert.Null(taken.SpillPath);
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => (i, 5000UL + (ulong)i)), Replay(taken));
        Assert.Equal(0, streams.Count);
        Assert.Null(streams.Take(Top));
    }

    [Fact]
    public void PastTheMemoryLimit_TheTransactionMovesToAFileOfMessagePackRecords_AndReplaysWhole()
    {
        using var streams = new StreamedTransactions(1024 * 1024, _directory);
        var transaction = streams.Open(Top);
        for (var i = 0; i < 50_000; i++) // about 2 MB of records
            transaction.Append(Frame(Top, i), (ulong)i);

        Assert.NotNull(transaction.SpillPath);
        Assert.True(File.Exists(transaction.SpillPath));
        Assert.Equal(0, streams.MemoryBytes);
        Assert.True(streams.PeakMemoryBytes <= 1024 * 1024, $"Peak {streams.PeakMemoryBytes} bytes in memory, above the 1 MiB limit.");

        // Each record is a MessagePack array of (uint64 position, bin frame) that any MessagePack reader reads.
        transaction.OpenReader(); // flushes
        var bytes = File.ReadAllBytes(transaction.SpillPath!);
        var reader = new MessagePackReader(bytes);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(2, reader.ReadArrayHeader());
            Assert.Equal((ulong)i, reader.ReadUInt64());
            Assert.Equal(Frame(Top, i), System.Buffers.BuffersExtensions.ToArray(reader.ReadBytes()!.Value));
        }

        var path = transaction.SpillPath!;
        using (var taken = streams.Take(Top)!)
            Assert.Equal(Enumerable.Range(0, 50_000).Select(i => (i, (ulong)i)), Replay(taken));
        Assert.False(File.Exists(path), "The spill file outlived its transaction.");
    }

    [Theory]
    [InlineData(long.MaxValue)] // in memory
    [InlineData(0L)]            // in a file from the first frame
    public void SubtransactionAbort_DropsItsFramesAndItsChildren_KeepsTheRest(long memoryLimit)
    {
        using var streams = new StreamedTransactions(memoryLimit, _directory);
        var transaction = streams.Open(Top);
        for (var i = 0; i < 100; i++)
            transaction.Append(Frame(Top, i), (ulong)i);
        for (var i = 100; i < 200; i++)
            transaction.Append(Frame(701, i), (ulong)i); // SAVEPOINT a
        for (var i = 200; i < 300; i++)
            transaction.Append(Frame(702, i), (ulong)i); // SAVEPOINT b, inside a
        streams.Abort(Top, 701);                          // ROLLBACK TO a: a and b are gone
        streams.Abort(Top, 702);                          // b's own abort, sent too: nothing left to drop
        streams.Abort(Top, 999);                          // a subtransaction that streamed nothing
        for (var i = 300; i < 70_000; i++)               // more than one memory segment
            transaction.Append(Frame(Top, i), (ulong)i);
        for (var i = 70_000; i < 70_010; i++)
            transaction.Append(Frame(703, i), (ulong)i);
        streams.Abort(Top, 703);
        for (var i = 70_010; i < 70_020; i++)
            transaction.Append(Frame(711, i), (ulong)i); // SAVEPOINT c; SAVEPOINT d; d writes first
        for (var i = 70_020; i < 70_030; i++)
            transaction.Append(Frame(710, i), (ulong)i); // RELEASE d; c writes
        streams.Abort(Top, 711);                          // ROLLBACK TO c: d's abort, then c's
        streams.Abort(Top, 710);
        for (var i = 70_030; i < 70_040; i++)
            transaction.Append(Frame(Top, i), (ulong)i);

        using var taken = streams.Take(Top)!;
        var expected = Enumerable.Range(0, 100).Concat(Enumerable.Range(300, 69_700)).Concat(Enumerable.Range(70_030, 10)).Select(i => (i, (ulong)i));
        Assert.Equal(expected, Replay(taken));
        Assert.Equal(69_810, taken.FrameCount);
    }

    /// <summary>
    /// A PL/pgSQL loop with an exception block makes one subtransaction per iteration. Looking each frame's subtransaction
    /// up in a list made the cost per frame grow with the number of subtransactions: that code kept 270,000 of these in
    /// the minute allowed here (the million would take a quarter of an hour), the linear code keeps the million in about
    /// 0.3 s. The deadline is far above that, so only a cost that grows with the size fails it.
    /// </summary>
    [Fact]
    public void MillionSubtransactions_SomeRolledBack_AreKeptInTimeLinearInTheirNumber_AndReplayExactly()
    {
        const int subtransactions = 1_000_000;
        var deadline = TimeSpan.FromSeconds(60);
        using var streams = new StreamedTransactions(long.MaxValue, _directory);
        var transaction = streams.Open(Top);
        var frame = new byte[25];
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < subtransactions; i++)
        {
            var subXid = Top + 1 + (uint)i;
            WriteFrame(frame, subXid, i);
            transaction.Append(frame, (ulong)i);
            if (i % 10 == 9)
                streams.Abort(Top, subXid); // the iteration raised: its subtransaction is rolled back
            if ((i & 0xfff) == 0 && watch.Elapsed > deadline)
                Assert.Fail($"Only {i:N0} of {subtransactions:N0} subtransactions were kept within {deadline.TotalSeconds} s: the cost of a frame grows with the number of subtransactions.");
        }
        var appended = watch.Elapsed;

        using var taken = streams.Take(Top)!;
        var reader = taken.OpenReader();
        var buffer = Array.Empty<byte>();
        long replayed = 0, next = 0;
        while (reader.TryRead(ref buffer, out var length, out var lsn))
        {
            var n = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(5, length - 5));
            Assert.Equal(next, n);
            Assert.Equal((ulong)n, lsn);
            next = n % 10 == 8 ? n + 2 : n + 1; // every tenth was rolled back
            replayed++;
        }
        Assert.Equal(subtransactions / 10 * 9, replayed);
        Assert.Equal(replayed, taken.FrameCount);
        output.WriteLine($"{subtransactions:N0} subtransactions kept in {appended.TotalMilliseconds:N0} ms, replayed by {watch.Elapsed.TotalMilliseconds:N0} ms");
    }

    [Fact]
    public void WholeAbort_DropsTheTransactionAndFreesItsMemory_OtherTransactionsStay()
    {
        using var streams = new StreamedTransactions(long.MaxValue, _directory);
        var other = streams.Open(800);
        other.Append(Frame(800, 1), 1);
        var aborted = streams.Open(Top);
        for (var i = 0; i < 20_000; i++)
            aborted.Append(Frame(Top, i), (ulong)i);
        var before = streams.MemoryBytes;

        streams.Abort(Top, Top);

        Assert.True(streams.MemoryBytes < before);
        Assert.Null(streams.Take(Top));
        using (var kept = streams.Take(800)!)
            Assert.Equal([(1, 1UL)], Replay(kept));
        Assert.Equal(0, streams.MemoryBytes);
    }

    [UnsupportedOSPlatform("windows")] // file modes
    [Fact]
    public void SpillFile_IsReadableByItsOwnerAlone_InAPrivateDirectoryOfDBSyncsOwn_AndGoesWithItsTransaction()
    {
        using var streams = new StreamedTransactions(0, _directory);
        var transaction = streams.Open(Top);
        transaction.Append(Frame(Top, 1), 1);

        var path = transaction.SpillPath!;
        var directory = Path.GetDirectoryName(path)!;
        Assert.Equal(Path.Combine(_directory, "dbsync-" + Environment.UserName), directory);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));

        streams.Abort(Top, Top);
        Assert.False(File.Exists(path), "The spill file outlived its aborted transaction.");
        Assert.True(Directory.Exists(directory), "The directory is shared with other runs of this user and stays.");
    }

    [UnsupportedOSPlatform("windows")] // file modes
    [Theory]
    [InlineData(UnixFileMode.GroupWrite)]
    [InlineData(UnixFileMode.OtherWrite)]
    public void ExistingSpillDirectory_WritableByOthers_IsRefused_WithTheFix(UnixFileMode loose)
    {
        var directory = Path.Combine(_directory, "dbsync-" + Environment.UserName);
        Directory.CreateDirectory(directory);
        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
                                        | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute | loose);

        var error = Assert.Throws<DBSyncConfigurationException>(() => new StreamedTransactions(0, _directory));

        Assert.Contains(directory, error.Message, StringComparison.Ordinal);
        Assert.Contains("can be written by other users", error.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 700 {directory}", error.Message, StringComparison.Ordinal);
        Assert.Contains("DBSyncOptions.StreamingSpillDirectory", error.Message, StringComparison.Ordinal);
    }

    [UnsupportedOSPlatform("windows")] // file modes
    [Fact]
    public void ExistingSpillDirectory_ThatIsASymbolicLink_IsRefused()
    {
        var elsewhere = Path.Combine(_directory, "elsewhere");
        Directory.CreateDirectory(elsewhere, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var directory = Path.Combine(_directory, "dbsync-" + Environment.UserName);
        Directory.CreateSymbolicLink(directory, elsewhere);

        var error = Assert.Throws<DBSyncConfigurationException>(() => new StreamedTransactions(0, _directory));

        Assert.Contains($"{directory} is a symbolic link (to {elsewhere})", error.Message, StringComparison.Ordinal);
    }

    [UnsupportedOSPlatform("windows")] // file modes
    [Fact]
    public void ExistingPrivateSpillDirectory_IsUsed()
    {
        var directory = Path.Combine(_directory, "dbsync-" + Environment.UserName);
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        using var streams = new StreamedTransactions(0, _directory);
        var transaction = streams.Open(Top);
        transaction.Append(Frame(Top, 1), 1);

        Assert.Equal(directory, Path.GetDirectoryName(transaction.SpillPath));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }
}
