using System.Text.RegularExpressions;
using DBSync.IntegrationTests.Infrastructure;

namespace DBSync.IntegrationTests;

/// <summary>
/// samples/DBSync.HostedSample, built with the tests and run as a process of its own against the test server (on the
/// suite's replication connection, through its configuration): it streams the seed tables into its handlers, one scope
/// per transaction, snapshots them, stops its host by itself, and exits with 0. As a role DBSync cannot stream with, it
/// logs the setup error once, stops, and exits with 1, never with an unhandled exception's abort.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Ecosystem")]
public sealed class HostedSampleTests(PostgresFixture fixture)
{
    [Fact]
    public async Task HostedSample_StreamsTheSeedTables_AndEndsByItself()
    {
        var sample = ChildProcess.OutputOf(Path.Combine("samples", "DBSync.HostedSample"), "DBSync.HostedSample.dll");
        Assert.True(File.Exists(sample), $"{sample} is missing; build samples/DBSync.HostedSample.");
        var environment = ChildProcess.ServerEnvironment(fixture.Server);
        environment["DBSync__ReplicationTransport"] = TestTransport.Current.ToString();

        var (exitCode, output) = await ChildProcess.RunAsync("dotnet", [sample], TimeSpan.FromMinutes(2), environment);

        Assert.True(exitCode == 0, $"The hosted sample failed ({exitCode}):\n{output}");
        Assert.Contains("Handled all 11 changes and 6 snapshot rows; stopping the host", output, StringComparison.Ordinal);
        Assert.Contains("-- commit xid=", output, StringComparison.Ordinal);
        Assert.Matches(@"Insert +visit +user_id=1 restaurant_id=r-tofu amount_spent=23\.50 \(xid \d+, scope #\d+\)", output);
        Assert.Matches(@"Read +restaurant id=r-tofu name=Tofu House rating=5 tags=\[korean, spicy, cozy\]", output);
        // The migration the writer applies between the inserts and the updates (CaptureSchemaChanges, AddSchemaChangeHandler):
        // its schema changes come between those row changes.
        var lines = output.Split('\n');
        var lastInsert = Array.FindIndex(lines, l => l.Contains("Insert   visit      user_id=1 restaurant_id=r-pizza", StringComparison.Ordinal));
        var columnAdded = Array.FindIndex(lines, l => Regex.IsMatch(l, @"schema: ColumnAdded public\.restaurant\.opened_on: - -> date \(xid \d+, scope #\d+\)"));
        var defaultSet = Array.FindIndex(lines, l => l.Contains("schema: ColumnDefaultChanged public.restaurant.opened_on: - -> CURRENT_DATE", StringComparison.Ordinal));
        var firstUpdate = Array.FindIndex(lines, l => l.Contains("Update   users", StringComparison.Ordinal));
        Assert.True(lastInsert >= 0 && columnAdded > lastInsert && defaultSet > columnAdded && firstUpdate > defaultSet,
            $"The migration's schema changes are not between the inserts and the updates (last insert {lastInsert}, column added {columnAdded}, default set {defaultSet}, first update {firstUpdate}):\n{output}");
        Assert.Contains("Stopped streaming slot \"dbsync_hosted_sample\"", output, StringComparison.Ordinal);
        Assert.Contains("Stopped; the slot's confirmed position is", output, StringComparison.Ordinal);
    }

