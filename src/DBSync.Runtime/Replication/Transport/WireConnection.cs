using System.Net.Security;
using System.Net.Sockets;

namespace DBSync.Replication.Transport;

/// <summary>
/// The direct transport's connection once open: blocking reads into one <see cref="BackendMessageBuffer"/> from which
/// whole messages are handed out in place (one framing loop, <see cref="NextMessage"/>, for the handshake and the stream),
/// writes, and <see cref="Abort"/>, which closes the socket under a blocked read. After a read that found little, the
/// loop pauses for <see cref="BatchDelay"/> so that the frames arriving meanwhile are taken in one read.
/// </summary>
internal sealed class WireConnection : IDisposable
{
    private const int SmallRead = 64 * 1024;

    /// <summary>The largest message of the handshake: authentication messages are small, and so are the server's errors.</summary>
    private const int HandshakeMessageLimit = 64 * 1024;

    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly StatusReporter _reporter;
    private readonly BackendMessageBuffer _messages;
    private volatile bool _waiting;
    private volatile bool _endRequested;
    private volatile string? _abortReason;

    public WireConnection(Socket socket, Stream stream, string endpoint, StatusReporter reporter)
    {
        _socket = socket;
        _stream = stream;
        Endpoint = endpoint;
        _reporter = reporter;
        _messages = new BackendMessageBuffer($"the server at {endpoint}", HandshakeMessageLimit, "the limit of the connection's handshake");
    }

    /// <summary>Where the server listens, for messages.</summary>
    public string Endpoint { get; }

    /// <summary>The buffer the offsets of <see cref="NextMessage"/> point into.</summary>
    public byte[] Buffer => _messages.Buffer;

    /// <summary>The pause after a small read (zero during the handshake).</summary>
    public TimeSpan BatchDelay { get; set; }

    /// <summary>Whether the connection is encrypted.</summary>
    public bool IsEncrypted => _stream is SslStream;

    /// <summary>A read is blocked waiting for the server.</summary>
    public bool IsWaiting => _waiting;

    /// <summary>The last read found the connection closed.</summary>
    public bool Closed { get; private set; }

    /// <summary>The end of the stream was asked for: a failed read counts as the connection closing.</summary>
    public bool EndRequested => _endRequested;

    /// <summary>From now on messages may be as large as the stream allows.</summary>
    public void LimitMessages(int maxMessageSize, string limitName)
    {
        _messages.MaxMessageSize = maxMessageSize;
        _messages.LimitName = limitName;
    }

    /// <summary>
    /// The next whole message, taken from the buffer, or (when <paramref name="mayRead"/>) read for with blocking reads.
    /// False when there is none: nothing buffered and reading not allowed, or the connection closed (<see cref="Closed"/>).
    /// </summary>
    public bool NextMessage(bool mayRead, out byte kind, out int offset, out int length)
    {
        while (!_messages.TryTake(out kind, out offset, out length))
        {
            if (!mayRead)
                return false;
            var read = Receive();
            if (read == 0)
            {
                Closed = true;
                return false;
            }
            if (read < SmallRead && BatchDelay > TimeSpan.Zero && !_endRequested && _socket.Available == 0)
                Thread.Sleep(BatchDelay);
        }
        return true;
    }

    /// <summary>The next message of the handshake (the login, START_REPLICATION): a closed connection is an error.</summary>
    /// <exception cref="OperationCanceledException">The stream was ended before the server started it.</exception>
    public (byte Kind, int Offset, int Length) NextHandshakeMessage()
    {
        if (NextMessage(mayRead: true, out var kind, out var offset, out var length))
            return (kind, offset, length);
        if (_endRequested)
            throw new OperationCanceledException($"The replication stream from {Endpoint} was ended before the server started it.");
        throw ClosedError($"The server at {Endpoint} closed the connection during the replication handshake.");
    }

    /// <summary>Why the connection closed: the abort's reason, or <paramref name="closedByServer"/>.</summary>
    public Exception ClosedError(string closedByServer)
        => _abortReason is { } reason ? new IOException(reason) : new EndOfStreamException(closedByServer);

    /// <summary>Writes a message during the handshake (failures are the caller's).</summary>
    public void Write(byte[] message)
    {
        _stream.Write(message);
        _stream.Flush();
    }

    /// <summary>Writes a message; a connection that is gone is left for the reader to find on its next read.</summary>
    public void TrySend(byte[] message)
    {
        try
        {
            Write(message);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            // The connection is gone: the reader finds out on its next read.
        }
    }

    /// <summary>A failed read from now on counts as the connection closing.</summary>
    public void RequestEnd() => _endRequested = true;

    /// <summary>Closes the socket under a blocked read, which then fails with <paramref name="reason"/> (or, after
    /// <see cref="RequestEnd"/>, ends).</summary>
    public void Abort(string reason)
    {
        _abortReason = reason;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }

    /// <summary>Reads give up after <paramref name="timeout"/> (for the last reads of a graceful end).</summary>
    public void SetReadTimeout(TimeSpan timeout) => _socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;

    public void Dispose()
    {
        _stream.Dispose();
        _socket.Dispose();
        _messages.Dispose();
    }

    /// <summary>
    /// One blocking read into the buffer, the one every read goes through: while it waits, the status timer watches the
    /// server's silence and <see cref="Abort"/> may close the socket under it (then it fails with the abort's reason).
    /// 0 when the connection closed, or failed after the end of the stream was asked for.
    /// </summary>
    private int Receive()
    {
        var space = _messages.GetReadSpace();
        int read;
        _waiting = true;
        try
        {
            read = _stream.Read(space);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            if (_endRequested)
                return 0;
            if (_abortReason is { } reason)
                throw new IOException(reason, e);
            throw;
        }
        finally
        {
            _waiting = false;
        }
        if (read > 0)
        {
            _messages.Advance(read);
            _reporter.DataArrived();
        }
        return read;
    }
}
