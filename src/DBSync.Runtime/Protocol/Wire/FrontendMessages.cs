using System.Buffers.Binary;
using System.Text;

namespace DBSync.Protocol.Wire;

/// <summary>
/// The messages a replication client sends (PostgreSQL frontend/backend protocol 3.0). Setup messages are encoded into
/// fresh arrays; the one message of the steady state, the standby status update, is written into a buffer the caller
/// keeps (<see cref="WriteStandbyStatus"/>). Pure: values in, bytes out.
/// </summary>
internal static class FrontendMessages
{
    /// <summary>Protocol 3.0, the version of the startup message.</summary>
    public const int ProtocolVersion3 = 3 << 16;

    /// <summary>The code of the SSLRequest message (1234 &lt;&lt; 16 | 5679).</summary>
    public const int SslRequestCode = (1234 << 16) | 5679;

    /// <summary>Length of a standby status update message: kind, length, 'r', three positions, a clock, a flag.</summary>
    public const int StandbyStatusLength = 1 + 4 + 1 + (4 * 8) + 1;

    private static readonly DateTime s_postgresEpoch = new(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Asks the server to switch to TLS; it answers with one byte, 'S' or 'N'.</summary>
    public static byte[] SslRequest()
    {
        var message = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(message, 8);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(4), SslRequestCode);
        return message;
    }

    /// <summary>The startup message: protocol version, then name/value pairs (user, database, replication, ...).</summary>
    public static byte[] Startup(IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        var length = 4 + 4 + 1;
        foreach (var (name, value) in parameters)
            length += Encoding.UTF8.GetByteCount(name) + 1 + Encoding.UTF8.GetByteCount(value) + 1;
        var message = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(message, length);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(4), ProtocolVersion3);
        var offset = 8;
        foreach (var (name, value) in parameters)
        {
            offset = WriteCString(message, offset, name);
            offset = WriteCString(message, offset, value);
        }
        message[offset] = 0;
        return message;
    }

    /// <summary>A PasswordMessage: the cleartext password or the MD5 hash string.</summary>
    public static byte[] Password(string password)
    {
        var message = Typed((byte)'p', Encoding.UTF8.GetByteCount(password) + 1, out var offset);
        WriteCString(message, offset, password);
        return message;
    }

    /// <summary>SASLInitialResponse: the chosen mechanism and the client's first message.</summary>
    public static byte[] SaslInitialResponse(string mechanism, ReadOnlySpan<byte> data)
    {
        var message = Typed((byte)'p', Encoding.UTF8.GetByteCount(mechanism) + 1 + 4 + data.Length, out var offset);
        offset = WriteCString(message, offset, mechanism);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(offset), data.Length);
        data.CopyTo(message.AsSpan(offset + 4));
        return message;
    }

    /// <summary>SASLResponse: the client's next message of the exchange.</summary>
    public static byte[] SaslResponse(ReadOnlySpan<byte> data)
    {
        var message = Typed((byte)'p', data.Length, out var offset);
        data.CopyTo(message.AsSpan(offset));
        return message;
    }

    /// <summary>A simple Query (the replication commands are sent this way).</summary>
    public static byte[] Query(string sql)
    {
        var message = Typed((byte)'Q', Encoding.UTF8.GetByteCount(sql) + 1, out var offset);
        WriteCString(message, offset, sql);
        return message;
    }

    /// <summary>CopyDone: ends the client's side of the COPY BOTH stream; the server answers with its own and stops.</summary>
    public static byte[] CopyDone() => Typed((byte)'c', 0, out _);

    /// <summary>Terminate: the client is closing the connection.</summary>
    public static byte[] Terminate() => Typed((byte)'X', 0, out _);

    /// <summary>
    /// A standby status update (CopyData 'r'): the positions received, flushed and applied, the client's clock, and
    /// whether the server should answer at once. A logical slot's confirmed position is the flushed one.
    /// </summary>
    public static void WriteStandbyStatus(Span<byte> destination, ulong received, ulong flushed, ulong applied, DateTime utcNow, bool replyRequested)
    {
        destination = destination[..StandbyStatusLength];
        destination[0] = (byte)'d';
        BinaryPrimitives.WriteInt32BigEndian(destination[1..], StandbyStatusLength - 1);
        destination[5] = (byte)'r';
        BinaryPrimitives.WriteUInt64BigEndian(destination[6..], received);
        BinaryPrimitives.WriteUInt64BigEndian(destination[14..], flushed);
        BinaryPrimitives.WriteUInt64BigEndian(destination[22..], applied);
        BinaryPrimitives.WriteInt64BigEndian(destination[30..], (utcNow - s_postgresEpoch).Ticks / TimeSpan.TicksPerMicrosecond);
        destination[38] = replyRequested ? (byte)1 : (byte)0;
    }

    /// <summary>A message with a kind byte and a length, its body left for the caller from <paramref name="bodyOffset"/>.</summary>
    private static byte[] Typed(byte kind, int bodyLength, out int bodyOffset)
    {
        var message = new byte[1 + 4 + bodyLength];
        message[0] = kind;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + bodyLength);
        bodyOffset = 5;
        return message;
    }

    private static int WriteCString(byte[] destination, int offset, string value)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
            throw new ArgumentException("A connection setting or command sent to the server contains a NUL character, which the protocol cannot carry.", nameof(value)); // never echo it: it may be a password
        offset += Encoding.UTF8.GetBytes(value, destination.AsSpan(offset));
        destination[offset] = 0;
        return offset + 1;
    }
}