    /// <summary>The command behind <c>./build.sh hosted-sample-pair</c>: two replicas of the sample, each a process of its
    /// own on one slot; one streams, the other stands by naming it as the holder; the active one is killed with SIGKILL,
    /// the other takes over and delivers what is written after the kill, then stops on SIGTERM; the command ends by
    /// itself with 0.</summary>
    [Fact]
    public async Task HostedSamplePair_OneStandsBy_AndTakesOverWhenTheActiveOneIsKilled()
    {
        var sample = ChildProcess.OutputOf(Path.Combine("samples", "DBSync.HostedSample"), "DBSync.HostedSample.dll");
        var environment = ChildProcess.ServerEnvironment(fixture.Server);
        environment["DBSync__ReplicationTransport"] = TestTransport.Current.ToString(); // the replicas inherit it

        var (exitCode, output) = await ChildProcess.RunAsync("dotnet", [sample, "--pair"], TimeSpan.FromMinutes(2), environment);

        Assert.True(exitCode == 0, $"The hosted sample pair failed ({exitCode}):\n{output}");
        var lines = output.Split('\n');
        int Line(string pattern) => Array.FindIndex(lines, l => Regex.IsMatch(l, pattern));
        var aStreams = Line(@"^\[a\] .*Streaming slot ""dbsync_hosted_pair""");
        var bStandsBy = Line(@"^\[b\] .*streams to another consumer \(server process \d+, application name 'hosted-sample-a'.*standing by");
        var killed = Line(@"^== killing replica a \(process \d+\) with SIGKILL; \d+ rows written so far");
        var tookOver = Line(@"^\[b\] .*Took over slot ""dbsync_hosted_pair"" after standing by");
        Assert.True(aStreams >= 0 && bStandsBy > aStreams && killed > bStandsBy && tookOver > killed,
            $"Not in order (a streams {aStreams}, b stands by {bStandsBy}, a killed {killed}, b took over {tookOver}):\n{output}");
        // b stood by quietly (one line), and neither delivered anything before a streamed.
        Assert.Single(lines, l => l.StartsWith("[b] ", StringComparison.Ordinal) && l.Contains("streams to another consumer", StringComparison.Ordinal));
        Assert.DoesNotContain(lines[..killed], l => l.StartsWith("[b] ", StringComparison.Ordinal) && l.Contains("restaurant id=pair-", StringComparison.Ordinal));
        // Delivery goes on in b: the first row written after the kill.
        var written = int.Parse(Regex.Match(lines[killed], @"; (\d+) rows written").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains(lines[tookOver..], l => l.StartsWith("[b] ", StringComparison.Ordinal) && l.Contains($"Insert   restaurant id=pair-{written + 1} ", StringComparison.Ordinal));
        Assert.DoesNotContain(lines[killed..], l => l.StartsWith("[a] ", StringComparison.Ordinal) && l.Contains("restaurant id=pair-", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("[b] ", StringComparison.Ordinal) && l.Contains("Stopped streaming slot \"dbsync_hosted_pair\"", StringComparison.Ordinal));
        Assert.Contains("== replica b exited with 0", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostedSample_AsARoleWithoutReplication_LogsTheSetupErrorOnce_AndExitsWithAPlainFailureCode()
    {
        var sample = ChildProcess.OutputOf(Path.Combine("samples", "DBSync.HostedSample"), "DBSync.HostedSample.dll");
        // The sample creates its database and schema as this role, then DBSync's setup refuses it.
        var role = $"hosted_norepl_{Environment.ProcessId}";
        await fixture.Server.ExecuteAsync($"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN CREATEDB NOREPLICATION PASSWORD 'hosted-pw-1'");
        try
        {
            var environment = ChildProcess.ServerEnvironment(fixture.Server);
            environment["POSTGRES_USER"] = role;
            environment["POSTGRES_PASSWORD"] = "hosted-pw-1";
            environment["DBSync__ReplicationTransport"] = TestTransport.Current.ToString();

            var (exitCode, output) = await ChildProcess.RunAsync("dotnet", [sample], TimeSpan.FromMinutes(2), environment);

            // 134 is the abort of an unhandled exception; a setup error is an ordinary failure.
            Assert.True(exitCode == 1, $"The hosted sample exited with {exitCode}, not 1:\n{output}");
            Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
            // The error, with its stack trace, exactly once.
            Assert.Single(Regex.Matches(output, $"Role \"{role}\" may not use logical replication"));
            Assert.Single(Regex.Matches(output, @"DBSync\.DBSyncConfigurationException"));
            Assert.Contains("at DBSync.Replication.ReplicationSetup.PrepareAsync", output, StringComparison.Ordinal);
            Assert.Contains("stopping the application", output, StringComparison.Ordinal);
            Assert.Contains("Stopped; the slot's confirmed position is", output, StringComparison.Ordinal);
        }
        finally
        {
            await fixture.Server.ExecuteAsync($"DROP ROLE IF EXISTS {role}");
        }
    }
}
