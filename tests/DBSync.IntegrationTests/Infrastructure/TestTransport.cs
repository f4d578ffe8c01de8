namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>
/// The replication transport the suite runs on: <c>DBSYNC_TEST_TRANSPORT</c> (Auto, Direct or Npgsql; default Auto,
/// which is DBSync's own connection on the test servers). The test command runs the suite once as it is and once more
/// on Npgsql's connection, so both transports pass every test.
/// </summary>
public static class TestTransport
{
    public const string Variable = "DBSYNC_TEST_TRANSPORT";

    public static ReplicationTransport Current { get; } =
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } value
            ? Enum.Parse<ReplicationTransport>(value, ignoreCase: true)
            : ReplicationTransport.Auto;
}
