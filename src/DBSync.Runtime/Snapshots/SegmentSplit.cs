using DBSync.Checkpoints;

namespace DBSync.Snapshots;

/// <summary>
/// Splits a table's key range into segments for parallel reads (<see cref="DBSyncOptions.SnapshotParallelism"/>), from
/// a sample of its keys: each reader pages through segments of its own, so readers never wait on each other's keys.
/// Key ranges rather than <c>ctid</c> ranges: an update can move a row to another page (and so out of a page range not
/// read yet into one already read) outside any window, while a row's key only changes through a change the stream sees
/// in the windows; and TID range scans need PostgreSQL 14.
/// </summary>
internal static class SegmentSplit
{
    /// <summary>Pages sampled (<c>TABLESAMPLE SYSTEM</c>): a few thousand keys on typical rows, read in milliseconds.</summary>
    public const int SamplePages = 256;

    /// <summary>Segments per reader: more than one, so that a reader whose segments went fast takes over the rest.</summary>
    public const int SegmentsPerReader = 4;

    /// <summary>How many segments a table of about <paramref name="estimate"/> rows (-1: not known) is split into: one when
    /// parallel reads are off or the table fits in two chunks, else at most one per chunk.</summary>
    public static int Count(int parallelism, long estimate, int chunkSize)
    {
        if (parallelism <= 1)
            return 1;
        var wanted = parallelism * SegmentsPerReader;
        if (estimate < 0)
            return wanted;
        return estimate < 2L * chunkSize ? 1 : (int)Math.Min(wanted, estimate / chunkSize);
    }

    /// <summary>The segments of the range up to <paramref name="maxKey"/>: <paramref name="count"/> about equal parts of
    /// <paramref name="sample"/> (keys in key order, none above the maximum), the last ending at the maximum key.</summary>
    public static IReadOnlyList<SegmentState> Split(IReadOnlyList<string[]> sample, IReadOnlyList<string> maxKey, int count)
    {
        var segments = new List<SegmentState>(count);
        IReadOnlyList<string>? previous = null;
        for (var i = 1; i < count && sample.Count > 0; i++)
        {
            var bound = sample[(int)((long)i * sample.Count / count)];
            // Equal bounds would make an empty segment; the maximum key ends the last one anyway.
            if ((previous is not null && previous.SequenceEqual(bound)) || bound.SequenceEqual(maxKey))
                continue;
            segments.Add(new SegmentState(bound, null, false));
            previous = bound;
        }
        segments.Add(new SegmentState(maxKey, null, false));
        return segments;
    }
}
