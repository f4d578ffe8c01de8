using System.Net;
using System.Net.Sockets;

namespace DBSync.Replication.Transport;

/// <summary>
/// The direct transport's socket: the host's name resolved (each of its addresses tried in turn) or the Unix socket's
/// path, a blocking connect, and TCP keepalives as the connection string asks.
/// </summary>
internal static class SocketConnector
{
    /// <summary>Connects to the server, under <paramref name="guard"/>: it closes the socket when time runs out or the
    /// connect is cancelled, and the connect then fails.</summary>
    public static Socket Connect(DirectSettings settings, ConnectGuard guard)
    {
        var socket = ConnectAny(Endpoints(settings), guard);
        try
        {
            ApplyKeepAlive(socket, settings);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static Socket ConnectAny(EndPoint[] addresses, ConnectGuard guard)
    {
        for (var i = 0; ; i++)
        {
            var socket = addresses[i] is UnixDomainSocketEndPoint
                ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(addresses[i].AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            guard.Watch(socket);
            try
            {
                socket.Connect(addresses[i]);
                return socket;
            }
            catch (SocketException) when (!guard.IsOver && i < addresses.Length - 1)
            {
                socket.Dispose(); // the host's next address
            }
            catch
            {
                socket.Dispose();
                throw;
            }
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
}

/// <summary>
/// The connection string's Timeout and the caller's token over a connect, TLS handshake and login, all blocking: when
/// either ends it, the socket being used is closed under the blocked call, which then fails.
/// </summary>
internal sealed class ConnectGuard : IDisposable
{
    private readonly CancellationToken _cancellationToken;
    private readonly Timer? _deadline;
    private readonly CancellationTokenRegistration _cancellation;
    private Socket? _socket;
    private volatile bool _timedOut;

    public ConnectGuard(TimeSpan timeout, CancellationToken cancellationToken)
    {
        _cancellationToken = cancellationToken;
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            _deadline = new Timer(static state =>
            {
                var guard = (ConnectGuard)state!;
                guard._timedOut = true;
                guard.Close();
            }, this, timeout, Timeout.InfiniteTimeSpan);
        }
        _cancellation = cancellationToken.Register(static state => ((ConnectGuard)state!).Close(), this);
    }

    /// <summary>The connection string's Timeout passed.</summary>
    public bool TimedOut => _timedOut;

    /// <summary>Timed out or cancelled: nothing more is tried.</summary>
    public bool IsOver => _timedOut || _cancellationToken.IsCancellationRequested;

    /// <summary>The socket to close from now on (closed at once if the time is already over).</summary>
    public void Watch(Socket socket)
    {
        Volatile.Write(ref _socket, socket);
        if (IsOver)
            socket.Dispose();
    }

    public void Dispose()
    {
        _deadline?.Dispose();
        _cancellation.Dispose();
    }

    private void Close() => Volatile.Read(ref _socket)?.Dispose();
}
