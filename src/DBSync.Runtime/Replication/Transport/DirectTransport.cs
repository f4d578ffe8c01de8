using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using DBSync.Protocol.Wire;
using Npgsql;

namespace DBSync.Replication.Transport;

// About 400 lines: the stream's own life (START_REPLICATION, frames picked out of CopyData, status sends, the graceful
// end with its last status update) shares one send gate and one state with the socket, so it stays with the composition.

/// <summary>
/// The replication protocol spoken directly on a socket, composed of its parts: <see cref="SocketConnector"/> connects,
/// <see cref="TlsNegotiation"/> negotiates TLS, <see cref="ServerLogin"/> logs in (<see cref="ClientAuthentication"/>'s
/// strict order, channel binding over TLS included), <see cref="WireConnection"/> frames what the server sends (every
/// length checked by <see cref="BackendMessageBuffer"/> against a cap before anything is allocated for it) and
/// <see cref="StatusReporter"/> decides the status updates. This class runs the stream: START_REPLICATION, the frames
/// (keepalives answered), the status timer, and the end. Reads are blocking, on a <see cref="ReaderThread"/>, and frames
/// are handed out in place.
/// </summary>
internal sealed class DirectTransport : IReplicationTransport
{
    private const string ReadCancelled = "The read of the replication stream was cancelled.";

    private static readonly TimeSpan s_endStreamTimeout = TimeSpan.FromSeconds(5);

    private readonly WireConnection _wire;
    private readonly StatusReporter _reporter;
    private readonly ReaderThread _thread;
    private readonly int _maxMessageSize;
    private readonly Lock _sendLock = new();
    private readonly byte[] _status = new byte[FrontendMessages.StandbyStatusLength];
    private Timer? _statusTimer;
    private CancellationToken _readToken;
    private CancellationTokenRegistration _readRegistration;
    private volatile bool _reading;
    private int _frameOffset;
    private int _frameLength;
    private string? _slot;
    private volatile bool _streaming;
    private bool _streamEnded;
    private bool _copyDoneSent;
    private volatile bool _closed;

    private DirectTransport(WireConnection wire, StatusReporter reporter, ReaderThread thread, int maxMessageSize, LoginResult login)
    {
        _wire = wire;
        _reporter = reporter;
        _thread = thread;
        _maxMessageSize = maxMessageSize;
        BackendPid = login.BackendPid;
        AuthenticationMethod = login.Method;
        UnboundReason = login.UnboundReason;
    }

    public string Name => "direct";

    public int BackendPid { get; }

    public ulong LastReceivedLsn => _reporter.Received;

    public ReadOnlySpan<byte> Frame => _wire.Buffer.AsSpan(_frameOffset, _frameLength);

    public ulong FrameLsn { get; private set; }

    /// <summary>How the login was authenticated: <c>trust</c>, <c>password</c>, <c>md5</c>, <c>SCRAM-SHA-256</c> or
    /// <c>SCRAM-SHA-256-PLUS</c> (bound to the TLS channel).</summary>
    public string AuthenticationMethod { get; }

    /// <summary>Why the login is not bound to the TLS channel although the server offered binding, or null
    /// (<see cref="ClientAuthentication.UnboundReason"/>).</summary>
    public string? UnboundReason { get; }

    /// <summary>Whether the connection is encrypted.</summary>
    public bool IsEncrypted => _wire.IsEncrypted;

    private string Endpoint => _wire.Endpoint;

    /// <summary>Connects, negotiates TLS, authenticates and waits until the server is ready for the replication command.</summary>
    /// <remarks>
    /// Everything on the socket is synchronous, from the connect on, and runs on the reader thread: .NET keeps a socket
    /// that has seen one asynchronous operation in non-blocking mode and emulates a blocking read through its event
    /// thread, which would bring back the very hand-off per read that this transport exists to avoid.
    /// </remarks>
    /// <exception cref="DirectTransportUnsupportedException">The server asks for something only Npgsql provides; nothing
    /// that reveals the password was sent.</exception>
    /// <exception cref="ProtocolException">The server broke the protocol: the authentication order, a length, a message.</exception>
    /// <exception cref="DBSyncConfigurationException">TLS or channel binding cannot be had as the connection string asks,
    /// or the server's certificate fails its check.</exception>
    public static async Task<DirectTransport> ConnectAsync(DirectSettings settings, StreamTimings timings, CancellationToken cancellationToken)
    {
        var thread = new ReaderThread($"DBSync replication {settings.Endpoint}");
        try
        {
            await thread.SwitchTo();
            var transport = Connect(settings, thread, timings, cancellationToken);
            var tick = transport._reporter.TickInterval;
            transport._statusTimer = new Timer(static state => ((DirectTransport)state!).OnStatusTimer(), transport, tick, tick);
            return transport;
        }
        catch
        {
            thread.Dispose();
            throw;
        }
    }

