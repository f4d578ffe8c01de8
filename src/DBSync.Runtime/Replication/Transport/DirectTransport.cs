using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DBSync.Protocol.Wire;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>
/// The replication protocol spoken directly on a socket. Reads are blocking, on a <see cref="ReaderThread"/>, into one
/// large buffer from which frames are handed out in place; after a read that found little, the thread pauses for
/// <c>batchDelay</c> so that the frames arriving meanwhile are taken in one read. The server's keepalives are answered
/// here, status updates go out on a timer, and a connection that stays silent is given up. The login follows
/// <see cref="ClientAuthentication"/>'s strict order (channel binding over TLS included), and every length the server
/// sends is checked by <see cref="BackendMessageBuffer"/> against a cap before anything is allocated for it.
/// </summary>
internal sealed class DirectTransport : IReplicationTransport
{
    private const int SmallRead = 64 * 1024;

    /// <summary>The largest message of the handshake: authentication messages are small, and so are the server's errors.</summary>
    private const int HandshakeMessageLimit = 64 * 1024;

    private const string HandshakeLimitName = "the limit of the connection's handshake";
    private const string StreamLimitName = "DBSyncOptions.MaxMessageSize";

    private static readonly TimeSpan s_endStreamTimeout = TimeSpan.FromSeconds(5);

    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly string _endpoint;
    private readonly StreamTimings _timings;
    private readonly ReaderThread _thread;
    private readonly Lock _sendLock = new();
    private readonly byte[] _status = new byte[FrontendMessages.StandbyStatusLength];
    private readonly StatusReporter _reporter;
    private readonly BackendMessageBuffer _messages;
    private readonly int _maxMessageSize;
    private Timer? _statusTimer;
    private int _frameOffset;
    private int _frameLength;
    private volatile bool _waiting;
    private volatile bool _endRequested;
    private volatile string? _abortReason;
    private string? _slot;
    private volatile bool _streaming;
    private bool _streamEnded;
    private bool _copyDoneSent;
    private volatile bool _closed;

    private DirectTransport(Socket socket, Stream stream, string endpoint, ReaderThread thread, StreamTimings timings, int maxMessageSize)
    {
        _socket = socket;
        _stream = stream;
        _endpoint = endpoint;
        _thread = thread;
        _timings = timings;
        _reporter = new StatusReporter(timings);
        _maxMessageSize = maxMessageSize;
        _messages = new BackendMessageBuffer($"the server at {endpoint}", HandshakeMessageLimit, HandshakeLimitName);
    }

    public string Name => "direct";

    public int BackendPid { get; private set; }

    public ulong LastReceivedLsn => _reporter.Received;

    public ReadOnlySpan<byte> Frame => _messages.Buffer.AsSpan(_frameOffset, _frameLength);

    public ulong FrameLsn { get; private set; }

    /// <summary>How the login was authenticated: <c>trust</c>, <c>password</c>, <c>md5</c>, <c>SCRAM-SHA-256</c> or
    /// <c>SCRAM-SHA-256-PLUS</c> (bound to the TLS channel).</summary>
    public string AuthenticationMethod { get; private set; } = "";

    /// <summary>Why the login is not bound to the TLS channel although the server offered binding, or null
    /// (<see cref="ClientAuthentication.UnboundReason"/>).</summary>
    public string? UnboundReason { get; private set; }

