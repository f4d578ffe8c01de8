using System.Collections.Concurrent;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Replication;
using DBSync.Sample;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>The sample's reservation table (see <see cref="Reservation.CreateSql"/>) is mapped through November's partition
/// alone: a mapping that a publication via the root can never serve.</summary>
[SyncTable("reservation_2026_11")]
public partial class NovemberReservation
{
    [PrimaryKey(Order = 0)] public int Id { get; set; }

    [PrimaryKey(Order = 1)] public DateOnly Day { get; set; }

    public string RestaurantId { get; set; } = "";

    public int Guests { get; set; }

    public string? Note { get; set; }
}

/// <summary>
/// A partitioned table (the sample's <c>reservation</c>, one range partition per month) streams and snapshots as itself:
/// rows moved across partitions, partitions created, attached with rows, detached and truncated while DBSync streams and
/// snapshots, publications that send the partitions under their own names.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Integration")]
public sealed class PartitionTests(PostgresFixture fixture)
{
    private const string SeedRows = """
        CREATE SEQUENCE reservation_ids START 1000;
        INSERT INTO reservation SELECT g, DATE '2026-10-01' + g % 92, 'r-' || g % 7, g % 8 + 1, NULL FROM generate_series(1, 300) g;
        """;

    [Fact]
    public async Task RowsMovedAcrossPartitions_PartitionsCreatedAttachedAndDetached_WhileStreamingAndSnapshotting_ReplicaEqualsSource()
    {
        await using var db = await CreateDatabaseAsync();
        var replica = new ReservationReplica();
        var logs = new LogCapture();
        await using var run = await StartAsync(db, replica, logs, o =>
        {
            o.SnapshotChunkSize = 10;
            o.SnapshotBusyShare = 1;
            o.SnapshotChunkDelay = TimeSpan.FromMilliseconds(200);
        });

        using var stopWriters = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(w => WriteRandomlyAsync(db.ConnectionString, w, stopWriters.Token)).ToArray();
        var snapshot = run.Client.SnapshotAsync<Reservation>();
        await run.WaitUntilAsync(_ => replica.Reads.Count >= 30, "the snapshot to be under way");

        // While the snapshot runs: a partition created, rows moved into it from October (Delete and Insert each), a table
        // with rows attached, and October, emptied, detached.
        await db.ExecuteAsync("CREATE TABLE reservation_2027_01 PARTITION OF reservation FOR VALUES FROM ('2027-01-01') TO ('2027-02-01')");
        await db.ExecuteAsync("""
            CREATE TABLE reservation_2027_02 (LIKE reservation INCLUDING ALL);
            -- Ids far above what the writers' sequence reaches: the replica keys rows by id alone.
            INSERT INTO reservation_2027_02 SELECT g, DATE '2027-02-01' + g % 28, 'r-attached', 2, 'came with the partition' FROM generate_series(900001, 900020) g;
            ALTER TABLE reservation ATTACH PARTITION reservation_2027_02 FOR VALUES FROM ('2027-02-01') TO ('2027-03-01');
            """);
        await db.ExecuteAsync("UPDATE reservation SET day = day + 92 WHERE day < '2026-11-01'");
        await db.ExecuteAsync("ALTER TABLE reservation DETACH PARTITION reservation_2026_10");
        Assert.False(snapshot.IsCompleted, "the snapshot ended before the partitions changed; it must run throughout");

        await snapshot.WaitAsync(TimeSpan.FromSeconds(120));
        await run.WaitUntilAsync(_ => Enumerable.Range(900001, 20).All(id => replica.Reads.ContainsKey(id)), "the attached partition's rows as Read",
            TimeSpan.FromSeconds(60));
        await stopWriters.CancelAsync();
        var operations = (await Task.WhenAll(writers)).Sum();
        Assert.True(operations > 20, $"the writers ran only {operations} statements");

        await WaitForStreamToCatchUpAsync(db, replica, run);
        await replica.AssertEqualsSourceAsync(db);
        Assert.Contains(logs.Entries, e => e.Id.Id == 2021 && e.Text.Contains("reservation_2027_02", StringComparison.Ordinal));
        // January's partition is seen empty, or with the rows moved into it if the watcher read after the move (it is then
        // snapshotted too, which changes nothing).
        Assert.Contains(logs.Entries, e => e.Id.Id is 2020 or 2021 && e.Text.Contains("reservation_2027_01", StringComparison.Ordinal));
        Assert.Contains(logs.Entries, e => e.Id.Id == 2022 && e.Text.Contains("reservation_2026_10", StringComparison.Ordinal) && e.Text.Contains("its 0 row(s)", StringComparison.Ordinal));
        Assert.False(logs.Has(2017), "no change of the partitioned table may be reported as unmapped");
        Assert.False(logs.Has(2023), "no partition was truncated");
    }

