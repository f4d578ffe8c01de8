using System.Globalization;

namespace DBSync.Bench;

/// <summary>How the benchmarks summarize the figures of several rounds.</summary>
internal static class Stats
{
    /// <summary>The middle value (the mean of the two middle ones for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
            throw new InvalidOperationException("No figures to take the median of: no round completed.");
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>Each round's figure, in round order, as the reports list them.</summary>
    public static string Runs(IEnumerable<double> values, string format)
        => string.Join(", ", values.Select(v => v.ToString(format, CultureInfo.InvariantCulture)));
}