    private static DirectTransport Connect(DirectSettings settings, ReaderThread thread, StreamTimings timings, CancellationToken cancellationToken)
    {
        var endpoint = settings.Endpoint;
        Socket? socket = null;
        Stream? stream = null;
        using var guard = new ConnectGuard(settings.ConnectTimeout, cancellationToken);
        try
        {
            socket = SocketConnector.Connect(settings, guard);
            stream = TlsNegotiation.Negotiate(socket, settings);
            var channel = stream is SslStream tls ? TlsChannel.For(tls.RemoteCertificate?.GetRawCertData()) : null;
            var reporter = new StatusReporter(timings);
            var wire = new WireConnection(socket, stream, endpoint, reporter);
            try
            {
                var login = ServerLogin.Run(wire, settings, channel);
                return new DirectTransport(wire, reporter, thread, settings.MaxMessageSize, login);
            }
            catch
            {
                wire.Dispose();
                throw;
            }
        }
        catch (Exception e)
        {
            stream?.Dispose();
            socket?.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            if (guard.TimedOut)
            {
                throw new ConnectTimeoutException(
                    $"Connecting the replication stream to {endpoint} took longer than the connection string's Timeout ({settings.ConnectTimeout.TotalSeconds:0} s).", e);
            }
            throw;
        }
    }