    [Fact]
    public async Task TableAttachedWithRows_ItsRowsArriveAsRead_AndOnlyThose()
    {
        await using var db = await CreateDatabaseAsync();
        var replica = new ReservationReplica();
        var logs = new LogCapture();
        var changes = new ConcurrentQueue<PartitionChange>();
        await using var run = await StartAsync(db, replica, logs);
        run.Client.Partitions.Changed += changes.Enqueue;

        await db.ExecuteAsync("""
            CREATE TABLE january (LIKE reservation INCLUDING ALL);
            INSERT INTO january SELECT g, DATE '2027-01-01' + g % 31, 'r-january', 3, NULL FROM generate_series(2001, 2015) g;
            ALTER TABLE reservation ATTACH PARTITION january FOR VALUES FROM ('2027-01-01') TO ('2027-02-01');
            """);
        await run.WaitUntilAsync(_ => replica.Reads.Count >= 15, "the attached rows as Read", TimeSpan.FromSeconds(60));
        await WaitForStreamToCatchUpAsync(db, replica, run);

        // The snapshot is restricted to the new partition: the 300 rows of the others are not read again.
        Assert.Equal(Enumerable.Range(2001, 15), replica.Reads.Keys.Order());
        await replica.AssertEqualsSourceAsync(db, "WHERE day >= '2027-01-01'");
        Assert.Contains(logs.Entries, e => e.Id.Id == 2021 && e.Text.Contains("public.january (FOR VALUES FROM ('2027-01-01') TO ('2027-02-01'))", StringComparison.Ordinal));
        var attached = Assert.Single(changes);
        Assert.Equal((PartitionChangeKind.Attached, "public.january"), (attached.Kind, attached.Partition));
    }

