using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

namespace DBSync.IntegrationTests;

/// <summary>
/// The stream and the snapshots against the PostgreSQL versions other than the main suite's 15: 13 (pgoutput protocol 1,
/// text tuples, no streaming of transactions in progress, no logical messages and so no snapshots) and 14, 16, 17, 18
/// (protocol 2, binary tuples, large transactions streamed while they run). One server per version for the class, its binaries fetched on first use.
/// </summary>
[Trait("Category", "Versions")]
public sealed class VersionsTests(ServerVersionsFixture fixture) : IClassFixture<ServerVersionsFixture>
{
    private const string Seed = """
        INSERT INTO users (first_name, user_name, email, date_of_birth, address, interests)
          SELECT 'u' || g, 'user' || g, 'u' || g || '@x', DATE '1980-02-29' + g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'street ' || g END,
                 CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY['i' || g, NULL, '', 'with "quotes", commas'] END
          FROM generate_series(1, 80) g;
        INSERT INTO restaurant (id, name, description, rating, tags)
          SELECT 'r-' || lpad(g::text, 3, '0'), 'R ' || g || ' é𝄞', NULLIF('d' || g, 'd7'), NULLIF(g % 6, 0), ARRAY['t' || g] FROM generate_series(1, 40) g;
        INSERT INTO visit SELECT u, 'r-' || lpad(((u * 7 + k) % 40 + 1)::text, 3, '0'), (u * k) % 1000 / 100.0 - 3, NULLIF(k % 3, 0)
          FROM generate_series(1, 80) u, generate_series(1, 3) k ON CONFLICT DO NOTHING;
        """;

