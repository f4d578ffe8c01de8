using System.Buffers.Binary;
using DBSync.Replication.Transport;

namespace DBSync.Runtime.Tests.Security;

/// <summary>The framing of the server's messages, driven without a server: lengths are checked before anything is
/// allocated for them, the buffer grows with the bytes that really arrive, and it returns to its normal size after a
/// few reads that need no more.</summary>
[Trait("Category", "Security")]
public sealed class BackendMessageBufferTests
{
    private const int Normal = 4096;

    [Fact]
    public void LargeMessage_GrowsTheBuffer_ThenItShrinksBackAfterAFewReadsThatFitTheNormalSize()
    {
        using var messages = new BackendMessageBuffer("the server at test", 1 << 20, "the test's limit", Normal);
        var normal = messages.Capacity;
        var large = Message('d', 100_000);
        var small = Message('d', 10);

        // The large message arrives in reads of what the buffer has room for, then small ones behind it.
        var input = new List<byte>([.. large, .. small, .. small]);
        var taken = new List<int>();
        var largest = 0;
        while (input.Count > 0 || messages.Pending > 0)
        {
            while (messages.TryTake(out _, out _, out var length))
                taken.Add(length);
            if (input.Count == 0)
                break;
            var space = messages.GetReadSpace();
            largest = Math.Max(largest, messages.Capacity);
            var count = Math.Min(Math.Min(space.Length, input.Count), 3000);
            input.GetRange(0, count).ToArray().CopyTo(space);
            input.RemoveRange(0, count);
            messages.Advance(count);
        }
        Assert.Equal([100_000, 10, 10], taken);
        Assert.True(largest >= 100_005, $"the buffer never held the large message whole ({largest} bytes)");

        // Reads that need no more than the normal size: the large buffer is given up after a few of them.
        var reads = 0;
        for (; messages.Capacity != normal; reads++)
        {
            Assert.True(reads <= BackendMessageBuffer.ShrinkAfterReads, $"the buffer is still {messages.Capacity} bytes after {reads} small reads");
            Feed(messages, small);
            Assert.True(messages.TryTake(out _, out _, out _));
        }
        Assert.InRange(reads, 1, BackendMessageBuffer.ShrinkAfterReads);
    }

    [Fact]
    public void LargeMessagesBackToBack_ReuseOneGrownBuffer_InsteadOfOnePerMessage()
    {
        // Rows of one and a half times the normal size, each read ending at its end (a read that ends at a message
        // boundary is where the buffer used to shrink, and grow again for the next row: an array and a copy per row).
        using var messages = new BackendMessageBuffer("the server at test", 1 << 20, "the test's limit", Normal);
        var large = Message('d', Normal + (Normal / 2));
        var buffers = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);
        for (var row = 0; row < 50; row++)
        {
            for (var sent = 0; sent < large.Length;)
            {
                var space = messages.GetReadSpace();
                buffers.Add(messages.Buffer);
                var count = Math.Min(space.Length, large.Length - sent);
                large.AsSpan(sent, count).CopyTo(space);
                messages.Advance(count);
                sent += count;
            }
            Assert.True(messages.TryTake(out _, out _, out var length));
            Assert.Equal(large.Length - 5, length);
        }
        // The normal buffer and one grown one.
        Assert.Equal(2, buffers.Count);
    }

    [Fact]
    public void HeaderClaimingAHugeMessage_FollowedByAFewBytes_AllocatesOnlyForWhatArrived()
    {
        // 512 MiB claimed, under the 1 GiB cap, then 100 bytes and the connection closes: the buffer grows only as bytes
        // arrive, so the claim costs nothing.
        using var messages = new BackendMessageBuffer("the server at test", 1 << 30, "the test's limit", Normal);
        var header = Header('d', (512 << 20) + 4);
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        Feed(messages, [.. header, .. new byte[100]]);
        var space = messages.GetReadSpace();
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        Assert.False(messages.TryTake(out _, out _, out _));
        Assert.True(space.Length > 0);
        Assert.True(allocated < 64 * 1024, $"{allocated} bytes allocated for a message that sent 105 bytes");
        Assert.Equal(Normal, messages.Capacity);
    }

    [Fact]
    public void LargeMessage_ArrivingSlowly_GrowsTheBufferWithWhatArrived()
    {
        using var messages = new BackendMessageBuffer("the server at test", 1 << 30, "the test's limit", Normal);
        var message = Message('d', 300_000);
        for (var sent = 0; sent < message.Length;)
        {
            var space = messages.GetReadSpace();
            // Doubled once more than half is used: never more than four times what arrived.
            Assert.True(messages.Capacity <= Math.Max(Normal, 4 * sent), $"{messages.Capacity} bytes for {sent} received");
            var count = Math.Min(Math.Min(space.Length, message.Length - sent), 1000);
            message.AsSpan(sent, count).CopyTo(space);
            messages.Advance(count);
            sent += count;
        }
        Assert.True(messages.TryTake(out _, out var offset, out var length));
        Assert.True(message.AsSpan(5).SequenceEqual(messages.Buffer.AsSpan(offset, length)));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void LengthUnderFour_IsAProtocolError(int length)
    {
        using var messages = new BackendMessageBuffer("the server at test", 1 << 20, "the test's limit", Normal);
        Feed(messages, Header('Z', length));
        var error = Assert.Throws<ProtocolException>(() => messages.TryTake(out _, out _, out _));
        Assert.Equal($"Message 'Z' from the server at test claims a length of {length}; a length counts its own 4 bytes, so the stream is corrupt.", error.Message);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(int.MaxValue - 3)]
    [InlineData((1 << 20) + 5)]
    public void LengthOverTheLimit_IsAProtocolError_BeforeAnythingIsAllocated(int length)
    {
        using var messages = new BackendMessageBuffer("the server at test", 1 << 20, "the test's limit", Normal);
        Feed(messages, Header((char)0x01, length));
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<ProtocolException>(() => messages.GetReadSpace());
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        Assert.StartsWith($"Message 0x01 from the server at test claims a body of {length - 4} bytes, over the limit of {1 << 20} bytes (the test's limit).", error.Message, StringComparison.Ordinal);
        Assert.True(allocated < 64 * 1024, $"{allocated} bytes allocated");
        Assert.Equal(Normal, messages.Capacity);
    }

    private static void Feed(BackendMessageBuffer messages, byte[] bytes)
    {
        bytes.CopyTo(messages.GetReadSpace());
        messages.Advance(bytes.Length);
    }

    private static byte[] Header(char kind, int length)
    {
        var header = new byte[5];
        header[0] = (byte)kind;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), length);
        return header;
    }

    private static byte[] Message(char kind, int bodyLength)
    {
        var message = new byte[5 + bodyLength];
        Header(kind, 4 + bodyLength).CopyTo(message, 0);
        message.AsSpan(5).Fill((byte)'x');
        return message;
    }
}
