using System.Text;
using DBSync.Snapshots;

namespace DBSync.Runtime.Tests;

public sealed class SnapshotPrimitivesTests
{
    [Theory]
    [InlineData("100:105:100,103", 99u, true)]   // before xmin: finished for the snapshot
    [InlineData("100:105:100,103", 100u, false)] // in progress
    [InlineData("100:105:100,103", 101u, true)]  // committed between xmin and xmax, not in progress
    [InlineData("100:105:100,103", 103u, false)]
    [InlineData("100:105:100,103", 105u, false)] // started after the snapshot
    [InlineData("100:105:", 104u, true)]
    public void Visibility_FollowsXminXmaxAndInProgressList(string snapshot, uint xid, bool sees)
        => Assert.Equal(sees, SnapshotVisibility.Parse(snapshot).Sees(xid));

    [Fact]
    public void Visibility_ComparesLow32BitsAcrossEpochsAndWraparound()
    {
        // Epoch 1, xids just past the 32-bit wrap: xmin = 2^32 + 5 (low bits 5), xmax = 2^32 + 10.
        var visibility = SnapshotVisibility.Parse("4294967301:4294967306:4294967303");
        Assert.True(visibility.Sees(4294967290u));  // a 32-bit xid from just before the wrap precedes xmin
        Assert.True(visibility.Sees(6u));
        Assert.False(visibility.Sees(7u));
        Assert.False(visibility.Sees(10u));
    }

    [Fact]
    public void Watermark_RoundTripsAndRejectsForeignContent()
    {
        var low = new Watermark(WatermarkKind.Low, "run7", 42);
        Assert.True(Watermark.TryParse(Encoding.UTF8.GetBytes(low.Content), out var parsed));
        Assert.Equal(low, parsed);
        Assert.Equal("dbsync.wm.orders", Watermark.PrefixFor("orders"));
        foreach (var foreign in new[] { "", "hello", "X:run:1", "L::1", "H:run:-1", "L:run:1:extra" })
            Assert.False(Watermark.TryParse(Encoding.UTF8.GetBytes(foreign), out _), foreign);
    }
}
