using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using Npgsql;

namespace DBSync.IntegrationTests;

[Collection(PostgresCollection.Name)]
[Trait("Category", "Snapshots")]
public sealed class SnapshotTests(PostgresFixture fixture)
{
    private const string Seed = """
        INSERT INTO users (first_name, user_name, email, date_of_birth, interests)
          SELECT 'u' || g, 'user' || g, 'u' || g || '@x', DATE '1990-01-01' + g, ARRAY['i' || g, NULL] FROM generate_series(1, 120) g;
        INSERT INTO restaurant (id, name, rating, tags) SELECT 'r-' || lpad(g::text, 3, '0'), 'R' || g, g % 5, ARRAY['t' || g] FROM generate_series(1, 60) g;
        INSERT INTO visit SELECT u, 'r-' || lpad(((u * 7 + k) % 60 + 1)::text, 3, '0'), (u * k) % 1000 / 10.0, NULLIF(k % 3, 0)
          FROM generate_series(1, 120) u, generate_series(1, 3) k ON CONFLICT DO NOTHING;
        """;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task FullSnapshot_WhileWritersChangeEveryTable_ReplicaConvergesToSource(int seed)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(Seed);
        var replica = new Replica();
        // Full speed: the writers count as a busy server, and this test wants the chunks dense among their changes.
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, _) => replica.Register(client),
            configure: o =>
            {
                o.SnapshotChunkSize = 7;
                o.SnapshotBusyShare = 1;
            });

        using var stopWriters = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(w => WriteRandomlyAsync(db.ConnectionString, seed * 10 + w, stopWriters.Token)).ToArray();
        await Task.WhenAll(run.Client.SnapshotAsync<User>(), run.Client.SnapshotAsync<Restaurant>(), run.Client.SnapshotAsync<Visit>())
            .WaitAsync(TimeSpan.FromSeconds(120));
        await stopWriters.CancelAsync();
        var operations = (await Task.WhenAll(writers)).Sum();
        Assert.True(operations > 20, $"the writers ran only {operations} statements during the snapshot");

        await WaitForStreamToCatchUpAsync(db, replica, run);
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
    }

    [Fact]
    public async Task ChangeDecodedBeforeItIsVisible_SynchronousStandbyWait_ReplicaStillConverges()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(Seed);
        var replica = new Replica();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, _) => replica.Register(client),
            configure: o => o.SnapshotChunkSize = 10);

        Task writer;
        Task snapshot;
        await using (await HoldCommitsAsync())
        {
            // The UPDATE's commit record reaches the WAL (and the stream); its backend then waits for the standby, so
            // the change stays invisible to new snapshots.
            writer = db.ExecuteAsync("UPDATE restaurant SET rating = 99, tags = ARRAY['updated'] WHERE id = 'r-001'");
            await run.WaitUntilAsync(_ => replica.Read(r => r.Restaurants.TryGetValue("r-001", out var x) && x.Rating == 99), "the decoded update");
            Assert.Equal(1, await db.ScalarAsync<int>("SELECT rating FROM restaurant WHERE id = 'r-001'")); // delivered, yet not visible
            Assert.False(writer.IsCompleted);

            snapshot = run.Client.SnapshotAsync<Restaurant>();
            await Task.Delay(1000);
            Assert.False(snapshot.IsCompleted, "no chunk may be read while a delivered change is still invisible");
        }

        await writer.WaitAsync(TimeSpan.FromSeconds(30));
        await snapshot.WaitAsync(TimeSpan.FromSeconds(60));
        await Task.WhenAll(run.Client.SnapshotAsync<User>(), run.Client.SnapshotAsync<Visit>()).WaitAsync(TimeSpan.FromSeconds(60));
        await WaitForStreamToCatchUpAsync(db, replica, run);
        Assert.Equal(99, replica.Read(r => r.Restaurants["r-001"].Rating));
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
    }

    [Fact]
    public async Task ChangeDecodedDuringTheSnapshotButInvisibleToALaterChunk_IsNotOverwrittenByThatChunk()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) SELECT 'r-' || lpad(g::text, 3, '0'), 'R' || g, 1 FROM generate_series(1, 200) g");
        var replica = new Replica();
        var reads = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, _) =>
        {
            replica.Register(client);
            client.On<Restaurant>(c =>
            {
                if (c.Kind == ChangeKind.Read)
                    reads[c.New!.Id] = true;
            });
        }, configure: o =>
        {
            o.SnapshotChunkSize = 10;
            o.SnapshotChunkDelay = TimeSpan.FromMilliseconds(150);
        });

        var snapshot = run.Client.SnapshotAsync<Restaurant>();
        await run.WaitUntilAsync(_ => reads.ContainsKey("r-030"), "the snapshot to be under way");
        Task writer;
        await using (await HoldCommitsAsync())
        {
            writer = db.ExecuteAsync("UPDATE restaurant SET rating = 99 WHERE id = 'r-180'");
            await run.WaitUntilAsync(_ => replica.Read(r => r.Restaurants.TryGetValue("r-180", out var x) && x.Rating == 99), "the decoded update");
            // The chunk holding r-180 is read while the update is still invisible to it.
            await run.WaitUntilAsync(_ => reads.ContainsKey("r-190"), "the snapshot to pass r-180");
            Assert.False(writer.IsCompleted, "the update must still wait for the standby while its chunk is read");
            Assert.Equal(1, await db.ScalarAsync<int>("SELECT rating FROM restaurant WHERE id = 'r-180'"));
        }

        await writer.WaitAsync(TimeSpan.FromSeconds(30));
        await snapshot.WaitAsync(TimeSpan.FromSeconds(60));
        await WaitForStreamToCatchUpAsync(db, replica, run);
        Assert.False(reads.ContainsKey("r-180"), "the chunk's stale copy of r-180 must have been dropped");
        Assert.Equal(99, replica.Read(r => r.Restaurants["r-180"].Rating));
        await replica.AssertEqualsSourceAsync(db.ConnectionString);
    }

    [Fact]
    public async Task CancelledSnapshot_StopsBetweenChunks_StreamGoesOn_AndANewSnapshotCompletes()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || lpad(g::text, 3, '0'), 'n' FROM generate_series(1, 200) g");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o =>
        {
            o.SnapshotChunkSize = 10;
            o.SnapshotChunkDelay = TimeSpan.FromMilliseconds(100);
        });
        int Reads() => run.Recorder.Of<Restaurant>().Count(c => c.Kind == ChangeKind.Read);

        using var cancel = new CancellationTokenSource();
        var first = run.Client.SnapshotAsync<Restaurant>(cancel.Token);
        await run.WaitUntilAsync(_ => Reads() >= 20, "two chunks");
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.WaitAsync(TimeSpan.FromSeconds(30)));
        var readsWhenCancelled = Reads();
        Assert.InRange(readsWhenCancelled, 20, 190);

        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after-cancel', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.Kind == ChangeKind.Insert), "the insert after cancelling");
        Assert.InRange(Reads(), readsWhenCancelled, readsWhenCancelled + 10); // at most the chunk in flight

        using var alreadyCancelled = new CancellationTokenSource();
        await alreadyCancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.Client.SnapshotAsync<Restaurant>(alreadyCancelled.Token).WaitAsync(TimeSpan.FromSeconds(30)));

        var before = Reads();
        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(201, Reads() - before);
    }

    [Fact]
    public async Task EmptyTableAndChunkSizeOne_SnapshotDeliversEveryRowOnceAsRead()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || g, 'n' FROM generate_series(1, 5) g");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o => o.SnapshotChunkSize = 1);

        await run.Client.SnapshotAsync<Visit>().WaitAsync(TimeSpan.FromSeconds(30));
        await run.Client.SnapshotAsync<Restaurant>().WaitAsync(TimeSpan.FromSeconds(30));

        var reads = run.Recorder.Of<Restaurant>();
        Assert.All(reads, c => Assert.Equal(ChangeKind.Read, c.Kind));
        Assert.Equal(["r-1", "r-2", "r-3", "r-4", "r-5"], reads.Select(c => c.New!.Id).Order(StringComparer.Ordinal));
        Assert.Empty(run.Recorder.Of<Visit>());
        Assert.Empty(run.Recorder.Transactions); // the watermarks' own transactions are DBSync's, not the application's
    }

    /// <summary>
    /// Until disposed, a committing transaction (synchronous_commit on) writes its commit record and then waits for a
    /// synchronous standby that does not exist: decodable, but invisible to new snapshots. DBSync's own watermark writes
    /// use synchronous_commit = local and read-only chunk queries never wait, so only the test's writer is held.
    /// </summary>
    private async Task<IAsyncDisposable> HoldCommitsAsync()
    {
        await fixture.Server.ExecuteAsync("ALTER SYSTEM SET synchronous_standby_names = 'dbsync_no_such_standby'; SELECT pg_reload_conf();");
        await Task.Delay(200); // let backends see the new setting
        return new Release(fixture.Server);
    }

    private sealed class Release(DBSync.Testing.PostgresServer server) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await server.ExecuteAsync("ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();");
    }

    internal static async Task WaitForStreamToCatchUpAsync(TestDatabase db, Replica replica, StreamRun run)
    {
        var marker = "zz-" + Guid.NewGuid().ToString("N")[..8];
        await db.ExecuteAsync($"INSERT INTO restaurant (id, name) VALUES ('{marker}', 'marker'); DELETE FROM restaurant WHERE id = '{marker}';");
        await db.ExecuteAsync($"INSERT INTO restaurant (id, name) VALUES ('{marker}', 'marker')");
        await run.WaitUntilAsync(_ => replica.Read(r => r.Restaurants.ContainsKey(marker)), "the marker row");
        await db.ExecuteAsync($"DELETE FROM restaurant WHERE id = '{marker}'");
        await run.WaitUntilAsync(_ => replica.Read(r => !r.Restaurants.ContainsKey(marker)), "the marker's delete");
    }

    /// <summary>Random inserts, updates, deletes and primary-key updates on all three tables until cancelled.</summary>
    internal static async Task<int> WriteRandomlyAsync(string connectionString, int seed, CancellationToken stop)
    {
        var random = new Random(seed);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        var count = 0;
        string[] statements =
        [
            "INSERT INTO users (first_name, user_name, email, interests) VALUES ('n{0}', 'n{0}', 'n{0}@x', ARRAY['new'])",
            "UPDATE users SET email = 'e{0}@x', date_of_birth = NULL WHERE id = (SELECT id FROM users ORDER BY random() LIMIT 1)",
            "UPDATE users SET id = id + 100000 WHERE id = (SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM visit v WHERE v.user_id = u.id) ORDER BY random() LIMIT 1)",
            "DELETE FROM users WHERE id = (SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM visit v WHERE v.user_id = u.id) ORDER BY random() LIMIT 1)",
            "INSERT INTO restaurant (id, name, tags) VALUES ('w-{0}', 'new', ARRAY['a', NULL])",
            "UPDATE restaurant SET rating = {1}, description = 'd{0}' WHERE id = (SELECT id FROM restaurant ORDER BY random() LIMIT 1)",
            "UPDATE restaurant SET id = id || 'x' WHERE id = (SELECT id FROM restaurant r WHERE NOT EXISTS (SELECT 1 FROM visit v WHERE v.restaurant_id = r.id) ORDER BY random() LIMIT 1)",
            "INSERT INTO visit SELECT (SELECT id FROM users ORDER BY random() LIMIT 1), (SELECT id FROM restaurant ORDER BY random() LIMIT 1), {1}.25, NULL ON CONFLICT DO NOTHING",
            "UPDATE visit SET amount_spent = amount_spent + 1, visit_rating = {1} WHERE (user_id, restaurant_id) = (SELECT user_id, restaurant_id FROM visit ORDER BY random() LIMIT 1)",
            "UPDATE visit SET restaurant_id = (SELECT id FROM restaurant ORDER BY random() LIMIT 1) WHERE (user_id, restaurant_id) = (SELECT user_id, restaurant_id FROM visit ORDER BY random() LIMIT 1)",
            "DELETE FROM visit WHERE (user_id, restaurant_id) = (SELECT user_id, restaurant_id FROM visit ORDER BY random() LIMIT 1)",
        ];
        while (!stop.IsCancellationRequested)
        {
            var sql = string.Format(System.Globalization.CultureInfo.InvariantCulture, statements[random.Next(statements.Length)], $"{seed}_{count}", random.Next(1, 10));
            try
            {
                await using var command = new NpgsqlCommand(sql, connection);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }
            catch (PostgresException e) when (e.SqlState is "23505" or "23503")
            {
                // A concurrent writer took the key, or a reference appeared meanwhile: skip this statement.
            }
            count++;
        }
        return count;
    }
}