    /// <summary>
    /// Every seed table and column type through the protocol the runtime picks for the server (protocol 1 with text
    /// tuples before 14, protocol 2 with binary tuples from 14 on): the client starts on empty tables, then the seed rows
    /// and two random writers' inserts, updates (of keys too) and deletes stream into a replica that must equal the source.
    /// </summary>
    [Theory]
    [InlineData(13)]
    [InlineData(14)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(18)]
    public async Task SeedRowsAndWriters_Streamed_ReplicaEqualsSource_OverTheServersProtocol(int version)
    {
        var server = await fixture.ServerAsync(version);
        Assert.Equal(version, server.MajorVersion);
        await using var db = await TestDatabase.CreateAsync(server);
        var replica = new Replica();
        var log = new LogCapture();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, _) => replica.Register(client), configure: o => o.LoggerFactory = log);

        await db.ExecuteAsync(Seed);
        using var stopWriters = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var operations = (await Task.WhenAll(Enumerable.Range(0, 2).Select(w => SnapshotTests.WriteRandomlyAsync(db.ConnectionString, version * 10 + w, stopWriters.Token)))).Sum();
        Assert.True(operations > 20, $"the writers ran only {operations} statements");

        await SnapshotTests.WaitForStreamToCatchUpAsync(db, replica, run);
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
        var (protocol, tuples) = version >= 14 ? (2, "binary") : (1, "text");
        var started = Assert.Single(log.Entries, e => e.Id.Id == 2001).Text;
        Assert.Contains($"(pgoutput protocol {protocol}, {tuples} tuples)", started, StringComparison.Ordinal);
        await run.StopAsync();
    }

    /// <summary>On 13, where no watermark can reach the stream, a snapshot is refused with a clear error instead of waiting
    /// forever: the initial snapshot before the slot is created, a requested one as the table's failure (the stream goes on).</summary>
    [Fact]
    public async Task Snapshots_On13_AreRefusedWithAClearError_TheStreamGoesOn()
    {
        var server = await fixture.ServerAsync(13);
        await using var db = await TestDatabase.CreateAsync(server);
        var initial = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => StreamRun.StartAsync(db.ConnectionString, configure: o => o.InitialSnapshot = true));
        Assert.Contains("Snapshots need PostgreSQL 14 or later (the server runs 13)", initial.Message, StringComparison.Ordinal);
        Assert.Equal(0, await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbsync_test'"));

        await using var run = await StreamRun.StartAsync(db.ConnectionString);
        var requested = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("Snapshots need PostgreSQL 14 or later", requested.Message, StringComparison.Ordinal);
        Assert.Contains(run.Recorder.Progress, p => p is SnapshotTableFailed);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-1', 'one')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "r-1"), "the insert after the refused snapshot");
        await run.StopAsync();
    }

    /// <summary>
    /// The initial snapshot (DBLog watermarks) of the seed tables while two writers change them; the replica must equal the
    /// source. Not on 13: the watermarks are logical messages, which pgoutput sends from 14 on (docs/limits.md).
    /// </summary>
    [Theory]
    [InlineData(14)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(18)]
    public async Task InitialSnapshotWhileWritersChangeEveryTable_ReplicaEqualsSource(int version)
    {
        var server = await fixture.ServerAsync(version);
        await using var db = await TestDatabase.CreateAsync(server);
        await db.ExecuteAsync(Seed);

        using var stopWriters = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(w => SnapshotTests.WriteRandomlyAsync(db.ConnectionString, version * 10 + w, stopWriters.Token)).ToArray();
        var replica = new Replica();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            replica.Register(client);
            StreamRun.RegisterSeedTables(client, recorder);
        }, configure: o =>
        {
            o.InitialSnapshot = true;
            o.SnapshotChunkSize = 7;
            o.SnapshotBusyShare = 1; // full speed: the writers count as a busy server
        });
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the initial snapshot", TimeSpan.FromSeconds(120));
        await stopWriters.CancelAsync();
        await Task.WhenAll(writers);
        var beforeTheEnd = run.Recorder.All.TakeWhile(e => e is not SnapshotsCompleted).ToList();
        Assert.Contains(beforeTheEnd, e => e is Change<User> { Kind: not ChangeKind.Read } or Change<Restaurant> { Kind: not ChangeKind.Read } or Change<Visit> { Kind: not ChangeKind.Read });
        Assert.Contains(beforeTheEnd, e => e is Change<User> { Kind: ChangeKind.Read });

        await SnapshotTests.WaitForStreamToCatchUpAsync(db, replica, run);
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
        await run.StopAsync();
    }

    /// <summary>
    /// A transaction far over logical_decoding_work_mem (64 kB, its minimum): from 14 on the server streams it while it
    /// runs (pg_stat_replication_slots counts it before the commit), on 13 it spills it and sends it at its commit. Either
    /// way it arrives whole after a small transaction that committed while it ran, and one rolled back never arrives.
    /// </summary>
    [Theory]
    [InlineData(13)]
    [InlineData(14)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(18)]
    public async Task LargeTransaction_DeliveredWholeAtItsCommit_AfterASmallerOneThatCommittedFirst_StreamedWhileItRunsFrom14(int version)
    {
        var server = await fixture.ServerAsync(version);
        await using var db = await TestDatabase.CreateAsync(server);
        await using var run = await StreamRun.StartAsync(LargeTransactionTests.SmallDecodingMemory(db.ConnectionString), configure: o => o.StreamingMemoryLimit = 256 * 1024);
        const string Insert = "INSERT INTO users (id, first_name, user_name, email) SELECT i, 'f', 'u' || i, 'e' || i FROM generate_series({0}, {1}) i";
        var streams = version >= 14;

        await using var big = await db.OpenAsync();
        await using (var tx = await big.BeginTransactionAsync())
        {
            await using (var command = new Npgsql.NpgsqlCommand(string.Format(Insert, 1, 20000), big))
                await command.ExecuteNonQueryAsync();
            if (streams)
                await LargeTransactionTests.WaitStreamedAsync(db, 1);

            await db.ExecuteAsync("INSERT INTO users (id, first_name, user_name, email) VALUES (50000, 'small', 'small', 'small')");
            await run.WaitUntilAsync(r => r.Of<User>().Any(c => c.New!.Id == 50000), "the small transaction");
            Assert.Single(run.Recorder.Of<User>());
            await tx.CommitAsync();
        }
        // Before 15, pgoutput also sends the empty transactions of tables outside the publication (DBSync's checkpoint).
        await run.WaitUntilAsync(r => r.Transactions.Count(t => t.ChangeCount > 0) == 2, "the large transaction's commit", TimeSpan.FromSeconds(60));

        await using (var tx = await big.BeginTransactionAsync())
        {
            await using (var command = new Npgsql.NpgsqlCommand(string.Format(Insert, 20001, 40000), big))
                await command.ExecuteNonQueryAsync();
            if (streams)
                await LargeTransactionTests.WaitStreamedAsync(db, 2);
            await tx.RollbackAsync();
        }
        await db.ExecuteAsync("INSERT INTO users (id, first_name, user_name, email) VALUES (60000, 'last', 'last', 'last')");
        await run.WaitUntilAsync(r => r.Of<User>().Any(c => c.New!.Id == 60000), "the transaction after the rolled-back one");

        Assert.Equal([50000, .. Enumerable.Range(1, 20000), 60000], run.Recorder.Of<User>().Select(c => c.New!.Id));
        Assert.Equal([1, 20000, 1], run.Recorder.Transactions.Where(t => t.ChangeCount > 0).Select(t => t.ChangeCount));
        await run.StopAsync();
    }

    /// <summary>The DDL capture trigger's SQL on every supported server: a column added and a rewriting type change reach
    /// the handlers, and the rewrite's snapshot delivers the new values; on 13, whose pgoutput sends no logical messages,
    /// the option is refused with a clear error.</summary>
    [Theory]
    [InlineData(13)]
    [InlineData(14)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(18)]
    public async Task CaptureSchemaChanges_DdlReachesTheHandlers_AndARewriteIsSnapshotted_RefusedOn13(int version)
    {
        var server = await fixture.ServerAsync(version);
        await using var db = await TestDatabase.CreateAsync(server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) SELECT 'r' || g, 'n', g FROM generate_series(1, 30) g");
        var changes = new List<SchemaChange>();
        if (version < 14)
        {
            var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => StreamRun.StartAsync(db.ConnectionString, slot: "dbsync_versions_ddl",
                configure: o => o.CaptureSchemaChanges = true));
            Assert.Contains("CaptureSchemaChanges needs PostgreSQL 14 or later (the server runs 13)", error.Message, StringComparison.Ordinal);
            return;
        }
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSchemaChange(c =>
            {
                if (c.Table == "public.restaurant")
                    changes.Add(c);
            });
        }, slot: "dbsync_versions_ddl", configure: o => o.CaptureSchemaChanges = true);

        await db.ExecuteAsync("ALTER TABLE restaurant ADD COLUMN opened date");
        await db.ExecuteAsync("ALTER TABLE restaurant ALTER COLUMN rating TYPE smallint USING rating + 100");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read) == 30, "the rewrite's snapshot");

        Assert.Equal(["ColumnAdded public.restaurant.opened: - -> date", "ColumnTypeChanged public.restaurant.rating: integer -> smallint (rewritten)"],
            changes.Select(c => c.ToString()));
        Assert.All(run.Recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read), c => Assert.InRange(c.New!.Rating!.Value, 101, 130));
        await run.StopAsync();
    }
}