    /// <summary>Whether the connection is encrypted.</summary>
    public bool IsEncrypted => _stream is SslStream;

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
        var endpoint = settings.Endpoint;
        var thread = new ReaderThread($"DBSync replication {endpoint}");
        try
        {
            await thread.SwitchTo();
            var transport = Connect(settings, endpoint, thread, timings, cancellationToken);
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

    private static DirectTransport Connect(DirectSettings settings, string endpoint, ReaderThread thread, StreamTimings timings, CancellationToken cancellationToken)
    {
        Socket? socket = null;
        Stream? stream = null;
        // A connect or handshake that outlives the timeout, or is cancelled, has its socket closed under it.
        var timedOut = false;
        using var deadline = settings.ConnectTimeout == Timeout.InfiniteTimeSpan
            ? null
            : new Timer(_ =>
            {
                timedOut = true;
                Volatile.Read(ref socket)?.Dispose();
            }, null, settings.ConnectTimeout, Timeout.InfiniteTimeSpan);
        using var cancellation = cancellationToken.Register(() => Volatile.Read(ref socket)?.Dispose());
        try
        {
            var addresses = Endpoints(settings);
            for (var i = 0; ; i++)
            {
                var candidate = addresses[i] is UnixDomainSocketEndPoint
                    ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                    : new Socket(addresses[i].AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                Volatile.Write(ref socket, candidate);
                try
                {
                    candidate.Connect(addresses[i]);
                    break;
                }
                catch (SocketException) when (!timedOut && !cancellationToken.IsCancellationRequested && i < addresses.Length - 1)
                {
                    candidate.Dispose(); // the host's next address
                }
            }
            ApplyKeepAlive(socket!, settings);
            stream = NegotiateTls(socket!, settings);
            var transport = new DirectTransport(socket!, stream, endpoint, thread, timings, settings.MaxMessageSize);
            try
            {
                transport.Startup(settings);
            }
            catch
            {
                transport._messages.Dispose();
                throw;
            }
            return transport;
        }
        catch (Exception e)
        {
            stream?.Dispose();
            socket?.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            if (timedOut)
            {
                throw new ConnectTimeoutException(
                    $"Connecting the replication stream to {endpoint} took longer than the connection string's Timeout ({settings.ConnectTimeout.TotalSeconds:0} s).", e);
            }
            throw;
        }
    }

    private static EndPoint[] Endpoints(DirectSettings settings)
    {
        if (settings.IsUnixSocket)
            return [new UnixDomainSocketEndPoint(Path.Combine(settings.Host, $".s.PGSQL.{settings.Port}"))];
        var addresses = IPAddress.TryParse(settings.Host, out var literal) ? [literal] : Dns.GetHostAddresses(settings.Host);
        if (addresses.Length == 0)
            throw new SocketException((int)SocketError.HostNotFound);
        return addresses.Select(a => new IPEndPoint(a, settings.Port)).ToArray();
    }

    private static void ApplyKeepAlive(Socket socket, DirectSettings settings)
    {
        if (settings.IsUnixSocket || !(settings.TcpKeepAlive || settings.TcpKeepAliveTime > 0))
            return;
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        if (settings.TcpKeepAliveTime > 0)
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, settings.TcpKeepAliveTime);
        if (settings.TcpKeepAliveInterval > 0)
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, settings.TcpKeepAliveInterval);
    }

    /// <summary>TLS per the connection string's SSL Mode: Disable sends none; Prefer uses it when the server offers it;
    /// Require insists on it without checking the certificate (as Npgsql); VerifyCA and VerifyFull check the chain, and
    /// VerifyFull the host name too.</summary>
    private static Stream NegotiateTls(Socket socket, DirectSettings settings)
    {
        Stream stream = new NetworkStream(socket, ownsSocket: false);
        if (settings.SslMode == SslMode.Disable || settings.IsUnixSocket)
            return stream;

        stream.Write(FrontendMessages.SslRequest());
        var answer = stream.ReadByte();
        if (answer == 'N')
        {
            if (settings.SslMode == SslMode.Prefer)
                return stream;
            throw new DBSyncConfigurationException(
                $"The server at {settings.Host}:{settings.Port} does not accept TLS connections, and the connection string says SSL Mode={settings.SslMode}. " +
                "Enable ssl on the server, or lower SSL Mode to Prefer or Disable.");
        }
        if (answer != 'S')
            throw new ProtocolException($"The server at {settings.Endpoint} answered the TLS request with {(answer < 0 ? "nothing" : BackendMessageBuffer.Describe((byte)answer))} instead of 'S' or 'N'.");

        var check = new CertificateCheck(settings);
        var tls = new SslStream(stream, leaveInnerStreamOpen: false);
        try
        {
            tls.AuthenticateAsClient(check.Options());
            return tls;
        }
        catch (AuthenticationException e) when (check.Problem is { } problem)
        {
            tls.Dispose();
            throw new DBSyncConfigurationException(
                $"The certificate of the server at {settings.Endpoint} does not pass SSL Mode={settings.SslMode}: {problem}. " +
                $"Check that {(settings.RootCertificate is { } root ? $"the Root Certificate file {root}" : "the system's certificate store")} holds the CA that signed it" +
                (settings.SslMode == SslMode.VerifyFull ? $" and that the certificate names the Host {settings.Host}" : "") +
                "; SSL Mode=Require encrypts without checking the certificate.", e);
        }
        catch
        {
            tls.Dispose();
            throw;
        }
    }

