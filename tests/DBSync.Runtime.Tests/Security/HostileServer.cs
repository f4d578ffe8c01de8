using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace DBSync.Runtime.Tests.Security;

/// <summary>
/// A fake PostgreSQL server on loopback for the attacks a real one will not play: it takes the SSLRequest (TLS with a
/// test certificate when it has one), reads the startup message, then runs a script per connection that sends whatever
/// the attack needs. Every byte a client sends is kept, so a test can check that the password never arrived in
/// cleartext. It counts connections, so a test can check that a refused login is not tried again.
/// </summary>
internal sealed class HostileServer : IAsyncDisposable
{
    public const string User = "victim";
    public const string Password = "hostile-test-password-Ω7";

    private readonly TcpListener _listener;
    private readonly Func<HostileConnection, Task> _script;
    private readonly X509Certificate2? _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<HostileConnection> _connections = new();
    private readonly ConcurrentQueue<Exception> _scriptErrors = new();
    private readonly ConcurrentQueue<Task> _sessions = new();
    private readonly Task _accepting;

    private HostileServer(Func<HostileConnection, Task> script, X509Certificate2? certificate)
    {
        _script = script;
        _certificate = certificate;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Connections accepted so far.</summary>
    public int Connections => _connections.Count;

    /// <summary>The connections, in the order they came.</summary>
    public IReadOnlyList<HostileConnection> Seen => [.. _connections];

    /// <summary>Starts a server that plays <paramref name="script"/> on every connection, with TLS when given a certificate.</summary>
    public static HostileServer Start(Func<HostileConnection, Task> script, X509Certificate2? certificate = null) => new(script, certificate);

    /// <summary>A connection string for this server; <paramref name="extra"/> is appended (<c>SSL Mode=Require</c>, ...).</summary>
    public string ConnectionString(string extra = "", bool withPassword = true)
        => $"Host=127.0.0.1;Port={Port};Username={User};Database=db;Timeout=15;{(withPassword ? $"Password={Password};" : "")}{extra}";

    /// <summary>Fails when any connection received the password as it is (UTF-8), anywhere in what the client sent.</summary>
    public void AssertPasswordNeverSentInCleartext()
    {
        var password = Encoding.UTF8.GetBytes(Password);
        foreach (var connection in _connections)
            Assert.True(connection.Received.AsSpan().IndexOf(password) < 0, "The client sent the password in cleartext.");
    }

    /// <summary>Fails when a script broke for a reason of its own (not the client's closing the connection).</summary>
    public void AssertScriptsRan()
    {
        if (!_scriptErrors.IsEmpty)
            throw new AggregateException("A hostile server script failed.", _scriptErrors);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
        foreach (var connection in _connections)
            await connection.DisposeAsync();
        _stop.Dispose();
    }

    /// <summary>Waits until every connection so far has ended (the client closed it, or its script did).</summary>
    public Task WhenClosedAsync() => Task.WhenAll(_sessions).WaitAsync(TimeSpan.FromSeconds(45));

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                var connection = new HostileConnection(client);
                _connections.Enqueue(connection);
                _sessions.Enqueue(Task.Run(() => ServeAsync(connection)));
            }
        }
        finally
        {
            await Task.WhenAll(_sessions);
        }
    }

    private async Task ServeAsync(HostileConnection connection)
    {
        try
        {
            await connection.AcceptStartupAsync(_certificate, _stop.Token);
            await _script(connection);
            // Closing with the client's bytes unread would reset the connection and could drop what was sent last;
            // reading on also records anything the client sends after the attack.
            await connection.ReadUntilClosedAsync(_stop.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or EndOfStreamException or OperationCanceledException
                                      or AuthenticationFailedByClient)
        {
            // The client hung up, which is what a client does when it refuses the server.
        }
        catch (Exception e)
        {
            _scriptErrors.Enqueue(e);
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }
}

/// <summary>The client gave up in the TLS handshake.</summary>
internal sealed class AuthenticationFailedByClient(Exception inner) : Exception("The client refused the TLS handshake.", inner);

/// <summary>One client connection to a <see cref="HostileServer"/>: the startup it sent and what the script does.</summary>
internal sealed class HostileConnection : IAsyncDisposable
{
    private readonly TcpClient _client;
    private readonly MemoryStream _received = new();
    private Stream _stream;
    private int _typedStart;
    private int _disposed;

    public HostileConnection(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    /// <summary>The startup message's parameters (user, database, replication, ...).</summary>
    public Dictionary<string, string> Startup { get; } = [];

    /// <summary>Whether the client negotiated TLS.</summary>
    public bool IsTls => _stream is SslStream;

    /// <summary>The certificate the server presented (DER), with TLS.</summary>
    public byte[]? Certificate { get; private set; }

    /// <summary>Every byte the client sent, after decryption.</summary>
    public byte[] Received
    {
        get
        {
            lock (_received)
                return _received.ToArray();
        }
    }

    /// <summary>The messages the client sent after its startup message, in order: 'p' for every password, SASL initial
    /// response and SASL response, 'Q' for a query, 'X' for its goodbye (a last partial message is left out).</summary>
    public List<(char Kind, byte[] Body)> ClientMessages()
    {
        var bytes = Received.AsSpan(_typedStart);
        var messages = new List<(char, byte[])>();
        while (bytes.Length >= 5 && BinaryPrimitives.ReadInt32BigEndian(bytes[1..]) is var length && bytes.Length >= 1 + length)
        {
            messages.Add(((char)bytes[0], bytes[5..(1 + length)].ToArray()));
            bytes = bytes[(1 + length)..];
        }
        return messages;
    }

    public async Task AcceptStartupAsync(X509Certificate2? certificate, CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = await ReadExactlyAsync(8, cancellationToken);
            var length = BinaryPrimitives.ReadInt32BigEndian(header);
            var code = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
            if (code == (1234 << 16 | 5680))
            {
                await WriteAsync([(byte)'N'], cancellationToken); // GSSENCRequest (Npgsql's): no GSS encryption here
                continue;
            }
            if (code == (1234 << 16 | 5679))
            {
                if (certificate is null)
                {
                    await WriteAsync([(byte)'N'], cancellationToken);
                    continue;
                }
                await WriteAsync([(byte)'S'], cancellationToken);
                var tls = new SslStream(_stream, leaveInnerStreamOpen: false);
                try
                {
                    await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate }, cancellationToken);
                }
                catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
                {
                    throw new AuthenticationFailedByClient(e);
                }
                _stream = tls;
                Certificate = certificate.RawData;
                continue;
            }
            var rest = Encoding.UTF8.GetString(await ReadExactlyAsync(length - 8, cancellationToken)).Split('\0');
            for (var i = 0; i + 1 < rest.Length && rest[i].Length > 0; i += 2)
                Startup[rest[i]] = rest[i + 1];
            lock (_received)
                _typedStart = (int)_received.Length;
            return;
        }
    }

    /// <summary>The next message of the client: its kind and body.</summary>
    public async Task<(byte Kind, byte[] Body)> ReadMessageAsync(CancellationToken cancellationToken = default)
    {
        var header = await ReadExactlyAsync(5, cancellationToken);
        var body = await ReadExactlyAsync(BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1)) - 4, cancellationToken);
        return (header[0], body);
    }

    /// <summary>The next message, which must be of <paramref name="kind"/>.</summary>
    public async Task<byte[]> ExpectAsync(char kind)
    {
        var (actual, body) = await ReadMessageAsync();
        if (actual != kind)
            throw new InvalidOperationException($"The script expected message '{kind}' from the client, got '{(char)actual}'.");
        return body;
    }

    /// <summary>Reads (and records) what the client sends until it closes the connection, for at most half a minute.</summary>
    public async Task ReadUntilClosedAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var buffer = new byte[4096];
        while (await _stream.ReadAsync(buffer, timeout.Token) is var read and > 0)
            Record(buffer.AsSpan(0, read));
    }

    public Task SendAsync(char kind, ReadOnlySpan<byte> body)
    {
        var message = new byte[5 + body.Length];
        message[0] = (byte)kind;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + body.Length);
        body.CopyTo(message.AsSpan(5));
        return WriteAsync(message, CancellationToken.None);
    }

    /// <summary>An Authentication message: the request code and its data.</summary>
    public Task SendAuthenticationAsync(int request, ReadOnlySpan<byte> data = default)
    {
        var body = new byte[4 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(body, request);
        data.CopyTo(body.AsSpan(4));
        return SendAsync('R', body);
    }

    /// <summary>AuthenticationSASL offering <paramref name="mechanisms"/>.</summary>
    public Task OfferSaslAsync(params string[] mechanisms)
        => SendAuthenticationAsync(10, Encoding.UTF8.GetBytes(string.Concat(mechanisms.Select(m => m + "\0")) + "\0"));

    public Task SendRawAsync(byte[] bytes) => WriteAsync(bytes, CancellationToken.None);

    /// <summary>An ErrorResponse, as a server that refuses a login sends it.</summary>
    public Task SendErrorAsync(string sqlState, string message)
        => SendAsync('E', Encoding.UTF8.GetBytes($"SFATAL\0VFATAL\0C{sqlState}\0M{message}\0\0"));

    /// <summary>What follows a successful login: a parameter, the backend key, ready for query.</summary>
    public async Task SendReadyAsync()
    {
        await SendAsync('S', "server_version\u000015.0\0"u8);
        var key = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(key, 4242);
        await SendAsync('K', key);
        await SendAsync('Z', "I"u8);
    }

    /// <summary>Plays the server's side of SCRAM from SASLInitialResponse on, up to (not including) SASLFinal.</summary>
    public async Task<ScramServer> ScramUntilFinalAsync(string mechanismsOffered = "SCRAM-SHA-256", byte[]? expectedBinding = null)
    {
        await OfferSaslAsync(mechanismsOffered.Split(','));
        var scram = new ScramServer(HostileServer.Password, expectedBinding);
        scram.ReadInitialResponse(await ExpectAsync('p'));
        await SendAuthenticationAsync(11, scram.ServerFirst());
        scram.ReadClientFinal(await ExpectAsync('p'));
        return scram;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stream.DisposeAsync();
        _client.Dispose();
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[count];
        await _stream.ReadExactlyAsync(buffer, cancellationToken);
        Record(buffer);
        return buffer;
    }

    private void Record(ReadOnlySpan<byte> bytes)
    {
        lock (_received)
            _received.Write(bytes);
    }

    private async Task WriteAsync(byte[] bytes, CancellationToken cancellationToken)
    {
        await _stream.WriteAsync(bytes, cancellationToken);
        await _stream.FlushAsync(cancellationToken);
    }
}

