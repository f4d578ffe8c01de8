namespace DBSync.Generators;

/// <summary>Names of the incremental steps, shared with the cacheability tests.</summary>
internal static class TrackingNames
{
    public const string Parse = nameof(Parse);
    public const string Entities = nameof(Entities);
    public const string Diagnostics = nameof(Diagnostics);
}
