using System.Net;
using System.Net.Sockets;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>
/// A loopback TCP proxy to a server, for network failures no server setting can make: <see cref="SilenceExisting"/>
/// turns the connections open at that moment into black holes (bytes are read and dropped both ways, the sockets stay
/// open, nothing is closed or reset), as a network that silently loses packets does; later connections pass.
/// <see cref="SilenceNextReplicationConnections"/> does the same to new replication connections from their startup on;
/// <see cref="SilenceExistingReplicationConnections"/> to the replication connections open now, while the client's other
/// connections through the proxy still pass (a network path that lost one long-lived connection's state).
/// <see cref="Retarget"/> sends new connections to another server. <see cref="HoldReplicationFromServer"/> and
/// <see cref="ReleaseReplicationFromServerAsync"/> keep back what the server sends on replication connections, then pass
/// it on in small pieces with pauses between them (a slow network: frames arrive cut anywhere). <see cref="Silence"/>
/// silences the open connections and every new one (accepted, never passed to the server), until <see cref="Restore"/>.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Link> _links = [];
    private readonly Task _accepting;
    private int _replicationConnectionsToSilence;
    private volatile bool _silent;

    private TcpProxy(IPEndPoint target)
    {
        _target = target;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public static TcpProxy Start(string host, int port) => new(new IPEndPoint(IPAddress.Parse(host), port));

    /// <summary>From now on, the connections open now carry nothing in either direction.</summary>
    public void SilenceExisting()
    {
        lock (_links)
        {
            foreach (var link in _links)
                link.Silenced = true;
        }
    }

    /// <summary>The whole network goes silent: the connections open now and every new one carry nothing either way (a new
    /// one is accepted, as the kernel completes a handshake, but never reaches the server), until <see cref="Restore"/>.</summary>
    public void Silence()
    {
        lock (_links)
        {
            _silent = true;
            foreach (var link in _links)
                link.Silenced = true;
        }
    }

    /// <summary>The network comes back: the silenced connections are closed (as a server that forgot them resets them),
    /// and new connections pass again.</summary>
    public void Restore()
    {
        lock (_links)
        {
            _silent = false;
            foreach (var link in _links.Where(l => l.Silenced).ToList())
            {
                link.Close();
                _links.Remove(link);
            }
        }
    }

    /// <summary>New connections go to <paramref name="port"/> on the same host from now on (a virtual address that
    /// follows the primary after a failover); the open ones stay where they are.</summary>
    public void Retarget(int port) => Volatile.Write(ref _target, new IPEndPoint(_target.Address, port));

    /// <summary>From now on, the replication connections open now (a startup message with replication=database) carry
    /// nothing in either direction; the other connections open now still pass. How many were silenced.</summary>
    public int SilenceExistingReplicationConnections()
    {
        lock (_links)
        {
            var silenced = 0;
            foreach (var link in _links.Where(l => l.IsReplication))
            {
                link.Silenced = true;
                silenced++;
            }
            return silenced;
        }
    }

    /// <summary>The next <paramref name="count"/> replication connections (a startup message with replication=database)
    /// are silenced at their startup message, which never reaches the server: the client waits for an answer.</summary>
    public void SilenceNextReplicationConnections(int count) => Volatile.Write(ref _replicationConnectionsToSilence, count);

    /// <summary>From now on, what the server sends on the replication connections open now is kept here, not passed on.</summary>
    public void HoldReplicationFromServer()
    {
        lock (_links)
        {
            foreach (var link in _links.Where(l => l.IsReplication))
                link.Held = new MemoryStream();
        }
    }

    /// <summary>Passes on what <see cref="HoldReplicationFromServer"/> kept, and everything after it, in pieces of
    /// <paramref name="pieceSize"/> bytes with <paramref name="pause"/> after each.</summary>
    public async Task ReleaseReplicationFromServerAsync(int pieceSize, TimeSpan pause)
    {
        Link[] held;
        lock (_links)
            held = _links.Where(l => l.Held is not null).ToArray();
        foreach (var link in held)
        {
            await link.ToClient.WaitAsync(_stop.Token);
            try
            {
                link.PieceSize = pieceSize;
                link.PiecePause = pause;
                var kept = link.Held!.ToArray();
                link.Held = null;
                await WriteToClientAsync(link, kept);
            }
            finally
            {
                link.ToClient.Release();
            }
        }
    }

    private async Task WriteToClientAsync(Link link, ReadOnlyMemory<byte> data)
    {
        var stream = link.ClientStream;
        if (link.PieceSize == 0)
        {
            await stream.WriteAsync(data, _stop.Token);
            return;
        }
        for (var offset = 0; offset < data.Length; offset += link.PieceSize)
        {
            await stream.WriteAsync(data.Slice(offset, Math.Min(link.PieceSize, data.Length - offset)), _stop.Token);
            await Task.Delay(link.PiecePause, _stop.Token);
        }
    }

    /// <summary>Accepts connections until the proxy is disposed. Like a server, it goes on after an error of one
    /// connection (accept fails with ECONNABORTED when a client resets a connection still in the listen queue), and
    /// connects each to the target on its own, so that a slow connect never holds up the next accept.</summary>
    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                    return; // the proxy is disposed
                continue;
            }
            _ = ConnectAsync(client);
        }
    }

    private async Task ConnectAsync(TcpClient client)
    {
        var server = new TcpClient { NoDelay = true };
        client.NoDelay = true;
        Link link;
        NetworkStream clientStream;
        NetworkStream? serverStream = null;
        try
        {
            if (!_silent)
            {
                await server.ConnectAsync(Volatile.Read(ref _target), _stop.Token);
                serverStream = server.GetStream();
            }
            clientStream = client.GetStream();
            link = new Link(client, server);
            lock (_links)
            {
                _stop.Token.ThrowIfCancellationRequested(); // DisposeAsync closes the links it finds under this lock
                if (serverStream is null && !_silent)
                    throw new InvalidOperationException("Accepted while the network was silent, restored since: closed, as Restore closes the others.");
                link.Silenced = _silent;
                _links.Add(link);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The server is down (or the client already gone, or the proxy disposed): the client sees its connection
            // closed, as with no proxy between.
            server.Dispose();
            client.Dispose();
            return;
        }
        _ = PumpAsync(link, clientStream, serverStream, fromClient: true);
        if (serverStream is not null)
            _ = PumpAsync(link, serverStream, clientStream, fromClient: false);
    }

    /// <summary>Copies <paramref name="from"/> to <paramref name="to"/> (none for a connection accepted while the network
    /// was silent), reading and dropping what comes while the link is silenced; an end of stream closes the link unless
    /// it is silenced (a silent network carries no FIN).</summary>
    private async Task PumpAsync(Link link, NetworkStream from, NetworkStream? to, bool fromClient)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                    break;
                if (fromClient && !link.StartupSeen)
                {
                    // The startup message comes first (after an SSLRequest's 8 bytes, when there is one).
                    link.IsReplication = buffer.AsSpan(0, read).IndexOf("replication\0database\0"u8) >= 0;
                    link.StartupSeen = read > 8;
                    if (link.IsReplication && Volatile.Read(ref _replicationConnectionsToSilence) > 0 && Interlocked.Decrement(ref _replicationConnectionsToSilence) >= 0)
                        link.Silenced = true;
                }
                if (link.Silenced || to is null)
                    continue;
                if (fromClient || !link.IsReplication)
                {
                    await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                    continue;
                }
                await link.ToClient.WaitAsync(_stop.Token);
                try
                {
                    if (link.Held is { } held)
                        held.Write(buffer, 0, read);
                    else
                        await WriteToClientAsync(link, buffer.AsMemory(0, read));
                }
                finally
                {
                    link.ToClient.Release();
                }
            }
            if (!link.Silenced)
                link.Close();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            if (!link.Silenced)
                link.Close();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        lock (_links)
        {
            foreach (var link in _links)
                link.Close();
        }
        _stop.Dispose();
    }

    private sealed class Link(TcpClient client, TcpClient server)
    {
        public volatile bool Silenced;

        public volatile bool IsReplication;

        public bool StartupSeen; // read and written by the client-to-server pump only

        /// <summary>Serializes what goes to the client on a replication connection (the pump, a release).</summary>
        public readonly SemaphoreSlim ToClient = new(1, 1);

        /// <summary>What the server sent while held (under <see cref="ToClient"/>).</summary>
        public MemoryStream? Held;

        public int PieceSize;

        public TimeSpan PiecePause;

        public NetworkStream ClientStream => client.GetStream();

        public void Close()
        {
            client.Dispose();
            server.Dispose();
        }
    }
}
