using DBSync.Replication.Transport;
using Npgsql;

namespace DBSync.Runtime.Tests.Transport;

public sealed class ReplicationHostTests
{
    [Fact]
    public void PinnedConnectionString_NamesTheOneServer_WithoutTheSettingsThatChoose_SoTheDirectConnectionServesIt()
    {
        const string listed = "Host=db1:5432,db2:5433;Target Session Attributes=primary;Host Recheck Seconds=1;Load Balance Hosts=true;Username=app;Database=shop;Timeout=7";
        var builder = new NpgsqlConnectionStringBuilder(listed);
        Assert.True(ReplicationHost.ListsSeveral(builder));
        Assert.Null(DirectSettings.TryCreate(listed, out var unsupported));
        Assert.NotNull(unsupported);

        var pinned = new NpgsqlConnectionStringBuilder(ReplicationHost.PinnedTo(builder, "db2", 5433));
        Assert.False(ReplicationHost.ListsSeveral(pinned));
        Assert.Equal(("db2", 5433), (pinned.Host, pinned.Port));
        Assert.Null(pinned.TargetSessionAttributes);
        Assert.False(pinned.LoadBalanceHosts);
        Assert.Equal(("app", "shop", 7), (pinned.Username, pinned.Database, pinned.Timeout));
        Assert.NotNull(DirectSettings.TryCreate(pinned.ConnectionString, out unsupported));
        Assert.Null(unsupported);
    }
}
