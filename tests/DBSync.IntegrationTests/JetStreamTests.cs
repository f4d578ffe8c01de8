using System.Buffers;
using System.Text;
using System.Text.Json;
using DBSync.Hosting;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Nats;
using DBSync.Sample;
using MessagePack;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace DBSync.IntegrationTests;

/// <summary>The JetStream publisher and consumer against real nats-server processes (issue 20).</summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Broker")]
public sealed class JetStreamTests(PostgresFixture fixture)
{
    private const string Slot = "dbsync_test";
    private const string Stream = "DBSYNC_DBSYNC_TEST";

    /// <summary>Snapshot rows, inserts, updates, deletes and a truncate: one message each, in commit order, with the
    /// headers and a MessagePack body that a generic MessagePack reader reads (a map keyed by column name).</summary>
    [Fact]
    public async Task EveryChange_IsPublishedOnce_InCommitOrder_WithItsHeaders_AndABodyAGenericMessagePackReaderReads()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) VALUES ('s1', 'snap one', 4), ('s2', 'snap two', NULL)");
        using var metrics = new MetricsCapture(Slot);
        JetStreamPublisher? publisher = null;
        await using var run = await StartPublishingAsync(db, connection, options: new JetStreamPublisherOptions { TransactionEnds = true },
            configure: o => o.InitialSnapshot = true, created: p => publisher = p);

        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the initial snapshot");
        await db.ExecuteAsync("INSERT INTO restaurant (id, name, description) VALUES ('r1', 'one', 'd')");
        await db.ExecuteAsync("UPDATE restaurant SET name = 'one!' WHERE id = 'r1'");
        await db.ExecuteAsync("INSERT INTO users (id, first_name, user_name, email) VALUES (7, 'Ann', 'ann', 'a@x')");
        await db.ExecuteAsync("INSERT INTO visit (user_id, restaurant_id, amount_spent) VALUES (7, 'r1', 12.50)");
        await db.ExecuteAsync("DELETE FROM visit WHERE user_id = 7");
        await db.ExecuteAsync("TRUNCATE visit");
        await run.WaitUntilAsync(r => r.Transactions.Count >= 6, "the six transactions");
        var messages = await WaitForMessagesAsync(connection, 8);

        var described = messages.Select(m => $"{m.Header(JetStreamPublisher.Headers.Kind)} {m.Header(JetStreamPublisher.Headers.Table)[7..]} {KeyOf(m)}").ToArray();
        // The snapshot's two rows first (in either order: parallel reads may put them in two chunks), then the changes.
        Assert.Equal(["read restaurant s1", "read restaurant s2"], described[..2].Order(StringComparer.Ordinal));
        Assert.Equal(["insert restaurant r1", "update restaurant r1", "insert users 7", "insert visit 7", "delete visit 7", "truncate visit "], described[2..]);
        Assert.Equal(messages.Count, messages.Select(m => m.Header("Nats-Msg-Id")).Distinct().Count());
        Assert.All(messages, m => Assert.Equal(Slot, m.Header(JetStreamPublisher.Headers.Slot)));
        Assert.All(messages, m => Assert.Equal("application/msgpack", m.Header("Content-Type")));
        Assert.Equal("dbsync.public.restaurant", messages[2].Subject);
        // Snapshot rows name their chunk, as the handlers' Change<T> does; other changes have none.
        // (With parallel reads the two rows may be read in one chunk or in two: the header says what the handlers saw.)
        var chunks = run.Recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).ToDictionary(c => c.New!.Id, c => c.SnapshotChunk);
        Assert.All(chunks.Values, chunk => Assert.True(chunk >= 1));
        Assert.All(messages.Skip(2), m => Assert.Equal("", m.Header(JetStreamPublisher.Headers.Chunk)));
        Assert.All(messages.Take(2), m => Assert.Equal(chunks[KeyOf(m)].ToString(), m.Header(JetStreamPublisher.Headers.Chunk)));

        // The insert's transaction, as the handlers saw it.
        var insert = run.Recorder.Of<Restaurant>().Single(c => c.Kind == ChangeKind.Insert);
        Assert.Equal(insert.CommitLsn.ToString(), messages[2].Header(JetStreamPublisher.Headers.CommitLsn));
        Assert.Equal(insert.Xid.ToString(), messages[2].Header(JetStreamPublisher.Headers.Xid));
        Assert.Equal(insert.IndexInTransaction.ToString(), messages[2].Header(JetStreamPublisher.Headers.Index));
        Assert.Equal(insert.CommitTime, DateTimeOffset.Parse(messages[2].Header(JetStreamPublisher.Headers.CommitTime)));

        var row = Row(messages[2]);
        Assert.Equal("r1", row["id"]);
        Assert.Equal("one", row["name"]);
        Assert.Equal("d", row["description"]);
        Assert.Null(row["rating"]);
        Assert.Equal((byte)4, Convert.ToByte(Row(messages.First(m => KeyOf(m) == "s1"))["rating"]));
        var visit = Row(messages[5]);
        Assert.Equal("12.50", visit["amount_spent"]); // numeric: PostgreSQL's exact text
        var deleted = Body(messages[6]);
        Assert.Null(deleted["row"]);
        Assert.Equal("key", deleted["old_kind"]);
        var oldKey = (Dictionary<object, object?>)deleted["old"]!;
        Assert.Equal(["user_id", "restaurant_id"], oldKey.Keys.Cast<string>().ToArray());

        // Each transaction's changes are followed by its commit message: the end position PostgreSQL was confirmed to, and
        // the number of changes; nothing else comes between.
        var all = await ReadStreamAsync(connection, commits: true);
        var commits = all.Where(m => m.IsCommit).ToList();
        Assert.Equal(all.Count - messages.Count, commits.Count);
        Assert.True(commits.Count >= 7, $"{commits.Count} commit messages"); // the snapshot's chunk(s) and the six transactions
        Assert.True(all[^1].IsCommit, "The stream does not end with a commit message.");
        for (var i = 0; i < all.Count; i++)
        {
            if (!all[i].IsCommit)
                continue;
            var commit = all[i].Header(JetStreamPublisher.Headers.CommitLsn);
            var changes = all.Take(i).Reverse().TakeWhile(m => !m.IsCommit).ToList();
            Assert.NotEmpty(changes);
            Assert.All(changes, m => Assert.Equal(commit, m.Header(JetStreamPublisher.Headers.CommitLsn)));
            Assert.Equal(changes.Count.ToString(), all[i].Header(JetStreamPublisher.Headers.Index));
            Assert.Equal("dbsync._dbsync.commit", all[i].Subject);
            Assert.Empty(all[i].Data);
            Assert.True(NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(all[i].Header(JetStreamPublisher.Headers.EndLsn)) > NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(commit));
            Assert.Equal(changes[0].Header(JetStreamPublisher.Headers.Xid), all[i].Header(JetStreamPublisher.Headers.Xid));
        }
        var insertTransaction = run.Recorder.Transactions.Single(t => t.CommitLsn == insert.CommitLsn);
        Assert.Equal(insertTransaction.EndLsn.ToString(), commits.Single(m => m.Header(JetStreamPublisher.Headers.CommitLsn) == insert.CommitLsn.ToString())
            .Header(JetStreamPublisher.Headers.EndLsn));

        Assert.Equal(publisher!.Published, all.Count);
        // The publisher's instruments: every stored message counted, and its commit-to-acknowledgement time recorded.
        Assert.Equal(all.Count, metrics.Sum(DBSyncDiagnostics.Metrics.JetStreamPublished, (DBSyncDiagnostics.Tags.Stream, Stream)));
        Assert.Equal(all.Count, metrics.Count(DBSyncDiagnostics.Metrics.JetStreamCommitToAck));
        Assert.Equal(0, metrics.Sum(DBSyncDiagnostics.Metrics.JetStreamInterruptions));
        var units = MetricsCapture.Published().Where(i => i.Name.StartsWith("dbsync.jetstream.", StringComparison.Ordinal)).ToDictionary(i => i.Name, i => i.Unit);
        Assert.Equal(new Dictionary<string, string?>
        {
            [DBSyncDiagnostics.Metrics.JetStreamPublished] = "{message}", [DBSyncDiagnostics.Metrics.JetStreamCommitToAck] = "s",
            [DBSyncDiagnostics.Metrics.JetStreamInterruptions] = "{interruption}",
        }, units);
        await run.StopAsync();
    }

    /// <summary>A handler fails after the publisher sent two of a transaction's three changes; the run stops unconfirmed.
    /// The next run, started after the stream's duplicate window has passed (so JetStream's de-duplication cannot help),
    /// gets the whole transaction again and publishes only the third: it starts after the stream's last message.</summary>
    [Fact]
    public async Task TransactionDeliveredAgain_AfterTheDuplicateWindow_IsPublishedOnlyFromWhereTheStreamEnds()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        var options = new JetStreamPublisherOptions { DuplicateWindow = TimeSpan.FromMilliseconds(200) };
        var fail = true;
        await using (var first = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
               {
                   client.On<Restaurant>(c =>
                   {
                       if (fail && c.New?.Id == "boom")
                           throw new InvalidOperationException("the handler fails");
                   });
                   _ = new JetStreamPublisher(client, connection, options);
               }))
        {
            await db.ExecuteAsync("BEGIN; INSERT INTO restaurant (id, name) VALUES ('p1', 'n'), ('p2', 'n'), ('boom', 'n'); COMMIT;");
            await Assert.ThrowsAnyAsync<Exception>(() => first.Run.WaitAsync(TimeSpan.FromSeconds(30)));
        }
        // What the failed run sent reached the stream (the case that needs the skip), and nothing was confirmed.
        var before = await WaitForMessagesAsync(connection, 2);
        Assert.Equal(["p1", "p2"], before.Select(KeyOf).ToArray());
        await Task.Delay(options.DuplicateWindow * 2);

        fail = false;
        JetStreamPublisher? publisher = null;
        await using var second = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            publisher = new JetStreamPublisher(client, connection, options);
        });
        await second.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "boom"), "the transaction delivered again");
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('after', 'n')");
        var messages = await WaitForMessagesAsync(connection, 4);
        Assert.Equal(["p1", "p2", "boom", "after"], messages.Select(KeyOf).ToArray());
        Assert.Equal(2, publisher!.Skipped);
        await second.StopAsync();
        Assert.Equal(4, (await ReadStreamAsync(connection)).Count);
    }

    /// <summary>The NATS server is killed with SIGKILL while a writer commits, and started again two seconds later: the
    /// stream ends with every insert exactly once, in commit order (no gap, no duplicate, no reordering).</summary>
    [Fact]
    public async Task NatsServerKilledWhilePublishing_AndRestarted_EveryChangeEndsInTheStreamOnce_InOrder()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await using var run = await StartPublishingAsync(db, connection, configure: o => (o.ReconnectDelay, o.MaxReconnectDelay) = (TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1)));

        const int rows = 300;
        var writer = Task.Run(async () =>
        {
            for (var i = 1; i <= rows; i++)
            {
                await db.ExecuteAsync($"INSERT INTO restaurant (id, name) VALUES ('{i:D4}', 'n')");
                await Task.Delay(5);
            }
        });
        var atKill = (await WaitForMessagesAsync(connection, 60)).Count;
        nats.Kill();
        await Task.Delay(TimeSpan.FromSeconds(2));
        await nats.StartAsync();
        await writer;
        var messages = await WaitForMessagesAsync(connection, rows, TimeSpan.FromSeconds(60));
        Assert.Equal(Enumerable.Range(1, rows).Select(i => i.ToString("D4")).ToArray(), messages.Select(KeyOf).ToArray());
        Assert.Equal(rows, messages.Select(m => m.Header("Nats-Msg-Id")).Distinct().Count());
        // The kill came while the writer still wrote. Whether the publisher had to start over (a publish lost with the
        // server) or the NATS client's reconnect carried everything through depends on the moment: both must end so.
        Assert.True(atKill < rows, "The server was killed after everything was published.");
        Assert.False(run.Run.IsCompleted, "The run ended.");
        await run.StopAsync();
    }

    /// <summary>A stream that exists with other settings than the options say is refused, naming the setting.</summary>
    [Fact]
    public async Task ExistingStreamWithAnotherDuplicateWindow_IsRefused_NamingTheSetting()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await new NatsJSContext(connection).CreateStreamAsync(new StreamConfig(Stream, ["dbsync.>"]) { DuplicateWindow = TimeSpan.FromMinutes(5) });
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = db.ConnectionString, SlotName = Slot, PublicationName = Slot, InitialSnapshot = false, ReplicationTransport = TestTransport.Current,
        });
        client.On<Restaurant>(_ => { });
        _ = new JetStreamPublisher(client, connection);
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => client.RunAsync().WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("duplicate window", error.Message, StringComparison.Ordinal);
        Assert.Contains("JetStreamPublisherOptions.DuplicateWindow", error.Message, StringComparison.Ordinal);
        Assert.Contains(Stream, error.Message, StringComparison.Ordinal);
    }

    /// <summary>With partitions, each message goes to the partition of its key, which a consumer in any language computes
    /// the same way (FNV-1a 64 of the key's MessagePack array, modulo the count); an update that moves a key to another
    /// partition goes to both.</summary>
    [Fact]
    public async Task Partitions_SplitATableByKey_AndAKeyThatMovesIsSeenByBothPartitions()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        const int partitions = 4;
        await using var run = await StartPublishingAsync(db, connection, options: new JetStreamPublisherOptions { Partitions = partitions, Format = BodyFormat.Json });
        var ids = Enumerable.Range(1, 40).Select(i => $"k{i}").ToList();
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES " + string.Join(", ", ids.Select(id => $"('{id}', 'n')")));
        var from = ids.First(id => ExpectedPartition(id, partitions) != ExpectedPartition("moved", partitions));
        await db.ExecuteAsync($"UPDATE restaurant SET id = 'moved' WHERE id = '{from}'");
        var messages = await WaitForMessagesAsync(connection, 42);

        Assert.Equal(ids.Count, messages.Count(m => m.Header(JetStreamPublisher.Headers.Kind) == "insert"));
        foreach (var insert in messages.Where(m => m.Header(JetStreamPublisher.Headers.Kind) == "insert"))
        {
            using var json = JsonDocument.Parse(insert.Data);
            var id = json.RootElement.GetProperty("row").GetProperty("id").GetString()!;
            Assert.Equal($"dbsync.public.restaurant.{ExpectedPartition(id, partitions)}", insert.Subject);
        }
        Assert.Equal(partitions, messages.Select(m => m.Subject).Distinct().Count()); // 40 keys reach every partition
        var moves = messages.Where(m => m.Header(JetStreamPublisher.Headers.Kind) == "update").ToList();
        Assert.Equal(
            new[] { ExpectedPartition(from, partitions), ExpectedPartition("moved", partitions) }.Order().Select(p => $"dbsync.public.restaurant.{p}"),
            moves.Select(m => m.Subject));
        Assert.Equal(moves.Select(m => m.Header(JetStreamPublisher.Headers.Part)), moves.Select(m => m.Subject[^1..]));
        await run.StopAsync();
    }

    /// <summary>Bad input: a wrong NATS address (nothing listens there) fails the run at start with an error that names
    /// the address and what to check, and nothing is confirmed.</summary>
    [Fact]
    public async Task WrongNatsAddress_FailsTheRunAtStart_NamingTheAddress()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nowhere = NatsServer.NotStarted();
        await using var connection = nowhere.Connect();
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = db.ConnectionString, SlotName = Slot, PublicationName = Slot, InitialSnapshot = false, ReplicationTransport = TestTransport.Current,
        });
        client.On<Restaurant>(_ => { });
        _ = new JetStreamPublisher(client, connection);
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => client.RunAsync().WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(nowhere.Url, error.Message, StringComparison.Ordinal);
        Assert.Contains("NatsOpts.Url", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Bad input: a change whose message is larger than the stream takes stops the run with an error that names
    /// the table, the transaction and the setting to change; the slot is not confirmed past it.</summary>
    [Fact]
    public async Task MessageTooLargeForTheStream_StopsTheRun_NamingTheTableAndTheLimit_NothingConfirmedPastIt()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await new NatsJSContext(connection).CreateStreamAsync(new StreamConfig(Stream, ["dbsync.>"])
        {
            DuplicateWindow = TimeSpan.FromMinutes(2), MaxMsgSize = 1024, Discard = StreamConfigDiscard.New,
        });
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = db.ConnectionString, SlotName = Slot, PublicationName = Slot, InitialSnapshot = false, ReplicationTransport = TestTransport.Current,
        });
        client.On<Restaurant>(_ => { });
        _ = new JetStreamPublisher(client, connection);
        var run = client.RunAsync();
        await client.Streaming.WaitAsync(TimeSpan.FromSeconds(60));
        var before = await db.SlotConfirmedAsync(Slot);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('small', 'n')");
        await db.ExecuteAsync($"INSERT INTO restaurant (id, name, description) VALUES ('large', 'n', repeat('x', 5000))");
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => run.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("public.restaurant", error.Message, StringComparison.Ordinal);
        Assert.Contains("max_msg_size", error.Message, StringComparison.Ordinal);
        var written = await db.ScalarAsync<NpgsqlTypes.NpgsqlLogSequenceNumber>("SELECT pg_current_wal_lsn()");
        Assert.True(await db.SlotConfirmedAsync(Slot) < written, "The slot was confirmed past the change JetStream refused.");
        Assert.Equal(["small"], (await ReadStreamAsync(connection)).Select(KeyOf).ToArray());
        Assert.True(before < written);
    }

    /// <summary>The broker goes silent (SIGSTOP) for 30 s with a transaction's messages unacknowledged: the slot's
    /// confirmed position stays before that transaction for as long as it is silent, and passes it once the broker
    /// answers again and has the messages, with the publisher's interruptions counted.</summary>
    [Fact]
    public async Task SilentBroker_NothingIsConfirmedBeforeJetStreamAcknowledgedIt()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        JetStreamPublisher? publisher = null;
        await using var run = await StartPublishingAsync(db, connection, configure: o => (o.ReconnectDelay, o.MaxReconnectDelay) = (TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1)), created: p => publisher = p);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('before', 'n')");
        await WaitForMessagesAsync(connection, 1);

        nats.Pause();
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('while-silent', 'n')");
        var written = await db.ScalarAsync<NpgsqlTypes.NpgsqlLogSequenceNumber>("SELECT pg_current_wal_lsn()");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "while-silent"), "the insert delivered to the handlers");
        // Silent for 30 s: DBSync waits and retries (its acknowledgements time out), and confirms nothing past them.
        for (var look = 0; look < 150; look++)
        {
            Assert.True(await db.SlotConfirmedAsync(Slot) < written, "The slot confirmed a transaction JetStream had not acknowledged.");
            await Task.Delay(200);
        }
        nats.Resume();
        var messages = await WaitForMessagesAsync(connection, 2, TimeSpan.FromSeconds(60));
        Assert.Equal(["before", "while-silent"], messages.Select(KeyOf).ToArray());
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await db.SlotConfirmedAsync(Slot) < written && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        Assert.True(await db.SlotConfirmedAsync(Slot) >= written, "The slot was not confirmed past the transaction once JetStream had it.");
        Assert.True(publisher!.Interruptions >= 1, "The publisher never noticed the silent broker.");
        await run.StopAsync();
    }

    /// <summary>A transaction of more changes than may await their acknowledgement at once: the publisher waits for them
    /// in the middle of it, and the stream gets every change once, in order.</summary>
    [Fact]
    public async Task TransactionLargerThanMaxInFlight_IsPublishedWhole_InOrder()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await using var run = await StartPublishingAsync(db, connection, options: new JetStreamPublisherOptions { MaxInFlight = 4 });
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT lpad(i::text, 3, '0'), 'n' FROM generate_series(1, 50) i");
        await run.WaitUntilAsync(r => r.Transactions.Count >= 1, "the transaction");
        await Task.Delay(500); // anything published twice would arrive by now
        var messages = await ReadStreamAsync(connection);
        Assert.Equal(Enumerable.Range(1, 50).Select(i => i.ToString("D3")), messages.Select(KeyOf));
        await run.StopAsync();
    }

    /// <summary>A table whose name is no subject token (a space here) is refused when the run starts, with what to do.</summary>
    [Fact]
    public async Task TableNameWithASpace_IsRefusedAtStart()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync("CREATE TABLE \"odd name\" (id int PRIMARY KEY)");
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        var client = new DBSyncClient(new DBSyncOptions { ConnectionString = db.ConnectionString, SlotName = Slot, PublicationName = Slot, InitialSnapshot = false });
        client.On<OddName>(_ => { });
        _ = new JetStreamPublisher(client, connection);
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => client.RunAsync());
        Assert.Contains("odd name", error.Message, StringComparison.Ordinal);
        Assert.Contains("no NATS subject token", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Two consumer processes' worth of consumers share a table by partition: each gets only its partitions'
    /// keys, typed as the stream delivered them, and together they rebuild the table as it is in the source.</summary>
    [Fact]
    public async Task TwoConsumers_ShareATableByPartition_AndTogetherRebuildIt()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) SELECT 'k' || i, 'before', i FROM generate_series(1, 20) i");
        await using var run = await StartPublishingAsync(db, connection, options: new JetStreamPublisherOptions { Partitions = 4 }, configure: o => o.InitialSnapshot = true);
        for (var round = 1; round <= 5; round++)
            await db.ExecuteAsync($"UPDATE restaurant SET name = 'round {round}', rating = rating + 1 WHERE id IN ('k1', 'k2', 'k3', 'k{round + 5}')");
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'n' || i, 'new' FROM generate_series(1, 20) i");
        await db.ExecuteAsync("DELETE FROM restaurant WHERE id IN ('k4', 'n4')");
        await db.ExecuteAsync("UPDATE restaurant SET id = 'k1-moved' WHERE id = 'k1'");
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('last', 'n')");

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var states = new[] { new Dictionary<string, (string Name, int? Rating)>(), new Dictionary<string, (string Name, int? Rating)>() };
        var consumers = new JetStreamConsumer[2];
        var runs = new Task[2];
        for (var c = 0; c < 2; c++)
        {
            var state = states[c];
            consumers[c] = new JetStreamConsumer(connection, new JetStreamConsumerOptions { Stream = Stream, Name = "rebuild", Partitions = c == 0 ? [0, 1] : [2, 3] })
                .On<Restaurant>(change =>
                {
                    lock (state)
                    {
                        if (change.Old is { } old && change.Kind is ChangeKind.Update or ChangeKind.Delete)
                            state.Remove(old.Id);
                        if (change.New is { } row)
                            state[row.Id] = (row.Name, row.Rating);
                    }
                });
            runs[c] = consumers[c].RunAsync(stop.Token);
        }
        var source = (await db.RowsAsync("SELECT id || ' ' || name || ' ' || coalesce(rating::text, '-') FROM restaurant ORDER BY id")).ToList();
        string[] Rebuilt() => states.SelectMany(s => { lock (s) return s.Select(e => $"{e.Key} {e.Value.Name} {e.Value.Rating?.ToString() ?? "-"}").ToList(); })
            .Order(StringComparer.Ordinal).ToArray();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!Rebuilt().SequenceEqual(source.Order(StringComparer.Ordinal)) && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        Assert.Equal(source.Order(StringComparer.Ordinal), Rebuilt());
        for (var c = 0; c < 2; c++)
        {
            lock (states[c])
                Assert.All(states[c].Keys, id => Assert.Contains(ExpectedPartition(id, 4), c == 0 ? [0, 1] : new[] { 2, 3 }));
        }
        await stop.CancelAsync();
        await Task.WhenAll(runs);
        await run.StopAsync();
    }

    /// <summary>A handler fails on one message: it is delivered again after the retry delay, and nothing after it is
    /// handled before it is; the durable consumer then goes on, each message handled once.</summary>
    [Fact]
    public async Task HandlerFailsOnAMessage_ItComesAgainBeforeAnythingAfterIt()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await using var run = await StartPublishingAsync(db, connection);
        for (var i = 1; i <= 30; i++)
            await db.ExecuteAsync($"INSERT INTO restaurant (id, name) VALUES ('{i:D2}', 'n')");
        await WaitForMessagesAsync(connection, 30);

        var handled = new List<string>();
        var failed = false;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var consumer = new JetStreamConsumer(connection, new JetStreamConsumerOptions { Stream = Stream, Name = "retry", RetryDelay = TimeSpan.FromMilliseconds(200), BatchSize = 8 })
            .On<Restaurant>(change =>
            {
                if (change.New!.Id == "12" && !failed)
                {
                    failed = true;
                    throw new InvalidOperationException("the handler fails once");
                }
                lock (handled)
                    handled.Add(change.New.Id);
            });
        var consuming = consumer.RunAsync(stop.Token);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (consumer.Acknowledged < 30 && DateTime.UtcNow < deadline && !consuming.IsCompleted)
            await Task.Delay(50);
        await stop.CancelAsync();
        await consuming;
        Assert.Equal(Enumerable.Range(1, 30).Select(i => i.ToString("D2")), handled);
        Assert.Equal(1, consumer.Failures);
        await run.StopAsync();
    }

    /// <summary>A consumer stops with messages received but not handled; the next one with the same durable name goes on
    /// from the first unacknowledged message, in order: nothing lost, nothing out of order, nothing handled twice that
    /// was acknowledged.</summary>
    [Fact]
    public async Task ConsumerStoppedWithMessagesInFlight_TheNextOneGoesOnInOrder()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await using var run = await StartPublishingAsync(db, connection);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT lpad(i::text, 3, '0'), 'n' FROM generate_series(1, 200) i");
        await WaitForMessagesAsync(connection, 200);

        var first = new List<string>();
        using (var stop = new CancellationTokenSource())
        {
            var consumer = new JetStreamConsumer(connection, new JetStreamConsumerOptions { Stream = Stream, Name = "resume", BatchSize = 64 })
                .On<Restaurant>(async (change, cancellationToken) =>
                {
                    lock (first)
                        first.Add(change.New!.Id);
                    if (first.Count == 50)
                        await stop.CancelAsync(); // stops with the rest of the batch received, not handled
                });
            await consumer.RunAsync(stop.Token);
        }
        var second = new List<string>();
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            var consumer = new JetStreamConsumer(connection, new JetStreamConsumerOptions { Stream = Stream, Name = "resume", BatchSize = 64 })
                .On<Restaurant>(change =>
                {
                    lock (second)
                        second.Add(change.New!.Id);
                });
            var consuming = consumer.RunAsync(stop.Token);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (second.LastOrDefault() != "200" && DateTime.UtcNow < deadline)
                await Task.Delay(50);
            await stop.CancelAsync();
            await consuming;
        }
        // The first consumer acknowledged what it handled but, at most, the one it was handling when stopped.
        var all = Enumerable.Range(1, 200).Select(i => i.ToString("D3")).ToList();
        Assert.Equal(all.Take(first.Count), first);
        Assert.InRange(second[0], all[first.Count - 2], all[first.Count]);
        Assert.Equal(all.SkipWhile(id => id != second[0]), second);
        await run.StopAsync();
    }

    /// <summary>One generic host publishes (AddDBSync(...).AddTable&lt;T&gt;().PublishToJetStream()) and consumes
    /// (AddJetStreamConsumer(...).AddChangeHandler&lt;T, THandler&gt;(), a scope per message) through the INatsConnection
    /// in its container.</summary>
    [Fact]
    public async Task HostedPublisherAndConsumer_ThroughTheContainer()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<INatsConnection>(connection);
        var received = new ChangeRecorder();
        builder.Services.AddSingleton(received);
        builder.Services.AddDBSync(o =>
            {
                (o.ConnectionString, o.SlotName, o.PublicationName, o.InitialSnapshot, o.ReplicationTransport) = (db.ConnectionString, Slot, Slot, false, TestTransport.Current);
            })
            .AddTable<Restaurant>()
            .PublishToJetStream(o => o.Partitions = 2);
        builder.Services.AddJetStreamConsumer(o => (o.Stream, o.Name) = (Stream, "hosted"))
            .AddChangeHandler<Restaurant, RecordingRestaurantHandler>();
        using var host = builder.Build();
        await host.StartAsync();

        await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) VALUES ('h1', 'one', 5)");
        await db.ExecuteAsync("UPDATE restaurant SET name = 'one!' WHERE id = 'h1'");
        await received.WaitUntilAsync(r => r.Of<Restaurant>().Count == 2, "both changes through the hosted consumer");
        await host.StopAsync();

        var changes = received.Of<Restaurant>();
        Assert.Equal([ChangeKind.Insert, ChangeKind.Update], changes.Select(c => c.Kind));
        Assert.Equal(("h1", "one!", (int?)5), (changes[1].New!.Id, changes[1].New!.Name, changes[1].New!.Rating));
        Assert.StartsWith("dbsync.public.restaurant.", (await ReadStreamAsync(connection))[0].Subject, StringComparison.Ordinal);
    }

    private sealed class RecordingRestaurantHandler(ChangeRecorder recorder) : DBSync.Hosting.IChangeHandler<Restaurant>
    {
        public ValueTask HandleAsync(Change<Restaurant> change, CancellationToken cancellationToken)
        {
            recorder.Add(change);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>The command behind <c>./build.sh jetstream-sample</c>: a throwaway nats-server, the publisher with four
    /// partitions, two consumer processes; every change reaches exactly one of them, and the command ends by itself with 0.</summary>
    [Fact]
    public async Task JetStreamSample_TwoConsumerProcessesSplitTheTable_AndItEndsByItself()
    {
        var sample = ChildProcess.OutputOf(Path.Combine("samples", "DBSync.JetStreamSample"), "DBSync.JetStreamSample.dll");
        Assert.True(File.Exists(sample), $"{sample} is missing; build samples/DBSync.JetStreamSample.");
        var (exitCode, output) = await ChildProcess.RunAsync("dotnet", [sample], TimeSpan.FromMinutes(2), ChildProcess.ServerEnvironment(fixture.Server));
        Assert.True(exitCode == 0, $"The JetStream sample failed ({exitCode}):\n{output}");
        Assert.Contains("== all 14 changes received, each key by one consumer", output, StringComparison.Ordinal);
        Assert.Matches(@"\[0,1\] received Read +restaurant id=r\d+ name=Restaurant \d+ rating=\d", output);
        Assert.Matches(@"\[2,3\] received (Insert|Update|Delete|Read)", output);
    }

    /// <summary>A three-node JetStream cluster, a stream with three replicas; writers commit and an initial snapshot runs
    /// while the publisher process is killed with SIGKILL ten times, a new one started each time. Then the whole stream
    /// is read: no change message twice, every transaction's changes there in commit order and complete (checked against
    /// PostgreSQL's own test_decoding slot, created before the writers started), and the table rebuilt from the stream
    /// equals the source.</summary>
    [Fact]
    public async Task PublisherProcessKilledTenTimes_OnAThreeNodeCluster_TheStreamHoldsEveryChangeOnce_InCommitOrder()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var cluster = await NatsServer.StartClusterAsync(3);
        try
        {
            await using var connection = new NatsConnection(new NatsOpts { Url = NatsServer.ClusterUrl(cluster), MaxReconnectRetry = -1 });
            await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) SELECT 'pre' || i, 'n', 1 FROM generate_series(1, 300) i");
            var publisher = CrashPublisher.Start(db, NatsServer.ClusterUrl(cluster), replicas: 3);
            await publisher.WaitStreamingAsync();
            await db.ExecuteAsync("SELECT pg_create_logical_replication_slot('truth', 'test_decoding')");

            using var stopWriting = new CancellationTokenSource();
            var writer = Task.Run(() => WriteAsync(db, stopWriting.Token));
            const string stream = "DBSYNC_DBSYNC_CRASH_PUBLISH";
            for (var kill = 1; kill <= 10; kill++)
            {
                // Each process publishes something before it is killed.
                var before = await CountAsync(connection, stream);
                var deadline = DateTime.UtcNow.AddSeconds(30);
                while (await CountAsync(connection, stream) < before + 20 && DateTime.UtcNow < deadline)
                    await Task.Delay(50);
                await Task.Delay(Random.Shared.Next(0, 300));
                publisher.Kill();
                publisher = CrashPublisher.Start(db, NatsServer.ClusterUrl(cluster), replicas: 3);
            }
            await stopWriting.CancelAsync();
            var written = await writer;
            await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('final', 'n')");

            await AssertTheStreamHoldsEveryChangeOnceAsync(db, connection, stream, afterCatchUp: publisher.Kill);
        }
        finally
        {
            foreach (var node in cluster)
                await node.DisposeAsync();
        }
    }

    /// <summary>Waits until the table rebuilt from the stream equals the source (the publisher caught up), runs
    /// <paramref name="afterCatchUp"/>, then checks the whole stream: no change message twice (snapshot rows may be: a
    /// chunk cut short is read again), and every transaction PostgreSQL decoded into the slot 'truth' there, complete and
    /// in commit order.</summary>
    private static async Task AssertTheStreamHoldsEveryChangeOnceAsync(TestDatabase db, NatsConnection connection, string stream, Action? afterCatchUp = null)
    {
        var source = (await db.RowsAsync("SELECT id || ' ' || name || ' ' || coalesce(rating::text, '-') FROM restaurant ORDER BY id")).ToList();
        List<StreamMessage> messages = [];
        var caughtUp = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < caughtUp)
        {
            messages = await ReadStreamAsync(connection, stream);
            if (Rebuild(messages).SequenceEqual(source))
                break;
            await Task.Delay(500);
        }
        afterCatchUp?.Invoke();
        Assert.Equal(source, Rebuild(messages));

        var changes = messages.Where(m => m.Header(JetStreamPublisher.Headers.Kind) != "read").ToList();
        var ids = changes.Select(m => (m.Header(JetStreamPublisher.Headers.CommitLsn), m.Header(JetStreamPublisher.Headers.Index))).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        var truth = await TruthAsync(db);
        var published = changes.Where(m => m.Header(JetStreamPublisher.Headers.Table) == "public.restaurant")
            .GroupBy(m => uint.Parse(m.Header(JetStreamPublisher.Headers.Xid), System.Globalization.CultureInfo.InvariantCulture))
            .Select(g => (Xid: g.Key, Changes: g.Count())).ToList();
        Assert.True(truth.Count > 50, $"Only {truth.Count} transactions were written.");
        Assert.Equal(truth, published);
        AssertEachTransactionEndsWithOneCommitMessage(await ReadStreamAsync(connection, stream, commits: true));
    }

    /// <summary>The messages of each transaction are one run, followed by exactly one commit message of the same transaction
    /// (none in between, none twice), whose index is the number of changes published before it.</summary>
    private static void AssertEachTransactionEndsWithOneCommitMessage(List<StreamMessage> all)
    {
        var ended = new HashSet<string>();
        string? open = null;
        var indexes = new HashSet<string>();
        foreach (var message in all)
        {
            var commit = message.Header(JetStreamPublisher.Headers.CommitLsn);
            if (message.IsCommit)
            {
                Assert.Equal(open, commit);
                Assert.True(ended.Add(commit), $"Two commit messages for the transaction committed at {commit}.");
                Assert.Equal(int.Parse(message.Header(JetStreamPublisher.Headers.Index)), indexes.Count);
                open = null;
                indexes.Clear();
                continue;
            }
            Assert.True(open is null || open == commit, $"The transaction committed at {open} has no commit message before the one committed at {commit}.");
            Assert.DoesNotContain(commit, ended);
            open = commit;
            indexes.Add(message.Header(JetStreamPublisher.Headers.Index));
        }
        Assert.Null(open);
    }

    /// <summary>The stream's leader node is killed (SIGKILL) while a writer commits and the publisher publishes, and started
    /// again 2 s later: nothing lost, nothing duplicated, everything in commit order.</summary>
    [Fact]
    public async Task StreamLeaderKilledAndRestarted_NothingLostNothingDuplicated()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var cluster = await NatsServer.StartClusterAsync(3);
        try
        {
            await using var connection = new NatsConnection(new NatsOpts { Url = NatsServer.ClusterUrl(cluster), MaxReconnectRetry = -1 });
            await using var run = await StartPublishingAsync(db, connection, options: new JetStreamPublisherOptions { Replicas = 3, TransactionEnds = true },
                configure: o => (o.ReconnectDelay, o.MaxReconnectDelay) = (TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1)));
            await db.ExecuteAsync("SELECT pg_create_logical_replication_slot('truth', 'test_decoding')");
            using var stopWriting = new CancellationTokenSource();
            var writer = Task.Run(() => WriteAsync(db, stopWriting.Token));
            await WaitForMessagesAsync(connection, 100);

            var leaderName = (await new NatsJSContext(connection).GetStreamAsync(Stream)).Info.Cluster!.Leader;
            var leader = cluster.Single(n => n.Name == leaderName);
            leader.Kill();
            await Task.Delay(TimeSpan.FromSeconds(2));
            await leader.StartAsync();
            var atRestart = (await ReadStreamAsync(connection)).Count;
            await WaitForMessagesAsync(connection, atRestart + 100, TimeSpan.FromSeconds(60));
            await stopWriting.CancelAsync();
            await writer;
            await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('final', 'n')");
            await AssertTheStreamHoldsEveryChangeOnceAsync(db, connection, Stream);
            Assert.False(run.Run.IsCompleted, "The run ended.");
            await run.StopAsync();
        }
        finally
        {
            foreach (var node in cluster)
                await node.DisposeAsync();
        }
    }

    /// <summary>The PostgresApplier on a JetStreamConsumer of the whole stream, in a process killed with SIGKILL five times
    /// while a writer commits and an initial snapshot is published: the target ends equal to the source; every change
    /// message of the stream was applied exactly once (each recorded in applied_change in the same target transaction as
    /// its statements); and each source transaction in one target transaction.</summary>
    [Fact]
    public async Task ApplierOnAConsumer_ProcessKilledFiveTimes_AppliesEveryChangeOnce_EachTransactionWhole()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server);
        await target.ExecuteAsync("CREATE TABLE applied_change (commit_lsn pg_lsn NOT NULL, idx int NOT NULL, kind text NOT NULL)");
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) SELECT 'pre' || i, 'n', 1 FROM generate_series(1, 300) i");
        await using var run = await StartPublishingAsync(db, connection, options: new JetStreamPublisherOptions { TransactionEnds = true },
            configure: o => (o.InitialSnapshot, o.SnapshotChunkSize) = (true, 25));
        using var stopWriting = new CancellationTokenSource();
        var writer = Task.Run(() => WriteAsync(db, stopWriting.Token));

        var applier = CrashPublisher.StartApplying(target, nats.Url, Stream);
        await applier.WaitStreamingAsync();
        for (var kill = 1; kill <= 5; kill++)
        {
            // Each process applies something before it is killed.
            var before = await target.ScalarAsync<long>("SELECT count(*) FROM applied_change");
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (await target.ScalarAsync<long>("SELECT count(*) FROM applied_change") < before + 20 && DateTime.UtcNow < deadline)
                await Task.Delay(50);
            await Task.Delay(Random.Shared.Next(0, 300));
            applier.Kill();
            applier = CrashPublisher.StartApplying(target, nats.Url, Stream);
        }
        await stopWriting.CancelAsync();
        await writer;
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('final', 'n')");

        const string rows = "SELECT id || ' ' || name || ' ' || coalesce(rating::text, '-') FROM restaurant ORDER BY id";
        var source = await db.RowsAsync(rows);
        var caughtUp = DateTime.UtcNow.AddSeconds(90);
        while (!(await target.RowsAsync(rows)).SequenceEqual(source) && DateTime.UtcNow < caughtUp)
            await Task.Delay(200);
        applier.Kill();
        Assert.Equal(source, await target.RowsAsync(rows));

        var messages = (await ReadStreamAsync(connection)).Where(m => m.Header(JetStreamPublisher.Headers.Table) == "public.restaurant").ToList();
        var applied = await target.RowsAsync("SELECT commit_lsn::text || ' ' || idx FROM applied_change ORDER BY commit_lsn, idx");
        Assert.Equal(applied.Count, applied.Distinct().Count()); // nothing applied twice
        Assert.Equal(
            messages.Select(m => $"{m.Header(JetStreamPublisher.Headers.CommitLsn)} {m.Header(JetStreamPublisher.Headers.Index)}").Order(StringComparer.Ordinal),
            applied.Order(StringComparer.Ordinal)); // and everything once
        Assert.Contains(messages, m => m.Header(JetStreamPublisher.Headers.Kind) == "read");
        // Each source transaction's changes were written by one target transaction.
        Assert.Empty(await target.RowsAsync("SELECT commit_lsn::text FROM applied_change GROUP BY commit_lsn HAVING count(DISTINCT xmin::text) > 1"));
        Assert.Equal(await target.ScalarAsync<string>("SELECT max(commit_lsn)::text FROM applied_change"),
            await target.ScalarAsync<string>("SELECT commit_lsn::text FROM dbsync_applied WHERE name = 'crash_apply'"));
        await run.StopAsync();
    }

    /// <summary>The applier on a consumer of a partitioned stream's whole stream: a change published to several partitions
    /// (an update that moves its key, a truncate) is applied once, a truncate with inserts after it in its transaction
    /// leaves those rows, and the target equals the source. A consumer of some partitions cannot have an applier, and a
    /// stream published without commit messages is refused with what to change.</summary>
    [Fact]
    public async Task ApplierOnAConsumer_OfAPartitionedStream_AppliesCopiesOnce_AndRefusesWhatItCannotApplyWhole()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server);
        await target.ExecuteAsync("DROP TABLE visit; CREATE TABLE applied_change (commit_lsn pg_lsn NOT NULL, idx int NOT NULL, kind text NOT NULL)");
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await using var run = await StartPublishingAsync(db, connection, options: new JetStreamPublisherOptions { Partitions = 4, TransactionEnds = true });
        await db.ExecuteAsync("INSERT INTO restaurant (id, name, rating) SELECT 'k' || i, 'n', i FROM generate_series(1, 40) i");
        var from = Enumerable.Range(1, 40).Select(i => $"k{i}").First(id => ExpectedPartition(id, 4) != ExpectedPartition("moved", 4));
        await db.ExecuteAsync($"BEGIN; UPDATE restaurant SET id = 'moved' WHERE id = '{from}'; UPDATE restaurant SET rating = 100 WHERE id = 'k7'; COMMIT;");
        await db.ExecuteAsync("BEGIN; TRUNCATE restaurant CASCADE; INSERT INTO restaurant (id, name) SELECT 'after' || i, 'n' FROM generate_series(1, 10) i; COMMIT;");
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('last', 'n')");

        var split = new JetStreamConsumer(connection, new JetStreamConsumerOptions { Stream = Stream, Name = "split", Partitions = [0, 1] });
        var refused = Assert.Throws<InvalidOperationException>(() => split.CreateApplier(target.ConnectionString, "split"));
        Assert.Contains("JetStreamConsumerOptions.Partitions", refused.Message, StringComparison.Ordinal);

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var logs = new LogCapture();
        var consumer = new JetStreamConsumer(connection, new JetStreamConsumerOptions { Stream = Stream, Name = "whole", LoggerFactory = logs });
        await using var applier = consumer.CreateApplier(target.ConnectionString, "whole")
            .MapTable<Restaurant>()
            .Map<Restaurant>(async (change, context, cancellationToken) =>
            {
                await using var record = context.CreateCommand("INSERT INTO applied_change (commit_lsn, idx, kind) VALUES ($1, $2, $3)");
                record.Parameters.Add(new Npgsql.NpgsqlParameter { Value = change.CommitLsn, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.PgLsn });
                record.Parameters.Add(new Npgsql.NpgsqlParameter { Value = change.IndexInTransaction });
                record.Parameters.Add(new Npgsql.NpgsqlParameter { Value = change.Kind.ToString() });
                await record.ExecuteNonQueryAsync(cancellationToken);
            });
        var consuming = consumer.RunAsync(stop.Token);
        const string rows = "SELECT id || ' ' || name || ' ' || coalesce(rating::text, '-') FROM restaurant ORDER BY id";
        var source = await db.RowsAsync(rows);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!(await target.RowsAsync(rows)).SequenceEqual(source) && DateTime.UtcNow < deadline && !consuming.IsCompleted)
            await Task.Delay(100);
        Assert.True(source.SequenceEqual(await target.RowsAsync(rows)), "The target differs from the source. The consumer logged: " + string.Join("; ", logs.Entries.Select(e => e.Text)));
        await stop.CancelAsync();
        await consuming;
        // The moved key and the truncate were published to several partitions, and applied once.
        var published = await ReadStreamAsync(connection);
        Assert.True(published.Count(m => m.Header(JetStreamPublisher.Headers.Kind) == "truncate" && m.Header(JetStreamPublisher.Headers.Table) == "public.restaurant") == 4, "The truncate was not published to every partition.");
        Assert.Equal(
            ["Insert 40", "Update 2", "Truncate 1", "Insert 10", "Insert 1"],
            await target.RowsAsync("SELECT kind || ' ' || count(*) FROM applied_change GROUP BY commit_lsn, kind ORDER BY commit_lsn, min(idx)"));
        Assert.Empty(await target.RowsAsync("SELECT commit_lsn::text || idx FROM applied_change GROUP BY commit_lsn, idx HAVING count(*) > 1"));
        await run.StopAsync();

        // A stream published without commit messages: the applier cannot tell where a transaction ends.
        await using var other = await TestDatabase.CreateAsync(fixture.Server);
        await using var otherRun = await StartPublishingAsync(other, connection, options: new JetStreamPublisherOptions { Stream = "NO_ENDS", SubjectPrefix = "noends", TransactionEnds = false },
            configure: o => (o.SlotName, o.PublicationName) = ("dbsync_no_ends", "dbsync_no_ends"));
        await other.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('a', 'n')");
        await other.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('b', 'n')");
        await WaitForMessagesAsync(connection, 2, name: "NO_ENDS");
        var without = new JetStreamConsumer(connection, new JetStreamConsumerOptions { Stream = "NO_ENDS", Name = "whole", SubjectPrefix = "noends" });
        await using var withoutApplier = without.CreateApplier(target.ConnectionString, "no_ends").MapTable<Restaurant>();
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => without.RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("JetStreamPublisherOptions.TransactionEnds", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, await target.ScalarAsync<long>("SELECT count(*) FROM dbsync_applied WHERE name = 'no_ends'"));
        await otherRun.StopAsync();
    }

    /// <summary>Random single-row and multi-row transactions on restaurant until cancelled; returns how many committed.</summary>
    private static async Task<int> WriteAsync(TestDatabase db, CancellationToken cancellationToken)
    {
        var committed = 0;
        for (var i = 1; !cancellationToken.IsCancellationRequested; i++)
        {
            var sql = (i % 4) switch
            {
                0 => $"UPDATE restaurant SET rating = coalesce(rating, 0) + 1, name = 'u{i}' WHERE id = 'pre{(i % 300) + 1}'",
                1 => $"BEGIN; INSERT INTO restaurant (id, name) VALUES ('w{i}', 'n{i}'); UPDATE restaurant SET name = 'v{i}' WHERE id = 'w{i}'; UPDATE restaurant SET rating = 7 WHERE id = 'pre{(i % 300) + 1}'; COMMIT;",
                2 => $"DELETE FROM restaurant WHERE id = 'w{i - 5}'",
                _ => $"INSERT INTO restaurant (id, name, rating) VALUES ('w{i}', 'n{i}', {i % 5})",
            };
            await db.ExecuteAsync(sql);
            committed++;
            try
            {
                await Task.Delay(10, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return committed;
    }

    /// <summary>Each transaction that changed restaurant, in commit order, with its number of changes, as PostgreSQL's
    /// test_decoding plugin decodes them from the slot 'truth'.</summary>
    private static async Task<List<(uint Xid, int Changes)>> TruthAsync(TestDatabase db)
    {
        var lines = await db.RowsAsync("SELECT xid::text || ' ' || data FROM pg_logical_slot_peek_changes('truth', NULL, NULL)");
        var result = new List<(uint, int)>();
        var counts = new Dictionary<uint, int>();
        foreach (var line in lines)
        {
            var xid = uint.Parse(line[..line.IndexOf(' ', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
            var data = line[(line.IndexOf(' ', StringComparison.Ordinal) + 1)..];
            if (data.StartsWith("table public.restaurant:", StringComparison.Ordinal))
                counts[xid] = counts.GetValueOrDefault(xid) + 1;
            else if (data.StartsWith("COMMIT", StringComparison.Ordinal) && counts.Remove(xid, out var count))
                result.Add((xid, count));
        }
        return result;
    }

    /// <summary>The restaurant table as the stream's messages build it, in the source query's text form and order.</summary>
    private static List<string> Rebuild(List<StreamMessage> messages)
    {
        var state = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var message in messages.Where(m => m.Header(JetStreamPublisher.Headers.Table) == "public.restaurant"))
        {
            var body = Body(message);
            if (body.TryGetValue("old", out var old) && old is Dictionary<object, object?> oldKey)
                state.Remove((string)oldKey["id"]!);
            if (body["row"] is Dictionary<object, object?> row)
                state[(string)row["id"]!] = $"{row["id"]} {row["name"]} {(row["rating"] is null ? "-" : Convert.ToString(row["rating"], System.Globalization.CultureInfo.InvariantCulture))}";
        }
        return [.. state.Keys.Order(StringComparer.Ordinal).Select(k => state[k])];
    }

    private static async Task<long> CountAsync(NatsConnection connection, string stream)
    {
        try
        {
            return (await new NatsJSContext(connection).GetStreamAsync(stream)).Info.State.Messages;
        }
        catch (NatsException)
        {
            return 0;
        }
    }

    /// <summary>tests/DBSync.CrashPublisher as a process of its own.</summary>
    private sealed class CrashPublisher
    {
        private readonly System.Diagnostics.Process _process;
        private readonly TaskCompletionSource _streaming = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private CrashPublisher(System.Diagnostics.Process process) => _process = process;

        public static CrashPublisher Start(TestDatabase db, string natsUrl, int replicas) => Start(natsUrl, new()
        {
            ["DBSYNC_PUBLISH_SOURCE"] = db.ConnectionString,
            ["DBSYNC_PUBLISH_REPLICAS"] = replicas.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });

        /// <summary>The process in its apply mode: a consumer of the whole stream and a PostgresApplier into
        /// <paramref name="target"/>.</summary>
        public static CrashPublisher StartApplying(TestDatabase target, string natsUrl, string stream) => Start(natsUrl, new()
        {
            ["DBSYNC_CRASH_MODE"] = "apply",
            ["DBSYNC_APPLY_TARGET"] = target.ConnectionString,
            ["DBSYNC_APPLY_STREAM"] = stream,
        });

        private static CrashPublisher Start(string natsUrl, Dictionary<string, string> environment)
        {
            var dll = Path.Combine(AppContext.BaseDirectory.Replace("DBSync.IntegrationTests", "DBSync.CrashPublisher", StringComparison.Ordinal), "DBSync.CrashPublisher.dll");
            Assert.True(File.Exists(dll), $"{dll} is missing; build tests/DBSync.CrashPublisher.");
            var start = new System.Diagnostics.ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(dll);
            start.Environment["DBSYNC_PUBLISH_NATS"] = natsUrl;
            foreach (var (name, value) in environment)
                start.Environment[name] = value;
            start.Environment["DBSYNC_TEST_TRANSPORT"] = TestTransport.Current.ToString();
            var process = System.Diagnostics.Process.Start(start)!;
            var publisher = new CrashPublisher(process);
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data == "streaming")
                    publisher._streaming.TrySetResult();
            };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return publisher;
        }

        public Task WaitStreamingAsync() => _streaming.Task.WaitAsync(TimeSpan.FromSeconds(60));

        public void Kill()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit();
            }
            _process.Dispose();
        }
    }

    /// <summary><c>dbsync lag --nats</c>: per slot, its stream's last message (commit position and time) and how far the
    /// server's WAL is past it; a NATS that cannot be reached exits with 3, naming the address.</summary>
    [Fact]
    public async Task CliLag_WithNats_ShowsHowFarTheStreamIsBehind()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var nats = await NatsServer.StartNewAsync();
        await using var connection = nats.Connect();
        await using (var run = await StartPublishingAsync(db, connection))
        {
            await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('lag', 'n')");
            await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "lag"), "the insert");
            await WaitForMessagesAsync(connection, 1);
            await run.StopAsync();
        }
        var commit = (await ReadStreamAsync(connection))[^1].Header(JetStreamPublisher.Headers.CommitLsn);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'later' || i, 'n' FROM generate_series(1, 100) i");
        var expected = await db.ScalarAsync<long>($"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{commit}')::bigint");

        var lag = await Ecosystem.CliTests.ExpectAsync(DBSync.Cli.ExitCodes.Success, db.ConnectionString, "lag", "--slot", Slot, "--nats", nats.Url);
        var row = System.Text.RegularExpressions.Regex.Match(lag.Out, $@"(?m)^{Slot}\s+{Stream}\s+1\s+(?<commit>[0-9A-F]+/[0-9A-F]+)\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+[0-9A-F]+/[0-9A-F]+\s+(?<bytes>[\d,]+)\s");
        Assert.True(row.Success, lag.ToString());
        Assert.Equal(commit, row.Groups["commit"].Value);
        Assert.InRange(long.Parse(row.Groups["bytes"].Value.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture), expected, expected + 1024 * 1024);

        await using var nowhere = NatsServer.NotStarted();
        var unreachable = await Ecosystem.CliTests.ExpectAsync(DBSync.Cli.ExitCodes.Connection, db.ConnectionString, "lag", "--slot", Slot, "--nats", nowhere.Url);
        Assert.Contains($"Cannot reach NATS at {nowhere.Url}", unreachable.Error, StringComparison.Ordinal);

    }

    /// <summary>A client streaming the seed tables into a publisher on <paramref name="connection"/>, recording what it
    /// delivers.</summary>
    private static Task<StreamRun> StartPublishingAsync(TestDatabase db, INatsConnection connection, JetStreamPublisherOptions? options = null,
        Action<DBSyncOptions>? configure = null, Action<JetStreamPublisher>? created = null)
        => StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            var publisher = new JetStreamPublisher(client, connection, options);
            created?.Invoke(publisher);
        }, configure: configure);

    /// <summary>The partition a consumer computes on its own: FNV-1a 64 over the MessagePack array of the key.</summary>
    private static int ExpectedPartition(string id, int partitions)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(1);
        writer.Write(id);
        writer.Flush();
        var hash = 14695981039346656037UL;
        foreach (var b in buffer.WrittenSpan)
            hash = (hash ^ b) * 1099511628211UL;
        return (int)(hash % (ulong)partitions);
    }

    private static Dictionary<object, object?> Body(StreamMessage message)
        => (Dictionary<object, object?>)MessagePackSerializer.Deserialize<object>(message.Data)!;

    private static Dictionary<object, object?> Row(StreamMessage message) => (Dictionary<object, object?>)Body(message)["row"]!;

    /// <summary>The first key column of the message's row (or old key), as text; empty for a truncate.</summary>
    private static string KeyOf(StreamMessage message)
    {
        var body = Body(message);
        var row = (body["row"] ?? (body.TryGetValue("old", out var old) ? old : null)) as Dictionary<object, object?>;
        return row is null ? "" : Convert.ToString(row.Values.First(), System.Globalization.CultureInfo.InvariantCulture)!;
    }

    private static async Task<List<StreamMessage>> WaitForMessagesAsync(NatsConnection connection, int count, TimeSpan? timeout = null, string name = Stream)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var messages = await ReadStreamAsync(connection, name);
            if (messages.Count >= count)
                return messages;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"The stream holds {messages.Count} messages, not {count}: {string.Join("; ", messages.Select(m => m.Subject))}");
            await Task.Delay(100);
        }
    }

    /// <summary>Every change message of the stream (with <paramref name="commits"/>, its commit messages too), by sequence;
    /// none when it does not exist yet. A JetStream that does not answer for a moment (a node restarting, a leader being
    /// elected) is asked again, for up to 30 s.</summary>
    private static async Task<List<StreamMessage>> ReadStreamAsync(NatsConnection connection, string name = Stream, bool commits = false)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(30); ; await Task.Delay(200))
        {
            try
            {
                var messages = await ReadStreamOnceAsync(connection, name);
                return commits ? messages : messages.Where(m => !m.IsCommit).ToList();
            }
            catch (NatsException e) when (DateTime.UtcNow < deadline && !(e is NatsJSApiException { Error.ErrCode: 10059 }))
            {
            }
        }
    }

    private static async Task<List<StreamMessage>> ReadStreamOnceAsync(NatsConnection connection, string name)
    {
        var js = new NatsJSContext(connection);
        INatsJSStream stream;
        try
        {
            stream = await js.GetStreamAsync(name);
        }
        catch (NatsJSApiException e) when (e.Error.ErrCode == 10059)
        {
            return [];
        }
        var messages = new List<StreamMessage>();
        for (var seq = stream.Info.State.FirstSeq; seq <= stream.Info.State.LastSeq && seq > 0; seq++)
        {
            var stored = (await stream.GetAsync(new StreamMsgGetRequest { Seq = seq })).Message;
            var headers = new NatsHeaders();
            if (stored.Hdrs is { } hdrs)
                new NatsHeaderParser(Encoding.UTF8).ParseHeaders(new SequenceReader<byte>(new ReadOnlySequence<byte>(Convert.FromBase64String(hdrs))), headers);
            messages.Add(new StreamMessage(stored.Subject, stored.Data.ToArray(), headers));
        }
        return messages;
    }

    private sealed record StreamMessage(string Subject, byte[] Data, NatsHeaders Headers)
    {
        public string Header(string name) => Headers.TryGetValue(name, out var value) ? value.ToString() : "";

        public bool IsCommit => Header(JetStreamPublisher.Headers.Kind) == "commit";
    }
}

[SyncTable("odd name")]
public partial class OddName
{
    [PrimaryKey]
    public int Id { get; set; }
}
