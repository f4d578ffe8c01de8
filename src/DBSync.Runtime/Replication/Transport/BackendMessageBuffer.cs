using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;

namespace DBSync.Replication.Transport;

/// <summary>
/// Splits the bytes read from the server into backend messages (a kind byte, an Int32 length that counts itself, the
/// body) without I/O of its own: the transport reads into <see cref="GetReadSpace"/> and reports the count with
/// <see cref="Advance"/>, and whole messages come out of <see cref="TryTake"/> in place. Every length is checked before
/// anything is allocated for it: one under 4 or over <see cref="MaxMessageSize"/> is a <see cref="ProtocolException"/>.
/// The buffer grows for a message larger than it, by doubling as the message's bytes arrive (a length the server claims
/// costs only what it really sent), and returns to its normal size once <see cref="ShrinkAfterReads"/> reads in a row
/// needed no more (a stream of large rows keeps its buffer instead of allocating one per row).
/// </summary>
internal sealed class BackendMessageBuffer : IDisposable
{
    /// <summary>The normal size of the buffer: the transport's batched reads take up to this much at once.</summary>
    public const int DefaultSize = 1 << 20;

    /// <summary>Reads in a row that fit the normal size before a grown buffer is given up.</summary>
    public const int ShrinkAfterReads = 8;

    private const int HeaderLength = 5;

    private readonly string _source;
    private readonly int _normalSize;
    private byte[] _buffer;
    private bool _pooled;
    private int _start;
    private int _end;
    private int _readsThatFit;

    /// <param name="source">The server, for error messages ("the server at host:port").</param>
    /// <param name="maxMessageSize">The first value of <see cref="MaxMessageSize"/>.</param>
    /// <param name="limitName">The first value of <see cref="LimitName"/>.</param>
    /// <param name="normalSize">The buffer's size between large messages.</param>
    public BackendMessageBuffer(string source, int maxMessageSize, string limitName, int normalSize = DefaultSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(normalSize, HeaderLength);
        _source = source;
        _buffer = ArrayPool<byte>.Shared.Rent(normalSize);
        _pooled = true;
        _normalSize = _buffer.Length;
        MaxMessageSize = maxMessageSize;
        LimitName = limitName;
    }

    /// <summary>The largest body (bytes after the length) a message may have from now on.</summary>
    public int MaxMessageSize { get; set; }

    /// <summary>Where <see cref="MaxMessageSize"/> comes from, for the error that names it.</summary>
    public string LimitName { get; set; }

    /// <summary>The buffer the bodies that <see cref="TryTake"/> reports lie in; valid until the next <see cref="GetReadSpace"/>.</summary>
    public byte[] Buffer => _buffer;

    /// <summary>The buffer's size now (for tests of its growing and shrinking).</summary>
    public int Capacity => _buffer.Length;

    /// <summary>Bytes read but not yet taken as whole messages.</summary>
    public int Pending => _end - _start;

    /// <summary>
    /// Room for the next read, after the bytes not yet taken. A partial message moves to the front of the buffer; the
    /// buffer doubles when a message larger than it fills more than half of it, and shrinks back to its normal size after
    /// <see cref="ShrinkAfterReads"/> reads in a row that needed no more. Bodies reported earlier are invalid from here on.
    /// </summary>
    public Span<byte> GetReadSpace()
    {
        var pending = _end - _start;
        var needed = pending >= HeaderLength ? MessageLength(_start) : HeaderLength;
        // Counted here, before each read, and reset by a message over the normal size, here or when it is taken.
        if (needed > _normalSize || pending > _normalSize)
            _readsThatFit = 0;
        else if (_readsThatFit < ShrinkAfterReads)
            _readsThatFit++;

        if (needed > _buffer.Length && pending > _buffer.Length / 2)
        {
            // Doubled, not sized for the claimed length: a server that claims a large message and sends little gets
            // little. Never past the message (rounded up) or the cap. Not pooled: the pool would keep it after the shrink.
            var size = (int)Math.Min(Math.Min(2L * _buffer.Length, BitOperations.RoundUpToPowerOf2((uint)needed)), HeaderLength + (long)MaxMessageSize);
            Replace(GC.AllocateUninitializedArray<byte>(size), pending, pooled: false);
        }
        else if (_buffer.Length > _normalSize && _readsThatFit >= ShrinkAfterReads)
        {
            // Several reads needed no more than the normal size: a very large row does not keep its buffer for the rest
            // of the stream, and a stream of them does not allocate a new one for each.
            Replace(ArrayPool<byte>.Shared.Rent(_normalSize), pending, pooled: true);
        }
        else if (_start > 0)
        {
            _buffer.AsSpan(_start, pending).CopyTo(_buffer);
            _start = 0;
            _end = pending;
        }
        return _buffer.AsSpan(_end);
    }

    /// <summary>Counts <paramref name="count"/> bytes read into the span <see cref="GetReadSpace"/> returned.</summary>
    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _buffer.Length - _end);
        _end += count;
    }

    /// <summary>A whole message, if the bytes read hold one: its kind and where its body lies in <see cref="Buffer"/>.</summary>
    /// <exception cref="ProtocolException">The next message's length is impossible or over <see cref="MaxMessageSize"/>.</exception>
    public bool TryTake(out byte kind, out int bodyOffset, out int bodyLength)
    {
        if (_end - _start >= HeaderLength)
        {
            var length = MessageLength(_start);
            if (_end - _start >= length)
            {
                if (length > _normalSize)
                    _readsThatFit = 0; // the read brought a message that needed the grown buffer
                kind = _buffer[_start];
                bodyOffset = _start + HeaderLength;
                bodyLength = length - HeaderLength;
                _start += length;
                return true;
            }
        }
        kind = 0;
        bodyOffset = bodyLength = 0;
        return false;
    }

    public void Dispose()
    {
        if (_pooled)
            ArrayPool<byte>.Shared.Return(_buffer);
        _pooled = false;
        _buffer = [];
        _start = _end = 0;
    }

    /// <summary>The whole length (kind byte included) of the message at <paramref name="offset"/>, checked.</summary>
    private int MessageLength(int offset)
    {
        var length = BinaryPrimitives.ReadInt32BigEndian(_buffer.AsSpan(offset + 1));
        if (length < 4)
            throw new ProtocolException($"Message {Describe(_buffer[offset])} from {_source} claims a length of {length}; a length counts its own 4 bytes, so the stream is corrupt.");
        if (length - 4 > MaxMessageSize)
        {
            throw new ProtocolException(
                $"Message {Describe(_buffer[offset])} from {_source} claims a body of {length - 4} bytes, over the limit of {MaxMessageSize} bytes ({LimitName}). " +
                "PostgreSQL never sends a message over 1 GiB; a longer claim comes from a corrupt stream or a server that is not PostgreSQL.");
        }
        return 1 + length;
    }

    private void Replace(byte[] buffer, int pending, bool pooled)
    {
        _buffer.AsSpan(_start, pending).CopyTo(buffer);
        if (_pooled)
            ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = buffer;
        _pooled = pooled;
        _start = 0;
        _end = pending;
    }

    /// <summary>A kind byte for a message: the character when printable, else its hex value.</summary>
    internal static string Describe(byte kind) => kind is >= 0x20 and < 0x7F ? $"'{(char)kind}'" : $"0x{kind:x2}";
}