    /// <summary>The server certificate's check for one handshake, and what it found wrong.</summary>
    private sealed class CertificateCheck(DirectSettings settings)
    {
        /// <summary>Why the certificate was refused, once it was.</summary>
        public string? Problem { get; private set; }

        public SslClientAuthenticationOptions Options()
        {
            var options = new SslClientAuthenticationOptions
            {
                TargetHost = settings.Host,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            };
            if (settings.SslMode is SslMode.Prefer or SslMode.Require)
            {
                options.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
                return options;
            }
            if (settings.RootCertificate is { } path)
            {
                // The chain is built by SslStream with this policy, from the certificates the server sent: its leaf and
                // any intermediate CAs, up to one of these roots.
                var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
                policy.CustomTrustStore.AddRange(ReadRoots(path));
                options.CertificateChainPolicy = policy;
            }
            options.RemoteCertificateValidationCallback = Validate;
            return options;
        }

        private bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (settings.SslMode == SslMode.VerifyCA)
                errors &= ~SslPolicyErrors.RemoteCertificateNameMismatch;
            if (errors == SslPolicyErrors.None)
                return true;
            var problems = new List<string>();
            if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
                problems.Add("the server sent no certificate");
            if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
                problems.Add($"the certificate ({ServerText.Escape(certificate?.Subject ?? "")}) does not carry the name {settings.Host}");
            if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
            {
                var statuses = chain?.ChainStatus.Select(s => $"{s.Status} ({s.StatusInformation.Trim()})").Distinct().ToList() ?? [];
                problems.Add($"its chain does not lead to a trusted CA: {(statuses.Count == 0 ? "unknown reason" : string.Join("; ", statuses))}");
            }
            Problem = string.Join(", and ", problems);
            return false;
        }

