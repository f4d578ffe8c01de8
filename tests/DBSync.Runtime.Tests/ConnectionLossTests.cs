using System.Net.Sockets;
using DBSync.Internal;
using Npgsql;

namespace DBSync.Runtime.Tests;

/// <summary>Which errors the run takes for a lost connection (it reconnects) rather than a failure (it stops), for a
/// connection string that lists several hosts: Npgsql's errors when no listed server is a primary, or none answers.</summary>
public sealed class ConnectionLossTests
{
    [Fact]
    public void NoListedServerIsAPrimaryNow_IsALostConnection()
        => Assert.True(ConnectionLoss.Is(new NpgsqlException("No suitable host was found.")));

    [Fact]
    public void EveryListedServerUnreachable_IsALostConnection()
    {
        var every = new AggregateException(new SocketException((int)SocketError.ConnectionRefused), new NpgsqlException("x", new TimeoutException()));
        Assert.True(ConnectionLoss.Is(new NpgsqlException("Unable to connect to a suitable host. Check inner exception for more details.", every)));
    }

    [Fact]
    public void OneListedServerFailingOtherwise_IsNotALostConnection()
    {
        var mixed = new AggregateException(new SocketException((int)SocketError.ConnectionRefused), new InvalidOperationException("a bug"));
        Assert.False(ConnectionLoss.Is(new NpgsqlException("Unable to connect to a suitable host. Check inner exception for more details.", mixed)));
        Assert.False(ConnectionLoss.Is(new AggregateException()));
        Assert.False(ConnectionLoss.Is(new NpgsqlException("Some other error.")));
    }
}
