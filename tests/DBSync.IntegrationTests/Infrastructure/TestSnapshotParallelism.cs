namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>
/// How many chunks the suite's snapshots read at once: <c>DBSYNC_TEST_SNAPSHOT_PARALLELISM</c>, default 2, so that the
/// snapshot tests run with parallel reads on whatever the option's default is (tests of the sequential order set 1).
/// The crash consumer, a process of its own, reads the same variable.
/// </summary>
public static class TestSnapshotParallelism
{
    public const string Variable = "DBSYNC_TEST_SNAPSHOT_PARALLELISM";

    public static int Current { get; } =
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } value ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : 2;
}