/// <summary>
/// The server's side of SCRAM-SHA-256(-PLUS) (RFC 5802, section 3), written for the tests from the RFC: it checks the
/// client's proof and, when it expects one, the channel binding the client sent, and signs its final message.
/// </summary>
internal sealed class ScramServer
{
    private const int Iterations = 4096;

    private readonly byte[] _salt = RandomNumberGenerator.GetBytes(16);
    private readonly byte[] _saltedPassword;
    private readonly byte[]? _expectedBinding;
    private string _clientFirstBare = "";
    private string _serverFirst = "";
    private string _nonce = "";

    public ScramServer(string password, byte[]? expectedBinding)
    {
        _expectedBinding = expectedBinding;
        _saltedPassword = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), _salt, Iterations, HashAlgorithmName.SHA256, 32);
    }

    /// <summary>The mechanism the client chose in its SASLInitialResponse.</summary>
    public string Mechanism { get; private set; } = "";

    /// <summary>The client's GS2 header: <c>n,,</c>, <c>y,,</c> or <c>p=tls-server-end-point,,</c>.</summary>
    public string Gs2Header { get; private set; } = "";

    /// <summary>Whether the client's proof showed it knows the password.</summary>
    public bool ProofVerified { get; private set; }

    /// <summary>Whether the channel binding the client sent is the expected one (for -PLUS).</summary>
    public bool BindingVerified { get; private set; }

    private string AuthMessage { get; set; } = "";

    public void ReadInitialResponse(byte[] body)
    {
        var end = Array.IndexOf(body, (byte)0);
        Mechanism = Encoding.UTF8.GetString(body, 0, end);
        var length = BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(end + 1));
        var clientFirst = Encoding.UTF8.GetString(body, end + 5, length);
        var bare = clientFirst.IndexOf(",n=", StringComparison.Ordinal);
        Gs2Header = clientFirst[..(bare + 1)];
        _clientFirstBare = clientFirst[(bare + 1)..];
        var clientNonce = _clientFirstBare[(_clientFirstBare.IndexOf(",r=", StringComparison.Ordinal) + 3)..];
        _nonce = clientNonce + Convert.ToBase64String(RandomNumberGenerator.GetBytes(12));
        _serverFirst = $"r={_nonce},s={Convert.ToBase64String(_salt)},i={Iterations}";
    }

    public byte[] ServerFirst() => Encoding.UTF8.GetBytes(_serverFirst);

    public void ReadClientFinal(byte[] body)
    {
        var clientFinal = Encoding.UTF8.GetString(body);
        var proofAt = clientFinal.LastIndexOf(",p=", StringComparison.Ordinal);
        var withoutProof = clientFinal[..proofAt];
        var attributes = withoutProof.Split(',').ToDictionary(a => a[..1], a => a[2..]);
        // c= is the GS2 header again, exactly, followed by the channel's binding with p= and by nothing without it.
        var binding = Convert.FromBase64String(attributes["c"]);
        var header = Encoding.ASCII.GetBytes(Gs2Header);
        var bound = Gs2Header.StartsWith("p=", StringComparison.Ordinal);
        BindingVerified = bound && _expectedBinding is not null && binding.AsSpan().SequenceEqual([.. header, .. _expectedBinding]);
        var headerRepeated = bound ? binding.AsSpan().StartsWith(header) && binding.Length > header.Length : binding.AsSpan().SequenceEqual(header);
        if (!headerRepeated || attributes["r"] != _nonce)
            throw new InvalidOperationException("The client's final message does not repeat its GS2 header exactly, or the nonce.");

        AuthMessage = $"{_clientFirstBare},{_serverFirst},{withoutProof}";
        var clientKeyHash = SHA256.HashData(HMACSHA256.HashData(_saltedPassword, "Client Key"u8));
        var clientSignature = HMACSHA256.HashData(clientKeyHash, Encoding.UTF8.GetBytes(AuthMessage));
        var proof = Convert.FromBase64String(clientFinal[(proofAt + 3)..]);
        var clientKey = proof.Select((b, i) => (byte)(b ^ clientSignature[i])).ToArray();
        ProofVerified = SHA256.HashData(clientKey).AsSpan().SequenceEqual(clientKeyHash);
    }

    /// <summary>The server-final-message: <c>v=</c> and the server's signature (a wrong one when asked).</summary>
    public byte[] ServerFinal(bool wrongSignature = false)
    {
        var signature = HMACSHA256.HashData(HMACSHA256.HashData(_saltedPassword, "Server Key"u8), Encoding.UTF8.GetBytes(AuthMessage));
        if (wrongSignature)
            signature[0] ^= 1;
        return Encoding.UTF8.GetBytes("v=" + Convert.ToBase64String(signature));
    }
}