    [Fact]
    public async Task PartitionsAttachedAndDetachedWhileNoInstanceRan_AreSeenByTheNextRun_FromTheCheckpoint()
    {
        // The checkpoint keeps the partitions of the last reading: the next run (or the instance that takes over) compares
        // its first reading with them, instead of taking it for the way things always were.
        await using var db = await CreateDatabaseAsync();
        var replica = new ReservationReplica();
        await using (var first = await StartAsync(db, replica, new LogCapture()))
        {
            await first.Client.SnapshotAsync<Reservation>().WaitAsync(TimeSpan.FromSeconds(60));
            await WaitForStreamToCatchUpAsync(db, replica, first);
            await replica.AssertEqualsSourceAsync(db);
            await first.StopAsync();
        }

        // While no DBSync runs: January comes in with 15 rows, October leaves with its rows.
        await db.ExecuteAsync("""
            CREATE TABLE january (LIKE reservation INCLUDING ALL);
            INSERT INTO january SELECT g, DATE '2027-01-01' + g % 31, 'r-january', 3, NULL FROM generate_series(2001, 2015) g;
            ALTER TABLE reservation ATTACH PARTITION january FOR VALUES FROM ('2027-01-01') TO ('2027-02-01');
            ALTER TABLE reservation DETACH PARTITION reservation_2026_10;
            """);
        var octoberRows = await db.ScalarAsync<long>("SELECT count(*) FROM reservation_2026_10");
        Assert.True(octoberRows > 0);

        var logs = new LogCapture();
        await using var second = await StartAsync(db, replica, logs);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                await WaitForStreamToCatchUpAsync(db, replica, second);
                await replica.AssertEqualsSourceAsync(db);
                break;
            }
            catch (Xunit.Sdk.XunitException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
            }
        }
        Assert.Equal(15, second.Recorder.Of<Reservation>().Count(c => c.Kind == ChangeKind.Read && c.New!.Day >= new DateOnly(2027, 1, 1)));
        Assert.Equal(octoberRows, second.Recorder.Of<Reservation>().Count(c => c.Kind == ChangeKind.Delete && c.Old!.Day < new DateOnly(2026, 11, 1)));
        Assert.Contains(logs.Entries, e => e.Id.Id == 2021 && e.Text.Contains("public.january", StringComparison.Ordinal));
        Assert.True(logs.Has(2028), "The detach of October was not seen.");
    }

    [Fact]
    public async Task PartitionDetachedWithRows_ItsRowsArriveAsDeletes_AndTheReplicaEqualsTheSource()
    {
        await using var db = await CreateDatabaseAsync();
        var replica = new ReservationReplica();
        var logs = new LogCapture();
        var changes = new ConcurrentQueue<PartitionChange>();
        await using var run = await StartAsync(db, replica, logs, o => o.SnapshotChunkSize = 25);
        run.Client.Partitions.Changed += changes.Enqueue;
        await run.Client.SnapshotAsync<Reservation>().WaitAsync(TimeSpan.FromSeconds(60));
        var octoberRows = await db.ScalarAsync<long>("SELECT count(*) FROM reservation_2026_10");
        Assert.True(octoberRows > 25, "October must take more than one chunk");

        // October leaves with its rows; one of them is moved back into the table at once, through November (an Insert
        // the stream delivers: it must not be deleted), and a row of the detached table changes (it is not the table's).
        await db.ExecuteAsync("ALTER TABLE reservation DETACH PARTITION reservation_2026_10");
        await db.ExecuteAsync("""
            WITH moved AS (DELETE FROM reservation_2026_10 WHERE id = (SELECT min(id) FROM reservation_2026_10) RETURNING *)
            INSERT INTO reservation SELECT id, DATE '2026-11-15', restaurant_id, guests, 'came back' FROM moved;
            UPDATE reservation_2026_10 SET note = 'archived';
            """);
        await run.WaitUntilAsync(_ => logs.Has(2028), "the detach to be seen");
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Count() >= 2, "the deletes of the detached rows");
        await WaitForStreamToCatchUpAsync(db, replica, run);
        await replica.AssertEqualsSourceAsync(db);

        var deletes = run.Recorder.Of<Reservation>().Where(c => c.Kind == ChangeKind.Delete && c.OldRowKind == OldRowKind.Full).ToList();
        Assert.Equal(octoberRows - 1, deletes.Count); // every row that left, but the one that came back
        Assert.All(deletes, d => Assert.True(d.Old!.Day < new DateOnly(2026, 11, 1)));
        Assert.False(logs.Has(2022), "a detached partition whose rows can be read is not a lost-rows warning");
        var detached = Assert.Single(changes, c => c.Kind == PartitionChangeKind.Detached);
        Assert.Equal(("public.reservation_2026_10", true), (detached.Partition, detached.Exists));
        Assert.InRange(detached.Rows!.Value, octoberRows - 1, octoberRows); // counted before or after the row moved back
    }

    [Fact]
    public async Task PartitionDroppedWithRows_IsWarnedAbout_WithItsBound_AndRaised()
    {
        await using var db = await CreateDatabaseAsync();
        var logs = new LogCapture();
        var changes = new ConcurrentQueue<PartitionChange>();
        await using var run = await StartAsync(db, new ReservationReplica(), logs);
        run.Client.Partitions.Changed += changes.Enqueue;

        await db.ExecuteAsync("DROP TABLE reservation_2026_12");
        await run.WaitUntilAsync(_ => logs.Has(2022), "the drop warning");

        var warning = Assert.Single(logs.Entries, e => e.Id.Id == 2022).Text;
        Assert.Contains("Partition public.reservation_2026_12 (FOR VALUES FROM ('2026-12-01') TO ('2027-01-01')) of public.reservation was dropped", warning, StringComparison.Ordinal);
        Assert.Equal([(PartitionChangeKind.Detached, "public.reservation_2026_12", false, (long?)null)], changes.Select(c => (c.Kind, c.Partition, c.Exists, c.Rows)).ToList());
    }

    [Fact]
    public async Task TruncateOfOnePartition_IsWarnedAbout_ButTruncateOfTheTableIsDelivered()
    {
        await using var db = await CreateDatabaseAsync();
        var replica = new ReservationReplica();
        var logs = new LogCapture();
        await using var run = await StartAsync(db, replica, logs);
        await WaitForStreamToCatchUpAsync(db, replica, run); // the watcher's first reading is in

        // PostgreSQL publishes no TRUNCATE of a partition alone under publish_via_partition_root.
        await db.ExecuteAsync("TRUNCATE reservation_2026_11");
        await run.WaitUntilAsync(_ => logs.Has(2023), "the warning about November's truncate", TimeSpan.FromSeconds(60));
        Assert.Contains("public.reservation_2026_11 (FOR VALUES FROM ('2026-11-01') TO ('2026-12-01'))", logs.Entries.Single(e => e.Id.Id == 2023).Text, StringComparison.Ordinal);

        // A truncate of the table is published (and gives every partition new storage): delivered, and not warned about.
        await db.ExecuteAsync("TRUNCATE reservation");
        await run.WaitUntilAsync(_ => run.Recorder.Of<Reservation>().Any(c => c.Kind == ChangeKind.Truncate), "the table's truncate");
        // One reading sees one storage replacement per partition: December's next one must come after a reading that saw
        // the table's truncate (judged as explained by it).
        await run.WaitUntilAsync(_ => logs.Entries.Any(e => e.Id.Id == 2026 && e.Text.Contains("reservation_2026_12", StringComparison.Ordinal)),
            "the table's truncate seen by the partition watcher", TimeSpan.FromSeconds(60));
        await db.ExecuteAsync("INSERT INTO reservation VALUES (7, '2026-12-07', 'r', 1, NULL)");
        await db.ExecuteAsync("TRUNCATE reservation_2026_12");
        await run.WaitUntilAsync(_ => logs.Entries.Any(e => e.Id.Id == 2023 && e.Text.Contains("reservation_2026_12", StringComparison.Ordinal)),
            "the warning about December's truncate", TimeSpan.FromSeconds(60));
        Assert.Equal(2, logs.Entries.Count(e => e.Id.Id == 2023));
    }

    [Fact]
    public async Task PublicationOfAnEarlierDBSync_WithoutViaRoot_IsSwitched_AndItsBacklogUnderPartitionsIsDelivered()
    {
        await using var db = await CreateDatabaseAsync();
        // What an earlier DBSync created: the table published without publish_via_partition_root. Changes written before
        // the switch stay sent under the partitions' names.
        await db.ExecuteAsync("CREATE PUBLICATION dbsync_test FOR TABLE reservation");
        await db.ExecuteAsync("SELECT pg_create_logical_replication_slot('dbsync_test', 'pgoutput')");
        var replica = new ReservationReplica();
        replica.Load(await db.RowsAsync("SELECT id || '|' || day || '|' || restaurant_id || '|' || guests || '|' || coalesce(note, '') FROM reservation"));
        await db.ExecuteAsync("""
            INSERT INTO reservation VALUES (1001, '2026-10-05', 'r-backlog', 2, NULL), (1002, '2026-11-05', 'r-backlog', 2, NULL);
            UPDATE reservation SET day = '2026-12-05' WHERE id = 1001;
            DELETE FROM reservation WHERE id = 1;
            """);
        var logs = new LogCapture();
        await using var run = await StartAsync(db, replica, logs);

        Assert.True(await db.ScalarAsync<bool>("SELECT pubviaroot FROM pg_publication WHERE pubname = 'dbsync_test'"));
        Assert.True(logs.Has(1006), "the switch was not logged (event 1006)");
        await db.ExecuteAsync("INSERT INTO reservation VALUES (1003, '2026-11-06', 'r-after', 3, NULL)");
        await WaitForStreamToCatchUpAsync(db, replica, run);
        Assert.Contains(logs.Entries, e => e.Id.Id == 2018 && e.Text.Contains("reservation_2026_10", StringComparison.Ordinal));
        await replica.AssertEqualsSourceAsync(db);
        Assert.Equal([ChangeKind.Insert, ChangeKind.Insert, ChangeKind.Delete, ChangeKind.Insert, ChangeKind.Delete, ChangeKind.Insert],
            run.Recorder.Of<Reservation>().Where(c => (c.New ?? c.Old)!.Id is 1 or > 1000 and < 2000).Select(c => c.Kind).ToList());
    }

    [Fact]
    public async Task SharedPublicationWithoutViaRoot_IsRefused_WithTheStatementToRunAndWhatItChanges()
    {
        await using var db = await CreateDatabaseAsync();
        await db.ExecuteAsync("CREATE PUBLICATION dbsync_test FOR TABLE reservation, users");

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => StartAsync(db, new ReservationReplica(), new LogCapture()));

        Assert.Contains("Publication \"dbsync_test\" sends the changes of partitioned table public.reservation under the names of its partitions", error.Message, StringComparison.Ordinal);
        Assert.Contains("it also publishes public.users, which this client does not map", error.Message, StringComparison.Ordinal);
        Assert.Contains("Run, as the publication's owner: ALTER PUBLICATION \"dbsync_test\" SET (publish_via_partition_root = true);", error.Message, StringComparison.Ordinal);
        Assert.Contains("every subscriber of \"dbsync_test\" receives the changes of each partitioned table in it under the partitioned table's own name", error.Message, StringComparison.Ordinal);
        Assert.False(await db.ScalarAsync<bool>("SELECT pubviaroot FROM pg_publication WHERE pubname = 'dbsync_test'"), "a shared publication must be left as it is");
    }

    [Fact]
    public async Task PartitionPublishedUnderItsOwnName_WhilePublicationChanges_IsDeliveredAsTheTable_NotDropped()
    {
        await using var db = await CreateDatabaseAsync();
        var replica = new ReservationReplica();
        var logs = new LogCapture();
        await using var run = await StartAsync(db, replica, logs);

        // By hand, while DBSync streams: the publication lists November's partition and no longer the table.
        await db.ExecuteAsync("ALTER PUBLICATION dbsync_test SET TABLE reservation_2026_11");
        await db.ExecuteAsync("INSERT INTO reservation VALUES (1001, '2026-11-20', 'r-hand', 2, 'under the partition')");

        await run.WaitUntilAsync(_ => replica.Read(r => r.Rows.ContainsKey(1001)), "the partition's insert, as a reservation");
        Assert.Equal("under the partition", replica.Read(r => r.Rows[1001].Note));
        Assert.Contains(logs.Entries, e => e.Id.Id == 2018 && e.Text.Contains("public.reservation_2026_11", StringComparison.Ordinal) && e.Text.Contains("public.reservation", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MappedPartition_WhosePartitionedTableIsPublishedViaTheRoot_StopsTheStream_InsteadOfLosingItsChanges()
    {
        await using var db = await CreateDatabaseAsync();
        var received = new ConcurrentQueue<Change<NovemberReservation>>();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, _) => client.On<NovemberReservation>(received.Enqueue));

        // By hand, while DBSync streams: November's changes now arrive as changes of reservation.
        await db.ExecuteAsync("ALTER PUBLICATION dbsync_test ADD TABLE reservation");
        await db.ExecuteAsync("INSERT INTO reservation VALUES (1001, '2026-11-20', 'r-hand', 2, NULL)");

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("sent a change of public.reservation", error.Message, StringComparison.Ordinal);
        Assert.Contains("public.reservation_2026_11 (mapped by DBSync.IntegrationTests.NovemberReservation) is a partition of", error.Message, StringComparison.Ordinal);
        Assert.Empty(received);

        // Started again like this, the setup refuses it before streaming.
        var setup = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => StreamRun.StartAsync(db.ConnectionString, (client, _) => client.On<NovemberReservation>(received.Enqueue)));
        Assert.Contains("public.reservation_2026_11 (mapped by DBSync.IntegrationTests.NovemberReservation) is a partition of reservation", setup.Message, StringComparison.Ordinal);
    }

    private async Task<TestDatabase> CreateDatabaseAsync()
    {
        var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(Reservation.CreateSql);
        await db.ExecuteAsync(SeedRows);
        return db;
    }

    /// <summary>Streams reservation into <paramref name="replica"/>; the partition watcher reads the partitions every 200 ms.</summary>
    private static Task<StreamRun> StartAsync(TestDatabase db, ReservationReplica replica, LogCapture logs, Action<DBSyncOptions>? configure = null)
        => StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            client.On<Reservation>(change =>
            {
                recorder.Add(change);
                replica.Apply(change);
            });
        }, configure: o =>
        {
            o.StatusInterval = TimeSpan.FromMilliseconds(200);
            o.LoggerFactory = logs;
            configure?.Invoke(o);
        });

    /// <summary>A marker row inserted and deleted: once its delete is applied, everything committed before is.</summary>
    private static async Task WaitForStreamToCatchUpAsync(TestDatabase db, ReservationReplica replica, StreamRun run)
    {
        await db.ExecuteAsync("INSERT INTO reservation VALUES (-1, '2026-11-30', 'marker', 1, NULL)");
        await run.WaitUntilAsync(_ => replica.Read(r => r.Rows.ContainsKey(-1)), "the marker row");
        await db.ExecuteAsync("DELETE FROM reservation WHERE id = -1");
        await run.WaitUntilAsync(_ => replica.Read(r => !r.Rows.ContainsKey(-1)), "the marker's delete");
    }

    /// <summary>Random inserts, updates, deletes and moves between November's and December's partitions until cancelled.</summary>
    private static async Task<int> WriteRandomlyAsync(string connectionString, int seed, CancellationToken stop)
    {
        const string pick = "(SELECT id, day FROM reservation WHERE day >= '2026-11-01' AND day < '2027-01-01' AND id > 0 ORDER BY random() LIMIT 1)";
        var random = new Random(seed);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        var count = 0;
        string[] statements =
        [
            "INSERT INTO reservation VALUES (nextval('reservation_ids'), DATE '2026-11-01' + {1}, 'r-new', {2}, 'inserted')",
            $"UPDATE reservation SET guests = guests + 1, note = 'updated {{0}}' WHERE (id, day) = {pick}",
            $"UPDATE reservation SET day = CASE WHEN day < '2026-12-01' THEN day + 30 ELSE day - 30 END, note = 'moved {{0}}' WHERE (id, day) = {pick}",
            $"DELETE FROM reservation WHERE (id, day) = {pick}",
        ];
        while (!stop.IsCancellationRequested)
        {
            var sql = string.Format(System.Globalization.CultureInfo.InvariantCulture, statements[random.Next(statements.Length)], $"{seed}_{count}", random.Next(0, 61), random.Next(1, 9));
            try
            {
                await using var command = new NpgsqlCommand(sql, connection);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }
            catch (PostgresException e) when (e.SqlState == "40001")
            {
                // The other writer moved the row to another partition meanwhile: skip this statement.
            }
            count++;
        }
        return count;
    }

    /// <summary>reservation as the changes leave it, applied in delivery order (a Read as an upsert).</summary>
    private sealed class ReservationReplica
    {
        private readonly object _lock = new();

        public Dictionary<int, Reservation> Rows { get; } = [];

        /// <summary>Rows delivered by snapshots, by id.</summary>
        public ConcurrentDictionary<int, Reservation> Reads { get; } = new();

        public T Read<T>(Func<ReservationReplica, T> read)
        {
            lock (_lock)
                return read(this);
        }

        /// <summary>Rows already applied before the stream starts, as <c>id|day|restaurant_id|guests|note</c>.</summary>
        public void Load(IEnumerable<string> rows)
        {
            foreach (var parts in rows.Select(r => r.Split('|')))
            {
                Rows[int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture)] = new Reservation
                {
                    Id = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture),
                    Day = DateOnly.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture),
                    RestaurantId = parts[2],
                    Guests = int.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture),
                    Note = parts[4].Length == 0 ? null : parts[4],
                };
            }
        }

        public void Apply(Change<Reservation> change)
        {
            lock (_lock)
            {
                switch (change.Kind)
                {
                    case ChangeKind.Truncate:
                        Rows.Clear();
                        break;
                    case ChangeKind.Delete:
                        // Ids are unique across days here, so the id alone keys the replica (a row the snapshot has not yet
                        // delivered may be deleted first).
                        if (Rows.TryGetValue(change.Old!.Id, out var held) && held.Day == change.Old.Day)
                            Rows.Remove(change.Old.Id);
                        break;
                    default:
                        if (change.Kind == ChangeKind.Read)
                            Reads[change.New!.Id] = change.New;
                        Rows[change.New!.Id] = change.New;
                        break;
                }
            }
        }

        public async Task AssertEqualsSourceAsync(TestDatabase db, string where = "")
        {
            var source = await db.RowsAsync($"SELECT id || '|' || day || '|' || restaurant_id || '|' || guests || '|' || coalesce(note, '') FROM reservation {where} ORDER BY id");
            lock (_lock)
            {
                var from = where.Length == 0 ? DateOnly.MinValue : new DateOnly(2027, 1, 1);
                Assert.Equal(source, Rows.Values.Where(r => r.Day >= from).OrderBy(r => r.Id)
                    .Select(r => $"{r.Id}|{r.Day:yyyy-MM-dd}|{r.RestaurantId}|{r.Guests}|{r.Note}").ToList());
            }
        }
    }
}