    /// <remarks>Until the server answers, its silence is watched as while streaming (given up after ReceiveTimeout), and
    /// a cancellation of <paramref name="cancellationToken"/> or <see cref="EndStreamAsync"/> ends the wait at once.</remarks>
    /// <exception cref="OperationCanceledException">Cancelled, or the stream was ended before the server started it.</exception>
    /// <exception cref="IOException">The server did not answer within ReceiveTimeout, or the connection was lost.</exception>
    public async ValueTask StartAsync(string slot, ulong start, IReadOnlyList<KeyValuePair<string, string>> pluginOptions, CancellationToken cancellationToken)
    {
        if (!_thread.IsCurrent)
            await _thread.SwitchTo();
        cancellationToken.ThrowIfCancellationRequested();
        var options = string.Join(", ", pluginOptions.Select(o => $"\"{o.Key}\" '{o.Value.Replace("'", "''", StringComparison.Ordinal)}'"));
        _slot = slot;
        // The server's silence counts from the query on.
        _reporter.DataArrived();
        _wire.Write(FrontendMessages.Query($"START_REPLICATION SLOT {slot} LOGICAL {new NpgsqlTypes.NpgsqlLogSequenceNumber(start)} ({options})"));
        using var cancellation = cancellationToken.Register(static state => ((DirectTransport)state!)._wire.Abort("The start of the replication stream was cancelled."), this);
        try
        {
            while (true)
            {
                var (kind, offset, length) = _wire.NextHandshakeMessage();
                switch (kind)
                {
                    case BackendMessageKind.CopyBothResponse:
                        _streaming = true;
                        _wire.LimitMessages(_maxMessageSize, "DBSyncOptions.MaxMessageSize");
                        _wire.BatchDelay = _reporter.Timings.BatchDelay;
                        return;
                    case BackendMessageKind.ErrorResponse:
                        throw BackendMessages.ReadError(_wire.Buffer.AsSpan(offset, length));
                    case BackendMessageKind.ParameterStatus or BackendMessageKind.NoticeResponse:
                        break;
                    default:
                        throw new ProtocolException($"Unexpected message {BackendMessageBuffer.Describe(kind)} in answer to START_REPLICATION from {Endpoint}.");
                }
            }
        }
        catch (IOException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("The start of the replication stream was cancelled.", e, cancellationToken);
        }
    }

    /// <remarks>A cancellation of <paramref name="cancellationToken"/> while the read waits closes the connection under
    /// it: the read ends at once with <see cref="OperationCanceledException"/>, and the stream cannot go on.</remarks>
    public ValueTask<bool> ReadFrameAsync(CancellationToken cancellationToken)
    {
        try
        {
            // On the reader thread the read may block here; elsewhere only buffered messages are taken.
            if (Read(mayRead: _thread.IsCurrent, cancellationToken))
                return new ValueTask<bool>(true);
        }
        catch (Exception e)
        {
            // Errors travel in the task, as from any asynchronous read, never thrown from the call itself.
            return ValueTask.FromException<bool>(e);
        }
        return _streamEnded ? new ValueTask<bool>(false) : ReadFrameOnThreadAsync(cancellationToken);
    }

    public bool TryReadReceivedFrame(CancellationToken cancellationToken) => !_streamEnded && Read(mayRead: false, cancellationToken);

    /// <summary>Moves to the reader thread (a handler's continuation left the loop elsewhere) and reads there.</summary>
    private async ValueTask<bool> ReadFrameOnThreadAsync(CancellationToken cancellationToken)
    {
        await _thread.SwitchTo();
        return Read(mayRead: true, cancellationToken);
    }

    /// <summary>
    /// <see cref="TryNextFrame"/> under <paramref name="cancellationToken"/>. The token's registration is made once and
    /// kept (none per frame); it closes the connection only while a read is under way, so a token cancelled after the
    /// stream's last read (the session's, as it ends) leaves the graceful end in <see cref="DisposeAsync"/> intact.
    /// </summary>
    private bool Read(bool mayRead, CancellationToken cancellationToken)
    {
        if (cancellationToken != _readToken)
        {
            _readRegistration.Dispose();
            _readToken = cancellationToken;
            _readRegistration = cancellationToken.Register(static state =>
            {
                var transport = (DirectTransport)state!;
                if (transport._reading)
                    transport._wire.Abort(ReadCancelled);
            }, this);
        }
        _reading = true;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            return TryNextFrame(mayRead);
        }
        catch (IOException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(ReadCancelled, e, cancellationToken);
        }
        finally
        {
            _reading = false;
        }
    }

    /// <summary>
    /// Takes messages until an XLogData frame (true) or the end of the stream (false): keepalives are answered, the end
    /// noted. With <paramref name="mayRead"/> false, only what is buffered: false also when that runs out.
    /// </summary>
    private bool TryNextFrame(bool mayRead)
    {
        while (_wire.NextMessage(mayRead, out var kind, out var offset, out var length))
        {
            var body = _wire.Buffer.AsSpan(offset, length);
            switch (kind)
            {
                case BackendMessageKind.CopyData when body.Length > 0 && body[0] == BackendMessageKind.XLogData:
                {
                    var header = BackendMessages.ReadXLogData(body);
                    _frameOffset = offset + XLogDataHeader.Length;
                    _frameLength = length - XLogDataHeader.Length;
                    FrameLsn = header.WalStart;
                    _reporter.AdvanceReceived(header.WalEnd);
                    return true;
                }
                case BackendMessageKind.CopyData when body.Length > 0 && body[0] == BackendMessageKind.PrimaryKeepalive:
                    if (_reporter.OnKeepalive(BackendMessages.ReadKeepalive(body)))
                        SendStatus(replyRequested: false);
                    break;
                case BackendMessageKind.CopyData:
                    throw new ProtocolException($"Unknown replication message {(body.IsEmpty ? "(an empty CopyData)" : BackendMessageBuffer.Describe(body[0]))} from {Endpoint}.");
                case BackendMessageKind.CopyDone:
                    // The server ends the stream (after ours ended, or on its own); answering keeps the protocol in step.
                    SendCopyDone();
                    break;
                case BackendMessageKind.ReadyForQuery:
                    _streamEnded = true;
                    return false;
                case BackendMessageKind.ErrorResponse:
                    throw BackendMessages.ReadError(body);
                case BackendMessageKind.CommandComplete or BackendMessageKind.NoticeResponse or BackendMessageKind.ParameterStatus:
                    break;
                default:
                    throw new ProtocolException($"Unexpected message {BackendMessageBuffer.Describe(kind)} in the replication stream from {Endpoint}.");
            }
        }
        if (!_wire.Closed)
            return false;
        if (!_wire.EndRequested)
            throw _wire.ClosedError($"The server at {Endpoint} closed the replication connection.");
        _streamEnded = true; // the end of the stream was asked for, and the connection closed on the way
        return false;
    }

    public void SetConfirmed(ulong lsn) => _reporter.AdvanceConfirmed(lsn);

    public Task FlushStatusAsync()
    {
        SendStatus(replyRequested: false);
        return Task.CompletedTask;
    }

    /// <summary>Sends a standby status update while the stream is open (after CopyDone the server would take one for a
    /// protocol violation); a failure to send is left for the reader to find.</summary>
    private void SendStatus(bool replyRequested)
    {
        lock (_sendLock)
        {
            if (_closed || !_streaming || _copyDoneSent || _streamEnded)
                return;
            _reporter.WriteStatus(_status, replyRequested);
            _wire.TrySend(_status);
        }
    }

    private void SendCopyDone()
    {
        lock (_sendLock)
        {
            if (_closed || !_streaming || _copyDoneSent)
                return;
            _copyDoneSent = true;
            _wire.TrySend(FrontendMessages.CopyDone());
        }
    }

    /// <summary>Does what <see cref="StatusReporter.OnTick"/> decides; a connection given up makes the session reconnect.</summary>
    private void OnStatusTimer()
    {
        var action = _reporter.OnTick(_wire.IsWaiting);
        if (action == StatusAction.GiveUp)
        {
            var timeout = _reporter.Timings.ReceiveTimeout;
            _wire.Abort(_streaming
                ? $"The server at {Endpoint} sent nothing for {_reporter.Silence.TotalSeconds:0} s, not even a keepalive (ReceiveTimeout {timeout.TotalSeconds:0.#} s): the connection is given up."
                : $"The server at {Endpoint} accepted START_REPLICATION for slot \"{_slot}\" but did not start the stream within ReceiveTimeout " +
                  $"({timeout.TotalSeconds:0.#} s): the connection is given up.");
            return;
        }
        if (action != StatusAction.None)
            SendStatus(replyRequested: action == StatusAction.Probe);
    }

    public Task EndStreamAsync(bool flushStatus)
    {
        _wire.RequestEnd();
        if (!_streaming)
        {
            // START_REPLICATION not answered yet: there is no stream to end, and nothing to wait for.
            _wire.Abort("The replication stream was ended before the server started it.");
            return Task.CompletedTask;
        }
        if (flushStatus)
            SendStatus(replyRequested: false);
        SendCopyDone();
        // The server answers CopyDone at once; if it cannot (a dead network), the read is ended by closing the socket.
        _ = Task.Delay(s_endStreamTimeout).ContinueWith(static (_, state) =>
        {
            var transport = (DirectTransport)state!;
            if (!transport._closed && transport._wire.IsWaiting)
                transport._wire.Abort("The server did not end the replication stream when asked.");
        }, this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _readRegistration.Dispose();
        if (_statusTimer is not null)
            await _statusTimer.DisposeAsync().ConfigureAwait(false);
        if (_streaming && !_streamEnded && !_wire.IsWaiting)
            EndGracefully();
        lock (_sendLock)
        {
            if (!_closed)
            {
                _wire.TrySend(FrontendMessages.Terminate());
                _closed = true;
            }
        }
        _wire.Dispose();
        _thread.Dispose();
    }

    /// <summary>
    /// Ends the COPY stream and reads (and drops) what the server still sends until it is ready again, for at most a
    /// couple of seconds. Closing a socket with unread data resets the connection, and the server then drops whatever
    /// of ours it had not read yet: the last status update among it.
    /// </summary>
    private void EndGracefully()
    {
        _wire.RequestEnd();
        SendCopyDone();
        try
        {
            _wire.SetReadTimeout(s_endStreamTimeout);
            while (!_streamEnded)
                TryNextFrame(mayRead: true);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or ProtocolException or NpgsqlException)
        {
            // The connection is already broken or the server sent its error: nothing more to wait for.
        }
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"direct replication connection to {Endpoint} (pid {BackendPid})");
}
