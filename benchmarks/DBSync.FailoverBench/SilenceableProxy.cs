using System.Net;
using System.Net.Sockets;

namespace DBSync.FailoverBench;

/// <summary>
/// One instance's network to the server: a loopback TCP relay. <see cref="Silence"/> makes it a network that drops
/// everything without a word: the open connections stay open, bytes sent either way are read and thrown away (so the
/// server's writes never block), nothing is closed or reset, and new connections are accepted but never reach the
/// server. <see cref="Restore"/> brings the network back: the silenced connections are closed, as a server that has
/// forgotten them resets them, and new connections pass again.
/// </summary>
internal sealed class SilenceableProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _server;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Relay> _relays = [];
    private readonly Task _accepting;
    private volatile bool _silent;

    public SilenceableProxy(IPEndPoint server)
    {
        _server = server;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public void Silence()
    {
        lock (_relays)
        {
            _silent = true;
            foreach (var relay in _relays)
                relay.Silent = true;
        }
    }

    public void Restore()
    {
        lock (_relays)
        {
            _silent = false;
            foreach (var relay in _relays.Where(r => r.Silent).ToList())
            {
                relay.Close();
                _relays.Remove(relay);
            }
        }
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                client.NoDelay = true;
                Relay relay;
                lock (_relays)
                {
                    relay = new Relay(client) { Silent = _silent };
                    _relays.Add(relay);
                }
                if (!relay.Silent)
                {
                    var server = new TcpClient { NoDelay = true };
                    await server.ConnectAsync(_server, _stop.Token);
                    relay.Server = server;
                    _ = PumpAsync(relay, server.GetStream(), client.GetStream());
                }
                _ = PumpAsync(relay, client.GetStream(), relay.Server?.GetStream());
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Disposed.
        }
    }

    /// <summary>Copies <paramref name="from"/> to <paramref name="to"/> while the relay is not silent, and throws the bytes
    /// away while it is; an end of stream closes both sides unless the relay is silent (a silent network carries no FIN).</summary>
    private async Task PumpAsync(Relay relay, NetworkStream from, NetworkStream? to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                if (!relay.Silent && to is not null)
                    await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        if (!relay.Silent)
            relay.Close();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        lock (_relays)
        {
            foreach (var relay in _relays)
                relay.Close();
        }
        _stop.Dispose();
    }

    private sealed class Relay(TcpClient client)
    {
        public volatile bool Silent;

        public TcpClient? Server { get; set; }

        public void Close()
        {
            client.Dispose();
            Server?.Dispose();
        }
    }
}
