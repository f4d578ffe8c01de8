using System.Text.RegularExpressions;
using DBSync.IntegrationTests.Infrastructure;

namespace DBSync.IntegrationTests;

/// <summary>
/// The sample published with Native AOT (<c>PublishAot</c> is set in its project): the publish reports no trimming or
/// AOT warning, and the native binary streams and snapshots the sample's tables, the richer types of its dish table
/// and its partitioned reservation table included, against the test server.
/// </summary>
[Collection(PostgresCollection.Name)] // not beside other tests: native compilation takes both cores for a while
[Trait("Category", "Aot")]
public sealed partial class NativeAotTests(PostgresFixture fixture)
{
    [Fact]
    public async Task Sample_PublishedWithNativeAot_HasNoWarnings_AndRuns()
    {
        Assert.True(ChildProcess.FindOnPath("clang") is not null,
            "Native AOT links with clang, which is not on PATH. Install it (apt-get install clang; ./build.sh test does this).");
        var root = ChildProcess.RepositoryRoot();
        var artifacts = Directory.CreateTempSubdirectory("dbsync-aot-");
        try
        {
            // Its own artifacts path: nothing of the tests' own build is rebuilt or overwritten; no build server outlives it.
            var publish = await ChildProcess.RunAsync("dotnet", ["publish", Path.Combine(root, "samples", "DBSync.Sample", "DBSync.Sample.csproj"), "-c", "Release",
                "-r", "linux-x64", "--artifacts-path", artifacts.FullName, "--disable-build-servers"], TimeSpan.FromMinutes(10));
            Assert.True(publish.ExitCode == 0, $"dotnet publish failed ({publish.ExitCode}):\n{publish.Output}");
            var warnings = WarningLine().Matches(publish.Output).Select(m => m.Value).Distinct().ToList();
            Assert.True(warnings.Count == 0, $"Native AOT publish reported {warnings.Count} warning(s):\n{string.Join("\n", warnings)}");
            Assert.Contains("Generating native code", publish.Output, StringComparison.Ordinal);

            var binary = Path.Combine(artifacts.FullName, "publish", "DBSync.Sample", "release_linux-x64", "DBSync.Sample");
            Assert.True(File.Exists(binary), $"{binary} is missing after the publish:\n{publish.Output}");
            var run = await ChildProcess.RunAsync(binary, [], TimeSpan.FromMinutes(3), ChildProcess.ServerEnvironment(fixture.Server));
            Assert.True(run.ExitCode == 0, $"The native sample failed ({run.ExitCode}):\n{run.Output}");
            Assert.Contains("Received all 18 changes and the snapshot", run.Output, StringComparison.Ordinal);
            // The partitioned table: a row moved to another month's partition arrives as a Delete and an Insert of
            // reservation, and the snapshot reads it from its new partition.
            Assert.Contains("Delete   reservation id=1 day=2026-10-30 (key only)", run.Output, StringComparison.Ordinal);
            Assert.Contains("Insert   reservation id=1 day=2026-12-24 restaurant_id=r-tofu guests=2 note=moved to Christmas Eve", run.Output, StringComparison.Ordinal);
            Assert.Contains("Read     reservation id=1 day=2026-12-24 restaurant_id=r-tofu guests=2 note=moved to Christmas Eve", run.Output, StringComparison.Ordinal);
            Assert.Contains("Read     reservation id=2 day=2026-11-14 restaurant_id=r-pizza guests=5", run.Output, StringComparison.Ordinal);
            Assert.Contains("Read     dish       id=1 name=Soondubu jjigae 🌶 spice=ExtraHot price=11.50 prep_time=00:30:00 options=[Mild, ExtraHot, ] stock=2x2", run.Output, StringComparison.Ordinal);
            Assert.Contains("available_until=infinity", run.Output, StringComparison.Ordinal);
        }
        finally
        {
            artifacts.Delete(recursive: true);
        }
    }

    /// <summary>MSBuild warnings (<c>warning IL2026: ...</c>, <c>warning CS8602: ...</c>) and the ILC summary warnings.</summary>
    [GeneratedRegex(@"^.*\bwarning [A-Z]+[0-9]+\b.*$", RegexOptions.Multiline)]
    private static partial Regex WarningLine();
}
