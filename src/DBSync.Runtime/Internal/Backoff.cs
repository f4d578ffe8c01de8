namespace DBSync.Internal;

/// <summary>Capped exponential backoff with +/-20% jitter.</summary>
internal static class Backoff
{
    /// <summary>The wait before retry <paramref name="attempt"/> (1 for the first): <paramref name="first"/> doubled per
    /// attempt, at most <paramref name="max"/>.</summary>
    public static TimeSpan Delay(TimeSpan first, TimeSpan max, int attempt)
    {
        var ticks = first.Ticks * Math.Pow(2, Math.Min(attempt - 1, 20));
        ticks = Math.Min(ticks, max.Ticks);
        return TimeSpan.FromTicks((long)(ticks * (0.8 + (0.4 * Random.Shared.NextDouble()))));
    }
}
