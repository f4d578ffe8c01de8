using DBSync.Snapshots;

namespace DBSync.Runtime.Tests.Snapshots;

/// <summary>How a table's key range is split for parallel reads, from a sample of its keys.</summary>
public sealed class SegmentSplitTests
{
    [Theory]
    [InlineData(1, 1_000_000, 8192, 1)]   // parallel reads off
    [InlineData(2, 1_000_000, 8192, 8)]   // four segments per reader
    [InlineData(4, 20_000, 8192, 2)]      // no more segments than chunks
    [InlineData(4, 10_000, 8192, 1)]      // fits in two chunks: one range
    [InlineData(2, -1, 8192, 8)]          // never analyzed: the sample decides
    public void Count_IsFourPerReader_AtMostOnePerChunk(int parallelism, long estimate, int chunkSize, int expected)
        => Assert.Equal(expected, SegmentSplit.Count(parallelism, estimate, chunkSize));

    [Fact]
    public void Split_CutsTheSampleIntoEqualParts_TheLastEndingAtTheMaximumKey()
    {
        string[][] sample = [.. Enumerable.Range(1, 100).Select(i => new[] { "a", i.ToString("D3", System.Globalization.CultureInfo.InvariantCulture) })];
        var segments = SegmentSplit.Split(sample, ["a", "500"], 4);
        Assert.Equal([["a", "026"], ["a", "051"], ["a", "076"], ["a", "500"]], segments.Select(s => s.Upper.ToArray()));
        Assert.All(segments, s => Assert.Equal((null, false), (s.LastKey, s.Done)));
    }

    [Fact]
    public void Split_OfASampleWithFewKeys_MakesNoEmptySegment_AndNoneEndingAtTheMaximumKeyButTheLast()
    {
        var segments = SegmentSplit.Split([["1"], ["2"], ["9"]], ["9"], 8);
        Assert.Equal([["1"], ["2"], ["9"]], segments.Select(s => s.Upper.ToArray()));
        Assert.Equal([["9"]], SegmentSplit.Split([], ["9"], 8).Select(s => s.Upper.ToArray()));
    }
}
