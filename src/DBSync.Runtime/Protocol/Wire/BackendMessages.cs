using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Npgsql;

namespace DBSync.Protocol.Wire;

/// <summary>The kind bytes of the server's messages that a replication client meets.</summary>
internal static class BackendMessageKind
{
    public const byte Authentication = (byte)'R';
    public const byte BackendKeyData = (byte)'K';
    public const byte ParameterStatus = (byte)'S';
    public const byte ReadyForQuery = (byte)'Z';
    public const byte ErrorResponse = (byte)'E';
    public const byte NoticeResponse = (byte)'N';
    public const byte CopyBothResponse = (byte)'W';
    public const byte CopyData = (byte)'d';
    public const byte CopyDone = (byte)'c';
    public const byte CommandComplete = (byte)'C';
    public const byte NegotiateProtocolVersion = (byte)'v';

    /// <summary>Inside CopyData: a WAL data frame (here, one pgoutput message).</summary>
    public const byte XLogData = (byte)'w';

    /// <summary>Inside CopyData: the server's keepalive, with its WAL position and whether it wants an answer now.</summary>
    public const byte PrimaryKeepalive = (byte)'k';
}

/// <summary>The authentication requests of an 'R' message.</summary>
internal enum AuthenticationRequest
{
    Ok = 0,
    KerberosV5 = 2,
    CleartextPassword = 3,
    Md5Password = 5,
    Gss = 7,
    GssContinue = 8,
    Sspi = 9,
    Sasl = 10,
    SaslContinue = 11,
    SaslFinal = 12,
}

/// <summary>The header of an XLogData frame: where its WAL starts, the server's WAL end, and the payload's offset.</summary>
internal readonly record struct XLogDataHeader(ulong WalStart, ulong WalEnd)
{
    /// <summary>Bytes before the payload inside the CopyData body: 'w' and three 8-byte fields.</summary>
    public const int Length = 1 + 8 + 8 + 8;
}

/// <summary>A keepalive: the server's WAL end and whether it asks for a status update at once.</summary>
internal readonly record struct KeepaliveMessage(ulong WalEnd, bool ReplyRequested);

/// <summary>Parses the server's messages (bodies, after the kind byte and length). Pure: bytes in, values out.</summary>
internal static class BackendMessages
{
    public static XLogDataHeader ReadXLogData(ReadOnlySpan<byte> body)
    {
        Require(body, XLogDataHeader.Length, "XLogData");
        return new XLogDataHeader(BinaryPrimitives.ReadUInt64BigEndian(body[1..]), BinaryPrimitives.ReadUInt64BigEndian(body[9..]));
    }

    public static KeepaliveMessage ReadKeepalive(ReadOnlySpan<byte> body)
    {
        Require(body, 1 + 8 + 8 + 1, "Primary keepalive");
        return new KeepaliveMessage(BinaryPrimitives.ReadUInt64BigEndian(body[1..]), body[17] != 0);
    }

    public static AuthenticationRequest ReadAuthentication(ReadOnlySpan<byte> body)
    {
        Require(body, 4, "Authentication");
        return (AuthenticationRequest)BinaryPrimitives.ReadInt32BigEndian(body);
    }

    /// <summary>The 4-byte salt of an AuthenticationMD5Password message.</summary>
    public static ReadOnlySpan<byte> ReadMd5Salt(ReadOnlySpan<byte> body)
    {
        if (body.Length != 4 + 4)
            throw new ProtocolException($"AuthenticationMD5Password message of {body.Length} bytes: it has 4 bytes of request and exactly 4 of salt.");
        return body[4..];
    }

    /// <summary>The SASL mechanisms an AuthenticationSASL message offers: NUL-terminated names, then an empty one.</summary>
    public static List<string> ReadSaslMechanisms(ReadOnlySpan<byte> body)
    {
        var mechanisms = new List<string>();
        var rest = body[4..];
        while (true)
        {
            if (rest.IsEmpty)
                throw new ProtocolException("AuthenticationSASL message ends without the empty name that closes its list of mechanisms.");
            if (rest[0] == 0)
                break;
            mechanisms.Add(ReadCString(ref rest, "AuthenticationSASL"));
        }
        if (rest.Length != 1)
            throw new ProtocolException($"AuthenticationSASL message has {rest.Length - 1} bytes after its list of mechanisms.");
        return mechanisms;
    }

    /// <summary>The process id in BackendKeyData.</summary>
    public static int ReadBackendPid(ReadOnlySpan<byte> body)
    {
        Require(body, 8, "BackendKeyData");
        return BinaryPrimitives.ReadInt32BigEndian(body);
    }

    /// <summary>
    /// An ErrorResponse as the <see cref="PostgresException"/> Npgsql would raise for it, so that code handling server
    /// errors (SQLSTATE, message, detail) does not depend on which client read them. Its fields are
    /// <see cref="ServerText.Escape">escaped</see>: a server cannot put a line break into DBSync's messages or logs.
    /// </summary>
    public static PostgresException ReadError(ReadOnlySpan<byte> body)
    {
        string? severity = null, invariantSeverity = null, code = null, message = null, detail = null, hint = null, where = null,
            schema = null, table = null, column = null, dataType = null, constraint = null, file = null, line = null, routine = null,
            internalQuery = null;
        int position = 0, internalPosition = 0;
        var rest = body;
        while (!rest.IsEmpty && rest[0] != 0)
        {
            var field = (char)rest[0];
            rest = rest[1..];
            // Every field may end up in a message or a log entry: escaped here, once, for all of them.
            var value = ServerText.Escape(ReadCString(ref rest, "ErrorResponse"));
            switch (field)
            {
                case 'S': severity = value; break;
                case 'V': invariantSeverity = value; break;
                case 'C': code = value; break;
                case 'M': message = value; break;
                case 'D': detail = value; break;
                case 'H': hint = value; break;
                case 'P': position = ParseInt(value); break;
                case 'p': internalPosition = ParseInt(value); break;
                case 'q': internalQuery = value; break;
                case 'W': where = value; break;
                case 's': schema = value; break;
                case 't': table = value; break;
                case 'c': column = value; break;
                case 'd': dataType = value; break;
                case 'n': constraint = value; break;
                case 'F': file = value; break;
                case 'L': line = value; break;
                case 'R': routine = value; break;
            }
        }
        return new PostgresException(message ?? "(no message)", severity ?? invariantSeverity ?? "ERROR", invariantSeverity ?? severity ?? "ERROR",
            code ?? "XX000", detail, hint, position, internalPosition, internalQuery, where, schema, table, column, dataType, constraint, file, line, routine);
    }

    private static int ParseInt(string value) => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) ? number : 0;

    private static string ReadCString(ref ReadOnlySpan<byte> rest, string message)
    {
        var end = rest.IndexOf((byte)0);
        if (end < 0)
            throw new ProtocolException($"{message} message has a string without its terminating NUL.");
        var value = Encoding.UTF8.GetString(rest[..end]);
        rest = rest[(end + 1)..];
        return value;
    }

    private static void Require(ReadOnlySpan<byte> body, int length, string message)
    {
        if (body.Length < length)
            throw new ProtocolException($"{message} message of {body.Length} bytes is shorter than its {length} fixed bytes.");
    }
}
