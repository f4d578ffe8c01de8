using System.Runtime.Versioning;
using DBSync.IntegrationTests.Infrastructure;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>
/// Spill files hold the rows of large transactions, so nobody but their owner may read them: each is created 0600 in a
/// directory of DBSync's own (<c>dbsync-&lt;user&gt;</c>, 0700) in the configured spill directory, and is deleted when its
/// transaction ends and when the run ends. The files are looked at while a real streamed transaction is spilled.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Security")]
public sealed class SpillFileTests(PostgresFixture fixture)
{
    private const string Insert = "INSERT INTO users (id, first_name, user_name, email) SELECT i, 'f', 'u' || i, 'e' || i FROM generate_series({0}, {1}) i";

    [Fact]
    [UnsupportedOSPlatform("windows")] // file modes
    public async Task TransactionSpilledWhileItRuns_FileIsOwnerOnly_InAPrivateDirectory_DeletedAtCommitAndWhenTheRunEnds()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var parent = Path.Combine(Path.GetTempPath(), $"dbsync-spill-{Guid.NewGuid():N}");
        var directory = Path.Combine(parent, "dbsync-" + Environment.UserName);
        try
        {
            await using var run = await StreamRun.StartAsync(LargeTransactionTests.SmallDecodingMemory(db.ConnectionString), configure: o =>
            {
                o.StreamingMemoryLimit = 0; // every streamed transaction goes to a file
                o.StreamingSpillDirectory = parent;
            });
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));

            await using var writer = await db.OpenAsync();
            await using (var transaction = await writer.BeginTransactionAsync())
            {
                await ExecuteAsync(writer, string.Format(Insert, 1, 20_000));
                var file = await SpillFileAsync(directory, run);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                await transaction.CommitAsync();
            }
            await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the spilled transaction's commit", TimeSpan.FromSeconds(60));
            Assert.Equal(20_000, run.Recorder.Transactions[0].ChangeCount);
            Assert.Empty(Directory.GetFiles(directory));

            // A transaction still running when the run stops: its file goes with the run.
            await using (var transaction = await writer.BeginTransactionAsync())
            {
                await ExecuteAsync(writer, string.Format(Insert, 20_001, 40_000));
                await SpillFileAsync(directory, run);
                await run.StopAsync();
                Assert.Empty(Directory.GetFiles(directory));
                await transaction.RollbackAsync();
            }
        }
        finally
        {
            if (Directory.Exists(parent))
                Directory.Delete(parent, recursive: true);
        }
    }

    [Fact]
    [UnsupportedOSPlatform("windows")] // file modes
    public async Task SpillDirectoryWritableByOthers_RunFailsAtItsStart_NamingTheDirectoryAndTheFix()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var parent = Path.Combine(Path.GetTempPath(), $"dbsync-spill-{Guid.NewGuid():N}");
        var directory = Path.Combine(parent, "dbsync-" + Environment.UserName);
        Directory.CreateDirectory(directory);
        File.SetUnixFileMode(directory, (UnixFileMode)0b111_111_111); // 0777, as someone else could have left it
        try
        {
            var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() =>
                StreamRun.StartAsync(db.ConnectionString, configure: o => o.StreamingSpillDirectory = parent));

            Assert.Contains($"The spill directory {directory} can be written by other users (mode 777)", error.Message, StringComparison.Ordinal);
            Assert.Contains($"chmod 700 {directory}", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(parent, recursive: true);
        }
    }

    /// <summary>The one spill file in <paramref name="directory"/>, once the server has streamed the open transaction.</summary>
    private static async Task<string> SpillFileAsync(string directory, StreamRun run)
    {
        for (var attempt = 0; attempt < 1500; attempt++)
        {
            if (Directory.GetFiles(directory) is [var file])
                return file;
            Assert.False(run.Run.IsCompleted, "The run ended.");
            await Task.Delay(20);
        }
        Assert.Fail($"No spill file appeared in {directory} within 30 s (files: {string.Join(", ", Directory.GetFiles(directory))}).");
        return "";
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