        private static X509Certificate2Collection ReadRoots(string path)
        {
            try
            {
                var roots = new X509Certificate2Collection();
                roots.ImportFromPemFile(path);
                if (roots.Count == 0)
                    throw new CryptographicException("it holds no PEM certificate");
                return roots;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                throw new DBSyncConfigurationException(
                    $"The root certificate file {path} (the connection string's Root Certificate, PGSSLROOTCERT or ~/.postgresql/root.crt) cannot be read: {e.Message} " +
                    "Point Root Certificate at the PEM file of the CA that signed the server's certificate.", e);
            }
        }
    }

    private void Startup(DirectSettings settings)
    {
        var parameters = new List<KeyValuePair<string, string>>
        {
            new("user", settings.Username),
            new("database", settings.Database),
            new("replication", "database"),
            new("application_name", settings.ApplicationName),
            new("client_encoding", "UTF8"),
        };
        if (!string.IsNullOrWhiteSpace(settings.Options))
            parameters.Add(new("options", settings.Options));
        Write(FrontendMessages.Startup(parameters));

        var channel = _stream is SslStream tls ? TlsChannel.For(tls.RemoteCertificate?.GetRawCertData()) : null;
        var authentication = new ClientAuthentication(settings.Username, settings.Password, settings.ChannelBinding, _endpoint, channel);
        while (true)
        {
            var (kind, offset, length) = ReadMessage();
            var body = _messages.Buffer.AsSpan(offset, length);
            switch (kind)
            {
                case BackendMessageKind.Authentication:
                    if (authentication.Handle(body) is { } answer)
                        Write(answer);
                    break;
                case BackendMessageKind.ErrorResponse:
                    throw BackendMessages.ReadError(body);
                case BackendMessageKind.NegotiateProtocolVersion:
                    break;
                case BackendMessageKind.BackendKeyData:
                    authentication.RequireComplete("BackendKeyData");
                    BackendPid = BackendMessages.ReadBackendPid(body);
                    break;
                case BackendMessageKind.ParameterStatus or BackendMessageKind.NoticeResponse:
                    authentication.RequireComplete(kind == BackendMessageKind.ParameterStatus ? "ParameterStatus" : "NoticeResponse");
                    break;
                case BackendMessageKind.ReadyForQuery:
                    authentication.RequireComplete("ReadyForQuery");
                    AuthenticationMethod = authentication.Method!;
                    UnboundReason = authentication.UnboundReason;
                    return;
                default:
                    throw new ProtocolException($"Unexpected message {BackendMessageBuffer.Describe(kind)} while connecting the replication stream to {_endpoint}.");
            }
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
        Write(FrontendMessages.Query($"START_REPLICATION SLOT {slot} LOGICAL {new NpgsqlTypes.NpgsqlLogSequenceNumber(start)} ({options})"));
        using var cancellation = cancellationToken.Register(static state => ((DirectTransport)state!).Abort("The start of the replication stream was cancelled."), this);
        try
        {
            while (true)
            {
                var (kind, offset, length) = ReadMessage();
                switch (kind)
                {
                    case BackendMessageKind.CopyBothResponse:
                        _streaming = true;
                        _messages.MaxMessageSize = _maxMessageSize;
                        _messages.LimitName = StreamLimitName;
                        return;
                    case BackendMessageKind.ErrorResponse:
                        throw BackendMessages.ReadError(_messages.Buffer.AsSpan(offset, length));
                    case BackendMessageKind.ParameterStatus or BackendMessageKind.NoticeResponse:
                        break;
                    default:
                        throw new ProtocolException($"Unexpected message {BackendMessageBuffer.Describe(kind)} in answer to START_REPLICATION from {_endpoint}.");
                }
            }
        }
        catch (IOException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("The start of the replication stream was cancelled.", e, cancellationToken);
        }
    }

    public ValueTask<bool> ReadFrameAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (TryNextFrame())
                return new ValueTask<bool>(true);
        }
        catch (Exception e)
        {
            // Errors travel in the task, as from any asynchronous read, never thrown from the call itself.
            return ValueTask.FromException<bool>(e);
        }
        return _streamEnded ? new ValueTask<bool>(false) : ReadFrameBlockingAsync();
    }

    /// <summary>Reads on the reader thread (moving there first if a handler's continuation left the loop elsewhere)
    /// until a frame is complete or the stream ends.</summary>
    private async ValueTask<bool> ReadFrameBlockingAsync()
    {
        if (!_thread.IsCurrent)
            await _thread.SwitchTo();
        while (true)
        {
            Fill();
            if (TryNextFrame())
                return true;
            if (_streamEnded)
                return false;
        }
    }

    /// <summary>Takes buffered messages until an XLogData frame: keepalives are answered, the end of the stream noted.</summary>
    private bool TryNextFrame()
    {
        while (_messages.TryTake(out var kind, out var offset, out var length))
        {
            var body = _messages.Buffer.AsSpan(offset, length);
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
                {
                    if (_reporter.OnKeepalive(BackendMessages.ReadKeepalive(body)))
                        SendStatus(replyRequested: false);
                    break;
                }
                case BackendMessageKind.CopyData:
                    throw new ProtocolException($"Unknown replication message {(body.IsEmpty ? "(an empty CopyData)" : BackendMessageBuffer.Describe(body[0]))} from {_endpoint}.");
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
                    throw new ProtocolException($"Unexpected message {BackendMessageBuffer.Describe(kind)} in the replication stream from {_endpoint}.");
            }
        }
        return false;
    }

    /// <summary>One blocking read into the buffer; after a small one, a pause lets the next frames gather.</summary>
    private void Fill()
    {
        var read = Receive();
        if (read == 0)
        {
            if (_endRequested)
            {
                _streamEnded = true; // the end of the stream was asked for, and the connection closed on the way
                return;
            }
            throw _abortReason is { } reason
                ? new IOException(reason)
                : new EndOfStreamException($"The server at {_endpoint} closed the replication connection.");
        }
        if (read < SmallRead && _timings.BatchDelay > TimeSpan.Zero && !_endRequested && _socket.Available == 0)
            Thread.Sleep(_timings.BatchDelay);
    }

    /// <summary>The next whole message during setup (the login, START_REPLICATION).</summary>
    private (byte Kind, int Offset, int Length) ReadMessage()
    {
        while (true)
        {
            if (_messages.TryTake(out var kind, out var offset, out var length))
                return (kind, offset, length);
            if (Receive() == 0)
            {
                if (_endRequested)
                    throw new OperationCanceledException($"The replication stream from {_endpoint} was ended before the server started it.");
                throw _abortReason is { } reason
                    ? new IOException(reason)
                    : new EndOfStreamException($"The server at {_endpoint} closed the connection during the replication handshake.");
            }
        }
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

    private void Write(byte[] message)
    {
        _stream.Write(message);
        _stream.Flush();
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
            TrySend(_status);
        }
    }

    private void SendCopyDone()
    {
        lock (_sendLock)
        {
            if (_closed || !_streaming || _copyDoneSent)
                return;
            _copyDoneSent = true;
            TrySend(FrontendMessages.CopyDone());
        }
    }

    private void TrySend(byte[] message)
    {
        try
        {
            _stream.Write(message);
            _stream.Flush();
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            // The connection is gone: the reader finds out on its next read.
        }
    }

    /// <summary>Does what <see cref="StatusReporter.OnTick"/> decides; a connection given up makes the session reconnect.</summary>
    private void OnStatusTimer()
    {
        var action = _reporter.OnTick(_waiting);
        if (action == StatusAction.GiveUp)
        {
            var silence = _reporter.Silence;
            Abort(_streaming
                ? $"The server at {_endpoint} sent nothing for {silence.TotalSeconds:0} s, not even a keepalive (ReceiveTimeout {_timings.ReceiveTimeout.TotalSeconds:0.#} s): the connection is given up."
                : $"The server at {_endpoint} accepted START_REPLICATION for slot \"{_slot}\" but did not start the stream within ReceiveTimeout " +
                  $"({_timings.ReceiveTimeout.TotalSeconds:0.#} s): the connection is given up.");
            return;
        }
        if (action != StatusAction.None)
            SendStatus(replyRequested: action == StatusAction.Probe);
    }

    /// <summary>Closes the socket under a blocked read, which then fails (or, after <see cref="EndStreamAsync"/>, ends).</summary>
    private void Abort(string reason)
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

    public Task EndStreamAsync(bool flushStatus)
    {
        _endRequested = true;
        if (!_streaming)
        {
            // START_REPLICATION not answered yet: there is no stream to end, and nothing to wait for.
            Abort("The replication stream was ended before the server started it.");
            return Task.CompletedTask;
        }
        if (flushStatus)
            SendStatus(replyRequested: false);
        SendCopyDone();
        // The server answers CopyDone at once; if it cannot (a dead network), the read is ended by closing the socket.
        _ = Task.Delay(s_endStreamTimeout).ContinueWith(static (_, state) =>
        {
            var transport = (DirectTransport)state!;
            if (!transport._closed && transport._waiting)
                transport.Abort("The server did not end the replication stream when asked.");
        }, this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (_statusTimer is not null)
            await _statusTimer.DisposeAsync().ConfigureAwait(false);
        if (_streaming && !_streamEnded && !_waiting)
            EndGracefully();
        lock (_sendLock)
        {
            if (!_closed)
            {
                TrySend(FrontendMessages.Terminate());
                _closed = true;
            }
        }
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        _thread.Dispose();
        _messages.Dispose();
    }

    /// <summary>
    /// Ends the COPY stream and reads (and drops) what the server still sends until it is ready again, for at most a
    /// couple of seconds. Closing a socket with unread data resets the connection, and the server then drops whatever
    /// of ours it had not read yet: the last status update among it.
    /// </summary>
    private void EndGracefully()
    {
        _endRequested = true;
        SendCopyDone();
        try
        {
            _socket.ReceiveTimeout = (int)s_endStreamTimeout.TotalMilliseconds;
            while (!_streamEnded)
            {
                if (!TryNextFrame() && !_streamEnded)
                    Fill();
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or ProtocolException or NpgsqlException)
        {
            // The connection is already broken or the server sent its error: nothing more to wait for.
        }
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"direct replication connection to {_endpoint} (pid {BackendPid})");
}

/// <summary>The server or the connection string needs something only Npgsql's replication connection provides.</summary>
internal sealed class DirectTransportUnsupportedException(string reason) : Exception($"The direct replication connection cannot be used: {reason}.")
{
    public string Reason { get; } = reason;
}

/// <summary>The direct replication connection could not connect, negotiate TLS and log in within the connection string's
/// Timeout: a lost connection (<see cref="DBSync.Internal.ConnectionLoss"/>), which the run tries again.</summary>
internal sealed class ConnectTimeoutException(string message, Exception inner) : TimeoutException(message, inner);
