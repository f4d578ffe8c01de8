using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.IntegrationTests;

/// <summary>
/// A change's id, (<see cref="Change{T}.CommitLsn"/>, <see cref="Change{T}.IndexInTransaction"/>): the index counts the
/// changes of a transaction in delivery order over all tables, from 0, snapshot rows included; a transaction delivered
/// again after a failed run gives every change the same id, a streamed (large) transaction too.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ChangeIdTests(PostgresFixture fixture)
{
    private const string Transaction = """
        BEGIN;
        INSERT INTO restaurant (id, name) VALUES ('r-1', 'one'), ('r-2', 'two');
        INSERT INTO users (id, first_name, user_name, email) SELECT i, 'f', 'u' || i, 'e' || i FROM generate_series(1, {0}) i;
        INSERT INTO visit (user_id, restaurant_id, amount_spent) VALUES (1, 'r-1', 2.50), (2, 'r-2', 3);
        UPDATE restaurant SET rating = 4 WHERE id = 'r-2';
        DELETE FROM visit WHERE user_id = 2;
        TRUNCATE visit;
        INSERT INTO restaurant (id, name) VALUES ('r-3', 'three');
        COMMIT
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TransactionDeliveredAgain_AfterAFailedRun_GivesEachChangeTheSameId(bool streamed)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var users = streamed ? 3000 : 3;
        // A walsender with the least decoding memory streams the large transaction while it runs.
        var connectionString = streamed
            ? new NpgsqlConnectionStringBuilder(db.ConnectionString) { Options = "-c logical_decoding_work_mem=64kB" }.ConnectionString
            : db.ConnectionString;

        // The first run's transaction handler refuses the transaction: it is not confirmed, so the next run gets it again.
        await using (var first = await StreamRun.StartAsync(connectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnTransaction((_, _) => throw new InvalidOperationException("refused by the first run"));
        }))
        {
            await db.ExecuteAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, Transaction, users));
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => first.Run.WaitAsync(TimeSpan.FromSeconds(120)));
            Assert.Equal("refused by the first run", error.Message);
            var firstIds = Ids(first.Recorder);

            await using var second = await StreamRun.StartAsync(connectionString);
            await second.WaitUntilAsync(r => r.Transactions.Count == 1, "the transaction, delivered again", TimeSpan.FromSeconds(120));
            var secondIds = Ids(second.Recorder);

            var expected = new List<string> { "Insert restaurant r-1", "Insert restaurant r-2" };
            expected.AddRange(Enumerable.Range(1, users).Select(i => $"Insert users {i}"));
            expected.AddRange(["Insert visit 1/r-1", "Insert visit 2/r-2", "Update restaurant r-2", "Delete visit 2/r-2", "Truncate visit -", "Insert restaurant r-3"]);
            Assert.Equal(expected, secondIds.Select(c => c.What));
            Assert.Equal(Enumerable.Range(0, expected.Count), secondIds.Select(c => c.Index));
            var commit = second.Recorder.Transactions[0].CommitLsn;
            Assert.All(secondIds, c => Assert.Equal(commit, c.CommitLsn));
            Assert.Equal(expected.Count, second.Recorder.Transactions[0].ChangeCount);
            // The same ids as the first run gave the same changes.
            Assert.Equal(firstIds, secondIds);
            await second.StopAsync();
        }

        if (streamed)
        {
            Assert.True(await db.ScalarAsync<long>("SELECT coalesce(max(stream_txns), 0) FROM pg_stat_replication_slots WHERE slot_name = 'dbsync_test'") > 0,
                "the transaction was not streamed");
        }
    }

    [Fact]
    public async Task SnapshotRows_AreNumberedInTheirChunksTransaction_AndEveryIdIsUnique()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || g, 'R' || g FROM generate_series(1, 5) g");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o => (o.SnapshotChunkSize, o.SnapshotParallelism) = (2, 1)); // chunks in key order

        await db.ExecuteAsync("BEGIN; UPDATE restaurant SET rating = 1 WHERE id = 'r-1'; INSERT INTO users (id, first_name, user_name, email) VALUES (1, 'f', 'u', 'e'); COMMIT");
        await run.Client.SnapshotAsync<Restaurant>();
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-6', 'six')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New!.Id == "r-6"), "the insert after the snapshot");

        var ids = Ids(run.Recorder);
        var reads = ids.Where(c => c.What.StartsWith("Read", StringComparison.Ordinal)).ToList();
        Assert.Equal(["Read restaurant r-1", "Read restaurant r-2", "Read restaurant r-3", "Read restaurant r-4", "Read restaurant r-5"], reads.Select(c => c.What));
        // Each chunk's rows are a transaction of their own (the high watermark's), numbered from 0.
        var chunks = reads.GroupBy(c => c.CommitLsn).ToList();
        Assert.Equal([2, 2, 1], chunks.Select(g => g.Count()));
        Assert.All(chunks, g => Assert.Equal(Enumerable.Range(0, g.Count()), g.Select(c => c.Index)));
        Assert.Equal([0, 1], ids.Where(c => !reads.Contains(c)).Take(2).Select(c => c.Index));
        Assert.Equal(ids.Count, ids.Select(c => (c.CommitLsn, c.Index)).Distinct().Count());
        await run.StopAsync();
    }

    private sealed record ChangeId(NpgsqlLogSequenceNumber CommitLsn, int Index, string What);

    /// <summary>What the recorder's handlers saw, in delivery order: each change's id and what it was.</summary>
    private static List<ChangeId> Ids(ChangeRecorder recorder)
        => recorder.All.Select(e => e switch
        {
            Change<Restaurant> c => new ChangeId(c.CommitLsn, c.IndexInTransaction, $"{c.Kind} restaurant {c.Row?.Id ?? "-"}"),
            Change<User> c => new ChangeId(c.CommitLsn, c.IndexInTransaction, $"{c.Kind} users {c.Row?.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"}"),
            Change<Visit> c => new ChangeId(c.CommitLsn, c.IndexInTransaction, $"{c.Kind} visit {(c.Row is { } v ? $"{v.UserId}/{v.RestaurantId}" : "-")}"),
            _ => null,
        }).OfType<ChangeId>().ToList();
}
