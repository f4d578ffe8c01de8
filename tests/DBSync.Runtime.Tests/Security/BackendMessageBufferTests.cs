using System.Buffers.Binary;
using DBSync.Replication.Transport;

namespace DBSync.Runtime.Tests.Security;

/// <summary>The framing of the server's messages, driven without a server: lengths are checked before anything is
/// allocated for them, and the buffer returns to its normal size after a large message.</summary>
[Trait("Category", "Security")]
public sealed class BackendMessageBufferTests
{
    private const int Normal = 4096;

    [Fact]
    public void LargeMessage_GrowsTheBuffer_ThenItShrinksBackOnceTheMessageIsTaken()
    {
        using var messages = new BackendMessageBuffer("the server at test", 1 << 20, "the test's limit", Normal);
        var normal = messages.Capacity;
        var large = Message('d', 100_000);
        var small = Message('d', 10);

        // The large message arrives in reads of what the buffer has room for, then a small one behind it.
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

        messages.GetReadSpace();
        Assert.Equal(normal, messages.Capacity);
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
