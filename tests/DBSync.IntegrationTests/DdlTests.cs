using System.Globalization;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Schema;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.IntegrationTests;

/// <summary>A table of its own for the DDL matrix: every column type change the cases make has a property that holds it
/// or one that cannot.</summary>
[SyncTable("ddl_item")]
public partial class DdlItem
{
    [PrimaryKey]
    public long Id { get; set; }

    public string Name { get; set; } = "";

    public long? Amount { get; set; }

    public string? Note { get; set; }

    public string? Mood { get; set; }
}

/// <summary>A table that does not exist when the client starts.</summary>
[SyncTable("ddl_late")]
public partial class DdlLate
{
    [PrimaryKey]
    public int Id { get; set; }

    public string? Label { get; set; }
}

/// <summary>
/// Schema changes captured by the DDL trigger (<see cref="DBSyncOptions.CaptureSchemaChanges"/>): each case runs its DDL
/// inside the window of a snapshot chunk of <c>ddl_item</c> (after the chunk was read, before its high watermark) while a
/// writer inserts, updates, deletes and moves keys of the table; then the in-memory replica built from every delivered
/// change must equal the source, or the stream must have stopped at the statement with the documented error and confirmed
/// nothing past it.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Ddl")]
public sealed class DdlTests(PostgresFixture fixture)
{
    private const string Schema = """
        CREATE TYPE mood AS ENUM ('sad', 'ok');
        CREATE TABLE ddl_item (id bigint PRIMARY KEY, name varchar(10) NOT NULL, amount int, note text, mood mood, extra text);
        INSERT INTO ddl_item SELECT i, 'n' || i, i, 'note ' || i, 'ok', 'x' FROM generate_series(1, 200) i;
        """;

    /// <summary>DDL that the stream follows: the replica converges, and the handlers get the expected changes.</summary>
    public static TheoryData<string, string, string> Convergent => new()
    {
        { "add a nullable column", "ALTER TABLE ddl_item ADD COLUMN added text", "ColumnAdded ddl_item.added: - -> text" },
        { "add a column with a constant default", "ALTER TABLE ddl_item ADD COLUMN added int DEFAULT 7", "ColumnAdded ddl_item.added: - -> integer" },
        { "add a column with a volatile default", "ALTER TABLE ddl_item ADD COLUMN added float8 DEFAULT random()", "ColumnAdded ddl_item.added: - -> double precision (rewritten)" },
        { "drop an unmapped column", "ALTER TABLE ddl_item DROP COLUMN extra", "ColumnDropped ddl_item.extra: text -> -" },
        { "rename an unmapped column", "ALTER TABLE ddl_item RENAME COLUMN extra TO extra2", "ColumnRenamed ddl_item.extra2: extra -> extra2" },
        { "widen int to bigint", "ALTER TABLE ddl_item ALTER COLUMN amount TYPE bigint", "ColumnTypeChanged ddl_item.amount: integer -> bigint (rewritten)" },
        { "widen varchar(10) to text", "ALTER TABLE ddl_item ALTER COLUMN name TYPE text", "ColumnTypeChanged ddl_item.name: character varying(10) -> text" },
        { "a type change with USING that rewrites values", "ALTER TABLE ddl_item ALTER COLUMN amount TYPE bigint USING amount * 1000", "ColumnTypeChanged ddl_item.amount: integer -> bigint (rewritten)" },
        { "SET NOT NULL and DROP NOT NULL", "ALTER TABLE ddl_item ALTER COLUMN note SET NOT NULL; ALTER TABLE ddl_item ALTER COLUMN note DROP NOT NULL",
            "ColumnNullabilityChanged ddl_item.note: NULL -> NOT NULL | ColumnNullabilityChanged ddl_item.note: NOT NULL -> NULL" },
        { "SET DEFAULT", "ALTER TABLE ddl_item ALTER COLUMN note SET DEFAULT 'none'", "ColumnDefaultChanged ddl_item.note: - -> 'none'::text" },
        { "a primary key change under REPLICA IDENTITY FULL", "ALTER TABLE ddl_item REPLICA IDENTITY FULL; ALTER TABLE ddl_item DROP CONSTRAINT ddl_item_pkey, ADD PRIMARY KEY (id, name)",
            "ReplicaIdentityChanged ddl_item: default -> full | PrimaryKeyChanged ddl_item: id -> id, name" },
        { "REPLICA IDENTITY FULL and back", "ALTER TABLE ddl_item REPLICA IDENTITY FULL; ALTER TABLE ddl_item REPLICA IDENTITY DEFAULT",
            "ReplicaIdentityChanged ddl_item: default -> full | ReplicaIdentityChanged ddl_item: full -> default" },
        { "TRUNCATE then DDL in one transaction",
            "BEGIN; TRUNCATE ddl_item; ALTER TABLE ddl_item ADD COLUMN added int; INSERT INTO ddl_item (id, name, amount, note, mood) VALUES (5000, 'after', 1, 'n', 'ok'); COMMIT",
            "ColumnAdded ddl_item.added: - -> integer" },
        { "DDL in a transaction that rolls back", "BEGIN; ALTER TABLE ddl_item ADD COLUMN added int; ROLLBACK", "" },
        { "an index (no change of shape)", "CREATE INDEX ddl_item_note ON ddl_item (note)", "Other ddl_item_note" },
        { "a mapped column dropped and added again in one statement", "ALTER TABLE ddl_item DROP COLUMN note, ADD COLUMN note text",
            "ColumnDropped ddl_item.note: text -> - (rewritten) | ColumnAdded ddl_item.note: - -> text (rewritten)" },
        { "an enum label renamed (its values change)", "ALTER TYPE mood RENAME VALUE 'ok' TO 'fine'", "Other ddl_item (rewritten) | Other mood: sad, ok -> sad, fine" },
        { "an enum value added and used at once", "ALTER TYPE mood ADD VALUE 'happy';; UPDATE ddl_item SET mood = 'happy' WHERE id % 3 = 0",
            "EnumValueAdded mood: sad, ok -> sad, ok, happy" },
        { "DDL on tables no type maps", "CREATE TABLE other (id int PRIMARY KEY);; ALTER TABLE other ADD COLUMN v text;; DROP TABLE other",
            "TableCreated other: - -> id integer | ColumnAdded other.v: - -> text | TableDropped other" },
        { "a partition attached and detached",
            "CREATE TABLE measure (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);; CREATE TABLE measure_2026 (id int, at date, PRIMARY KEY (id, at));; " +
            "ALTER TABLE measure ATTACH PARTITION measure_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');; ALTER TABLE measure DETACH PARTITION measure_2026",
            "TableCreated measure: - -> id integer, at date | TableCreated measure_2026: - -> id integer, at date | Other measure | " +
            "PartitionAttached measure_2026: - -> measure | Other measure | PartitionDetached measure_2026: measure -> -" },
        { "DDL between row changes of one transaction",
            "BEGIN; UPDATE ddl_item SET note = 'before' WHERE id = 1; ALTER TABLE ddl_item ADD COLUMN added int; UPDATE ddl_item SET note = 'after', added = 1 WHERE id = 2; COMMIT",
            "ColumnAdded ddl_item.added: - -> integer" },
        { "DDL in a session with session_replication_role = replica",
            "SET session_replication_role = replica; ALTER TABLE ddl_item ADD COLUMN added int; RESET session_replication_role", "ColumnAdded ddl_item.added: - -> integer" },
    };

    [Theory]
    [MemberData(nameof(Convergent))]
    public async Task DdlInASnapshotWindow_WithWritersRunning_TheReplicaConverges(string name, string ddl, string expected)
    {
        await using var run = await DdlRun.StartAsync(fixture, ddl);
        await run.FinishAsync();

        Assert.Equal(expected, run.DescribeChanges());
        await run.AssertReplicaEqualsSourceAsync();
        _ = name;
    }

    [Fact]
    public async Task RewritingDdl_QueuesASnapshotOfTheTable_WhichDeliversTheNewValues()
    {
        await using var run = await DdlRun.StartAsync(fixture, "ALTER TABLE ddl_item ALTER COLUMN amount TYPE bigint USING amount * 1000");
        await run.FinishAsync();

        // The first snapshot (requested), then the one the rewrite queued, which delivered every row with its new amount.
        var completed = run.Run.Recorder.Progress.OfType<SnapshotTableCompleted>().Where(p => p.Table == "public.ddl_item").ToList();
        Assert.Equal(2, completed.Count);
        var reads = run.Run.Recorder.Of<DdlItem>().Where(c => c.Kind == ChangeKind.Read).ToList();
        Assert.Contains(reads, c => c.New!.Id == 1 && c.New.Amount == 1000);
        await run.AssertReplicaEqualsSourceAsync();
    }

    [Fact]
    public async Task RewritingDdl_WithSnapshotAfterRewriteOff_IsDeliveredButNotSnapshotted()
    {
        // The rewrite comes after the snapshot (inside its windows a chunk read again would carry the new values).
        await using var run = await DdlRun.StartAsync(fixture, null, writers: false, configure: o => o.SnapshotAfterRewrite = false);
        await run.FinishAsync(snapshots: 1);
        await run.Db.ExecuteAsync("ALTER TABLE ddl_item ALTER COLUMN amount TYPE bigint USING amount * 1000");
        await run.FinishAsync(snapshots: 1);

        Assert.Single(run.Run.Recorder.Progress.OfType<SnapshotTableCompleted>(), p => p.Table == "public.ddl_item");
        Assert.Contains(run.Changes, c => c is { Kind: SchemaChangeKind.ColumnTypeChanged, Rewritten: true });
        // The rows the stream never saw change keep their old values in the replica: what the option is for.
        Assert.Equal(1000, await run.Db.ScalarAsync<long>("SELECT amount FROM ddl_item WHERE id = 1"));
        Assert.Equal(1, run.Replica.Read(r => r[1].Amount));
    }

    [Fact]
    public async Task DdlWithoutRowChanges_InTheChunksWindow_HasTheChunkReadAgain()
    {
        await using var run = await DdlRun.StartAsync(fixture, "ALTER TABLE ddl_item ALTER COLUMN note SET DEFAULT 'none'", writers: false);
        await run.FinishAsync();

        var chunks = run.Run.Recorder.Progress.OfType<SnapshotChunkCompleted>().Where(c => c.Table == "public.ddl_item").ToList();
        Assert.Contains(chunks, c => c.Attempts == 2);
        await run.AssertReplicaEqualsSourceAsync();
    }

    /// <summary>DDL that the entity cannot follow: the stream stops at the statement.</summary>
    public static TheoryData<string, string, string> Stopping => new()
    {
        { "drop a mapped column", "ALTER TABLE ddl_item DROP COLUMN note", "Column \"note\" of public.ddl_item (property DdlItem.Note) was dropped by the statement" },
        { "rename a mapped column", "ALTER TABLE ddl_item RENAME COLUMN note TO remark", "Column \"note\" of public.ddl_item (property DdlItem.Note) was renamed to \"remark\"" },
        { "a type change the property cannot hold", "ALTER TABLE ddl_item ALTER COLUMN name TYPE int USING length(name)",
            "Column \"name\" of public.ddl_item changed type from character varying(10) to integer by the statement" },
        { "a primary key on other columns", "ALTER TABLE ddl_item ADD COLUMN code bigint; UPDATE ddl_item SET code = id; ALTER TABLE ddl_item DROP CONSTRAINT ddl_item_pkey, ADD PRIMARY KEY (code)",
            "Table public.ddl_item: its primary key is now (code) by the statement" },
        { "a primary key with more columns", "ALTER TABLE ddl_item DROP CONSTRAINT ddl_item_pkey, ADD PRIMARY KEY (id, name)",
            "Table public.ddl_item: its primary key is now (id, name) by the statement" },
        { "rename the table", "ALTER TABLE ddl_item RENAME TO ddl_thing", "Table public.ddl_item, mapped by DBSync.IntegrationTests.DdlItem, was renamed to public.ddl_thing by the statement" },
        { "drop the table", "DROP TABLE ddl_item", "Table public.ddl_item, mapped by DBSync.IntegrationTests.DdlItem, was dropped by the statement" },
    };

    [Theory]
    [MemberData(nameof(Stopping))]
    public async Task DdlTheEntityCannotFollow_StopsTheStreamAtTheStatement_AndConfirmsNothingPastIt(string name, string ddl, string expected)
    {
        await using var run = await DdlRun.StartAsync(fixture, ddl);
        await run.DdlDone.WaitAsync(TimeSpan.FromSeconds(60));

        var error = await Assert.ThrowsAsync<SchemaMismatchException>(() => run.Run.Run.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("The stream stopped there", error.Message, StringComparison.Ordinal);
        Assert.NotNull(error.Statement);
        Assert.Contains(ddl.Split(';').Last(s => s.Trim().Length > 0).Trim(), error.Statement, StringComparison.Ordinal);
        var at = Assert.IsType<NpgsqlLogSequenceNumber>(error.StatementLsn);
        var confirmed = await run.Db.SlotConfirmedAsync();
        Assert.True(confirmed < at, $"confirmed {confirmed} must stay before the statement's message at {at}");
        _ = name;
    }

    [Fact]
    public async Task WithSkipTable_DdlTheEntityCannotFollow_DropsThatTableAndTheRunGoesOn()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(Schema);
        var changes = new List<SchemaChange>();
        var logs = new LogCapture();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (c, r) =>
        {
            c.On<DdlItem>(x => r.Add(x));
            c.On<DBSync.Sample.Restaurant>(x => r.Add(x));
            c.OnSchemaChange(x => AddUnlessCheckpointTable(changes, x));
        }, configure: o => (o.CaptureSchemaChanges, o.WhenSchemaIncompatible, o.LoggerFactory) = (true, SchemaIncompatible.SkipTable, logs));

        await db.ExecuteAsync("UPDATE ddl_item SET note = 'before' WHERE id = 1");
        await db.ExecuteAsync("BEGIN; ALTER TABLE ddl_item DROP COLUMN note; UPDATE ddl_item SET name = 'after' WHERE id = 2; COMMIT;");
        await db.ExecuteAsync("UPDATE ddl_item SET name = 'later' WHERE id = 3; INSERT INTO restaurant (id, name) VALUES ('r1', 'still here')");
        await run.WaitUntilAsync(r => r.Of<DBSync.Sample.Restaurant>().Count == 1, "the restaurant insert");

        Assert.Equal([1L], run.Recorder.Of<DdlItem>().Select(c => c.New!.Id));
        Assert.Equal("ColumnDropped public.ddl_item.note: text -> -", Assert.Single(changes).ToString());
        Assert.Contains(logs.Entries, e => e.Id.Id == 2037 && e.Text.Contains("public.ddl_item", StringComparison.Ordinal)
            && e.Text.Contains("was dropped by the statement", StringComparison.Ordinal));
        Assert.False(run.Run.IsCompleted);
    }

    [Fact]
    public async Task DdlInATransactionWithRowChangesBeforeAndAfter_KeepsItsPlace()
    {
        await using var run = await DdlRun.StartAsync(fixture, null, writers: false, snapshot: false);
        await run.Db.ExecuteAsync("""
            BEGIN;
            UPDATE ddl_item SET note = 'before' WHERE id = 1;
            ALTER TABLE ddl_item ADD COLUMN added int DEFAULT 3;
            UPDATE ddl_item SET note = 'after', added = 4 WHERE id = 2;
            COMMIT;
            """);
        await run.Run.WaitUntilAsync(r => r.Of<DdlItem>().Count == 2, "the two updates");

        var order = run.Run.Recorder.All.Select(e => e switch
        {
            Change<DdlItem> c => $"{c.Kind} {c.New!.Id} {c.New.Note}",
            SchemaChange s => s.ToString(),
            _ => null,
        }).OfType<string>().ToList();
        Assert.Equal(["Update 1 before", "ColumnAdded public.ddl_item.added: - -> integer", "Update 2 after"], order);
        var change = run.Changes.Single();
        var transaction = run.Run.Recorder.Transactions.Single(t => t.ChangeCount == 2);
        Assert.Equal((transaction.Xid, transaction.CommitLsn), (change.Xid, change.CommitLsn));
        Assert.True(change.Lsn < change.CommitLsn);
        Assert.Equal(typeof(DdlItem), change.EntityType);
        Assert.Equal("ALTER TABLE", change.CommandTag);
        Assert.Contains("ADD COLUMN added int DEFAULT 3", change.Statement, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AQueryStringWithSeveralDdlCommands_IsWrittenIntoTheStreamOnce_AndEveryChangeCarriesIt()
    {
        await using var run = await DdlRun.StartAsync(fixture, null, writers: false, snapshot: false);
        // One query string (a DO block here; a client on the simple query protocol sending "a; b; c" is the same): each of its
        // DDL commands has it as current_query().
        var script = "DO $$ BEGIN ALTER TABLE ddl_item ADD COLUMN a int; ALTER TABLE ddl_item ADD COLUMN b int; -- " + new string('x', 20_000) +
                     "\nALTER TABLE ddl_item ADD COLUMN c int; END $$";
        await run.Db.ExecuteAsync("SELECT pg_create_logical_replication_slot('ddl_peek', 'test_decoding')");
        await run.Db.ExecuteAsync(script);
        await run.Db.ExecuteAsync("UPDATE ddl_item SET note = 'marker' WHERE id = 1");
        await run.Run.WaitUntilAsync(r => r.Of<DdlItem>().Count == 1, "the marker update");

        Assert.Equal(["a", "b", "c"], run.Changes.Select(c => c.Column));
        Assert.All(run.Changes, c => Assert.Equal(script, c.Statement));
        // The script's text is in the first message only: the three messages together are far smaller than three copies.
        var sizes = await run.Db.RowsAsync("SELECT length(data)::text FROM pg_logical_slot_get_changes('ddl_peek', NULL, NULL) WHERE data LIKE 'message: transactional: 1 prefix: dbsync.ddl%'");
        Assert.Equal(3, sizes.Count);
        Assert.InRange(sizes.Sum(int.Parse), script.Length, 2 * script.Length);
        await run.Db.ExecuteAsync("SELECT pg_drop_replication_slot('ddl_peek')");
    }

    [Fact]
    public async Task DdlOnATableNoTypeMaps_IsAnEventAndNothingElse_TableCreatedRenamedDropped()
    {
        await using var run = await DdlRun.StartAsync(fixture, null, writers: false, snapshot: false);
        await run.Db.ExecuteAsync("CREATE TABLE other (id int PRIMARY KEY, v text)");
        await run.Db.ExecuteAsync("ALTER TABLE other RENAME TO other2");
        await run.Db.ExecuteAsync("DROP TABLE other2");
        await run.Db.ExecuteAsync("UPDATE ddl_item SET note = 'marker' WHERE id = 1");
        await run.Run.WaitUntilAsync(r => r.Of<DdlItem>().Count == 1, "the marker update");

        Assert.Equal(
            "TableCreated public.other: - -> id integer, v text | TableRenamed public.other2: public.other -> public.other2 | TableDropped public.other2",
            string.Join(" | ", run.Changes.Select(c => c.ToString())));
        Assert.All(run.Changes, c => Assert.Null(c.EntityType));
        Assert.Equal(["CREATE TABLE", "ALTER TABLE", "DROP TABLE"], run.Changes.Select(c => c.CommandTag));
        Assert.False(run.Run.Run.IsCompleted);
    }

    [Fact]
    public async Task EnumValueAdded_IsAnEvent_AndTheNewValueIsDeliveredAtOnce()
    {
        await using var run = await DdlRun.StartAsync(fixture, null, writers: false, snapshot: false);
        await run.Db.ExecuteAsync("ALTER TYPE mood ADD VALUE 'happy'");
        await run.Db.ExecuteAsync("UPDATE ddl_item SET mood = 'happy' WHERE id = 1");
        await run.Run.WaitUntilAsync(r => r.Of<DdlItem>().Count == 1, "the update");

        var added = Assert.Single(run.Changes);
        Assert.Equal((SchemaChangeKind.EnumValueAdded, "public.mood", "sad, ok, happy"), (added.Kind, added.Object, added.After));
        Assert.Equal("sad, ok", added.Before);
        Assert.Equal("happy", run.Run.Recorder.Of<DdlItem>().Single().New!.Mood);
    }

    [Fact]
    public async Task ABurstOfAThousandDdlStatements_IsDeliveredInOrder_AndTheReplicaConverges()
    {
        await using var run = await DdlRun.StartAsync(fixture, null, writers: true, snapshot: true);
        await using (var connection = await run.Db.OpenAsync())
        {
            var batch = connection.CreateBatch();
            for (var i = 0; i < 1000; i++)
                batch.BatchCommands.Add(new NpgsqlBatchCommand($"ALTER TABLE ddl_item ALTER COLUMN amount SET DEFAULT {i}"));
            await batch.ExecuteNonQueryAsync();
        }
        await run.FinishAsync(snapshots: 1);

        var defaults = run.Changes.Where(c => c.Kind == SchemaChangeKind.ColumnDefaultChanged).Select(c => c.After).ToList();
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => i.ToString(CultureInfo.InvariantCulture)), defaults);
        await run.AssertReplicaEqualsSourceAsync();
    }

    [Fact]
    public async Task AMappedTableCreatedAfterStart_IsAddedToThePublicationAndSnapshotted_RowsOfItsCreatingTransactionIncluded()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(Schema);
        var rows = new Dictionary<int, string?>();
        var changes = new List<SchemaChange>();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (c, r) =>
        {
            c.On<DdlItem>(x => r.Add(x));
            c.On<DdlLate>(x =>
            {
                r.Add(x);
                lock (rows)
                {
                    if (x.Kind == ChangeKind.Delete)
                        rows.Remove(x.Old!.Id);
                    else
                        rows[x.New!.Id] = x.New.Label;
                }
            });
            c.OnSchemaChange(x => AddUnlessCheckpointTable(changes, x));
        }, configure: o => o.CaptureSchemaChanges = true);

        // The rows written in the creating transaction (and any before the table joins the publication) are not in the
        // stream: the snapshot queued at its CREATE TABLE delivers them.
        await db.ExecuteAsync("BEGIN; CREATE TABLE ddl_late (id int PRIMARY KEY, label text); INSERT INTO ddl_late VALUES (1, 'created with it'), (3, 'gone'); COMMIT;");
        await db.ExecuteAsync("INSERT INTO ddl_late VALUES (2, 'after')");
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Any(p => p.Table == "public.ddl_late"), "the snapshot of ddl_late");
        await db.ExecuteAsync("UPDATE ddl_late SET label = 'changed' WHERE id = 1; DELETE FROM ddl_late WHERE id = 3");
        await run.WaitUntilAsync(_ => { lock (rows) return rows.Count == 2 && rows[1] == "changed"; }, "the update and delete after the snapshot");

        lock (rows)
            Assert.Equal([(1, "changed"), (2, "after")], rows.OrderBy(r => r.Key).Select(r => (r.Key, r.Value)));
        var created = Assert.Single(changes, c => c.Kind == SchemaChangeKind.TableCreated);
        Assert.Equal(("public.ddl_late", typeof(DdlLate)), (created.Table, created.EntityType));
        Assert.Equal(1L, await db.ScalarAsync<long>("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'dbsync_test' AND tablename = 'ddl_late'"));
    }

    [Fact]
    public async Task ARestartAfterTheDdl_DeliversItAgain_AndQueuesTheRewriteSnapshotOnce()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(Schema);
        var first = new List<SchemaChange>();
        await using (var run = await StreamRun.StartAsync(db.ConnectionString, (c, r) => c.On<DdlItem>(x => r.Add(x)).OnSchemaChange(x => AddUnlessCheckpointTable(first, x)),
            configure: o => o.CaptureSchemaChanges = true))
        {
            await db.ExecuteAsync("ALTER TABLE ddl_item ALTER COLUMN amount TYPE bigint USING amount * 2; UPDATE ddl_item SET note = 'x' WHERE id = 3");
            await run.WaitUntilAsync(r => r.Of<DdlItem>().Count(c => c.Kind == ChangeKind.Read) == 200, "the rewrite's snapshot");
            await run.StopAsync();
        }
        Assert.Single(first);

        // The slot confirmed the DDL's transaction: a restart does not see it again, and no second snapshot comes.
        var second = new List<SchemaChange>();
        await using (var run = await StreamRun.StartAsync(db.ConnectionString, (c, r) => c.On<DdlItem>(x => r.Add(x)).OnSchemaChange(x => AddUnlessCheckpointTable(second, x)),
            configure: o => o.CaptureSchemaChanges = true))
        {
            await db.ExecuteAsync("UPDATE ddl_item SET note = 'y' WHERE id = 4");
            await run.WaitUntilAsync(r => r.Of<DdlItem>().Count == 1, "the update after the restart");
            await Task.Delay(500);
            Assert.DoesNotContain(run.Recorder.Of<DdlItem>(), c => c.Kind == ChangeKind.Read);
        }
        Assert.Empty(second);
    }

    [Fact]
    public async Task WithoutTheRightsToInstallTheTrigger_TheErrorNamesTheRoleAndWhatADbaRuns_AndTheCliInstallsIt()
    {
        var db = await TestDatabase.CreateAsync(fixture.Server);
        var role = $"noddl_{db.Name}";
        try
        {
            await db.ExecuteAsync(Schema);
            await db.ExecuteAsync($"CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'secret-pw-2'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; " +
                $"GRANT CREATE ON DATABASE \"{db.Name}\" TO {role}; ALTER TABLE ddl_item OWNER TO {role};");
            var connectionString = fixture.Server.ConnectionStringFor(db.Name, role, "secret-pw-2");

            var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => StreamRun.StartAsync(connectionString, (c, _) => c.On<DdlItem>(_ => { }),
                configure: o => o.CaptureSchemaChanges = true));
            Assert.Contains($"role \"{role}\" may not install it", error.Message, StringComparison.Ordinal);
            Assert.Contains("dbsync ddl install", error.Message, StringComparison.Ordinal);
            Assert.Contains("dbsync ddl print", error.Message, StringComparison.Ordinal);
            Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"));

            var print = await Ecosystem.CliTests.ExpectAsync(Cli.ExitCodes.Success, null, "ddl", "print");
            Assert.Contains("CREATE EVENT TRIGGER dbsync_ddl_command_end", print.Out, StringComparison.Ordinal);
            await Ecosystem.CliTests.ExpectAsync(Cli.ExitCodes.NotFound, db.ConnectionString, "ddl", "status");
            // What a DBA runs: the printed script, as it is (psql -f would send the same statements).
            await db.ExecuteAsync(print.Out);
            var status = await Ecosystem.CliTests.ExpectAsync(Cli.ExitCodes.Success, db.ConnectionString, "ddl", "status");
            Assert.Contains($"installed on database {db.Name}: version {DdlCaptureSql.Version}.", status.Out, StringComparison.Ordinal);
            var install = await Ecosystem.CliTests.ExpectAsync(Cli.ExitCodes.Success, db.ConnectionString, "ddl", "install");
            Assert.Contains($"Installed the DDL capture trigger (version {DdlCaptureSql.Version}) again", install.Out, StringComparison.Ordinal);

            // Installed by a superuser, the trigger serves the role: its DDL reaches the stream.
            var changes = new List<SchemaChange>();
            await using (var run = await StreamRun.StartAsync(connectionString, (c, r) => c.On<DdlItem>(x => r.Add(x)).OnSchemaChange(x => AddUnlessCheckpointTable(changes, x)),
                configure: o => o.CaptureSchemaChanges = true))
            {
                await using (var owner = new NpgsqlConnection(connectionString))
                {
                    await owner.OpenAsync();
                    await using var command = new NpgsqlCommand("ALTER TABLE ddl_item ADD COLUMN added int; UPDATE ddl_item SET note = 'n' WHERE id = 1", owner);
                    await command.ExecuteNonQueryAsync();
                }
                await run.WaitUntilAsync(r => r.Of<DdlItem>().Count == 1, "the update");
                Assert.Equal("ColumnAdded public.ddl_item.added: - -> integer", Assert.Single(changes).ToString());
            }

            var uninstall = await Ecosystem.CliTests.ExpectAsync(Cli.ExitCodes.Success, db.ConnectionString, "ddl", "uninstall", "--yes");
            Assert.Contains("Removed the DDL capture trigger", uninstall.Out, StringComparison.Ordinal);
            await Ecosystem.CliTests.ExpectAsync(Cli.ExitCodes.NotFound, db.ConnectionString, "ddl", "status");
            Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'dbsync%'"));
        }
        finally
        {
            await db.DisposeAsync();
            await fixture.Server.ExecuteAsync($"DROP ROLE IF EXISTS {role}");
        }
    }

    /// <summary>DBSync's own checkpoint table, created on the first save: a DDL like any other, which these tests leave out.</summary>
    private static bool IsCheckpointTable(SchemaChange change) => change.Table == "public.dbsync_checkpoint";

    private static void AddUnlessCheckpointTable(List<SchemaChange> changes, SchemaChange change)
    {
        if (!IsCheckpointTable(change))
            changes.Add(change);
    }

    /// <summary>One case: the table, a client following it with the DDL capture on, a replica of what it delivered, a
    /// writer, a snapshot whose third chunk's window gets the case's DDL.</summary>
    private sealed class DdlRun : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stopWriting = new();
        private readonly List<SchemaChange> _changes = [];
        private Task _writer = Task.CompletedTask;
        private Task _snapshot = Task.CompletedTask;

        private DdlRun(TestDatabase db) => Db = db;

        public TestDatabase Db { get; }

        public StreamRun Run { get; private set; } = null!;

        public ItemReplica Replica { get; } = new();

        /// <summary>The case's DDL ran (in the third chunk's window, or at once without a snapshot).</summary>
        public Task DdlDone => _ddlDone.Task;

        private readonly TaskCompletionSource _ddlDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IReadOnlyList<SchemaChange> Changes
        {
            get
            {
                lock (_changes)
                    return [.. _changes];
            }
        }

        public static async Task<DdlRun> StartAsync(PostgresFixture fixture, string? ddl, bool writers = true, bool snapshot = true, Action<DBSyncOptions>? configure = null)
        {
            var run = new DdlRun(await TestDatabase.CreateAsync(fixture.Server));
            await run.Db.ExecuteAsync(Schema);
            var chunks = 0;
            run.Run = await StreamRun.StartAsync(run.Db.ConnectionString, (client, recorder) =>
            {
                client.On<DdlItem>(c =>
                {
                    recorder.Add(c);
                    run.Replica.Apply(c);
                });
                client.OnSchemaChange(c =>
                {
                    if (IsCheckpointTable(c))
                        return;
                    recorder.Add(c);
                    lock (run._changes)
                        run._changes.Add(c);
                });
                if (ddl is not null && snapshot)
                {
                    AfterChunkReadSql.Install(client, async (_, _, _) =>
                    {
                        if (Interlocked.Increment(ref chunks) != 3)
                            return;
                        try
                        {
                            await run.ExecuteDdlAsync(ddl);
                            run._ddlDone.TrySetResult();
                        }
                        catch (Exception e)
                        {
                            run._ddlDone.TrySetException(e);
                        }
                    });
                }
            }, configure: o =>
            {
                o.CaptureSchemaChanges = true;
                o.SnapshotChunkSize = 20;
                configure?.Invoke(o);
            });
            if (writers)
                run._writer = Task.Run(() => WriteAsync(run.Db.ConnectionString, run._stopWriting.Token));
            if (snapshot)
                run._snapshot = run.Run.Client.SnapshotAsync<DdlItem>();
            if (ddl is null)
                run._ddlDone.TrySetResult();
            if (ddl is not null && !snapshot)
            {
                await run.ExecuteDdlAsync(ddl);
                run._ddlDone.TrySetResult();
            }
            return run;
        }

        /// <summary>Waits for the DDL and the snapshots (the requested one, and one a rewrite queued), stops the writer and
        /// waits until the stream has delivered everything written.</summary>
        public async Task FinishAsync(int? snapshots = null)
        {
            if (_snapshot != Task.CompletedTask || snapshots is null)
                await DdlDone.WaitAsync(TimeSpan.FromSeconds(60));
            await _snapshot.WaitAsync(TimeSpan.FromSeconds(90));
            await Task.Delay(300);
            await _stopWriting.CancelAsync();
            await _writer;
            var expected = snapshots ?? (_snapshot == Task.CompletedTask ? 0 : 1) + (Changes.Any(c => c.Rewritten && c.EntityType == typeof(DdlItem)) ? 1 : 0);
            await Run.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Count(p => p.Table == "public.ddl_item") >= expected,
                $"{expected} snapshot(s) of ddl_item", TimeSpan.FromSeconds(90));
            await Db.ExecuteAsync("INSERT INTO ddl_item (id, name, amount, note, mood) VALUES (-1, 'marker', 0, 'm', 'sad')");
            await Run.WaitUntilAsync(_ => Replica.Read(r => r.ContainsKey(-1)), "the marker row");
            await Db.ExecuteAsync("DELETE FROM ddl_item WHERE id = -1");
            await Run.WaitUntilAsync(_ => Replica.Read(r => !r.ContainsKey(-1)), "the marker's delete");
        }

        /// <summary>The schema changes, as <see cref="SchemaChange.ToString"/> writes them without the schema.</summary>
        public string DescribeChanges() => string.Join(" | ", Changes.Select(c => c.ToString().Replace("public.", "", StringComparison.Ordinal)));

        /// <summary>Runs a case's DDL: parts separated by ";;" one after the other, each in a transaction of its own.</summary>
        public async Task ExecuteDdlAsync(string ddl)
        {
            foreach (var part in ddl.Split(";;", StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                await Db.ExecuteAsync(part);
        }

        public async Task AssertReplicaEqualsSourceAsync()
        {
            var source = await Db.RowsAsync("SELECT concat_ws('|', id, name, coalesce(amount::text, 'null'), coalesce(note, 'null'), coalesce(mood::text, 'null')) FROM ddl_item");
            var replica = Replica.Read(r => r.Values.Select(i => string.Join('|', i.Id, i.Name, i.Amount?.ToString(CultureInfo.InvariantCulture) ?? "null",
                i.Note ?? "null", i.Mood ?? "null")).ToList());
            Assert.Equal(source.Order(StringComparer.Ordinal), replica.Order(StringComparer.Ordinal));
        }

        public async ValueTask DisposeAsync()
        {
            await _stopWriting.CancelAsync();
            try
            {
                await _writer;
            }
            catch (OperationCanceledException)
            {
            }
            await Run.DisposeAsync();
            await Db.DisposeAsync();
            _stopWriting.Dispose();
        }

        /// <summary>Inserts, updates, deletes and key moves on ddl_item until stopped; statements the table's new shape
        /// refuses (after a DDL that stops the stream) are skipped.</summary>
        private static async Task WriteAsync(string connectionString, CancellationToken stop)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(CancellationToken.None);
            var random = new Random(7);
            for (var i = 1; !stop.IsCancellationRequested; i++)
            {
                var sql = random.Next(4) switch
                {
                    0 => $"INSERT INTO ddl_item (id, name, amount, note, mood) VALUES ({10_000 + i}, 'w{i % 1000}', {i % 50}, 'w', 'sad')",
                    1 => $"UPDATE ddl_item SET note = 'u{i}', amount = amount + 1 WHERE id = (SELECT id FROM ddl_item WHERE id > 0 ORDER BY random() LIMIT 1)",
                    2 => "DELETE FROM ddl_item WHERE id = (SELECT id FROM ddl_item WHERE id > 0 ORDER BY random() LIMIT 1)",
                    _ => $"UPDATE ddl_item SET id = {1_000_000 + i} WHERE id = (SELECT id FROM ddl_item WHERE id > 0 AND id < 1000000 ORDER BY random() LIMIT 1)",
                };
                try
                {
                    await using var command = new NpgsqlCommand(sql, connection);
                    await command.ExecuteNonQueryAsync(CancellationToken.None);
                }
                catch (PostgresException)
                {
                    // the table's shape refuses it (a dropped or renamed column, a dropped table): the case's own business
                }
                await Task.Delay(5, CancellationToken.None);
            }
        }
    }

    /// <summary>The rows of ddl_item, kept by applying every delivered change in order.</summary>
    private sealed class ItemReplica
    {
        private readonly Dictionary<long, DdlItem> _rows = [];

        public T Read<T>(Func<Dictionary<long, DdlItem>, T> read)
        {
            lock (_rows)
                return read(_rows);
        }

        public void Apply(Change<DdlItem> change)
        {
            lock (_rows)
            {
                switch (change.Kind)
                {
                    case ChangeKind.Truncate:
                        _rows.Clear();
                        break;
                    case ChangeKind.Delete:
                        _rows.Remove(change.Old!.Id);
                        break;
                    default:
                        if (change.Old is not null)
                            _rows.Remove(change.Old.Id);
                        _rows[change.New!.Id] = change.New;
                        break;
                }
            }
        }
    }
}

/// <summary>pgbench's accounts table, as a user would map it.</summary>
[SyncTable("pgbench_accounts")]
public partial class PgbenchAccount
{
    [PrimaryKey]
    public int Aid { get; set; }

    public int? Bid { get; set; }

    public long? Abalance { get; set; }

    public string? Filler { get; set; }
}

/// <summary>The DDL capture on a workload not written for it: pgbench's tables and its TPC-B-like transactions, two
/// rewriting migrations while it runs, and the server restarted underneath.</summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Ddl")]
public sealed class DdlPgbenchTests
{
    [Fact]
    public async Task Pgbench_WithRewritingMigrationsAndAServerRestart_TheReplicaOfItsAccountsEqualsTheSource()
    {
        await using var server = await DBSync.Testing.PostgresServer.StartAsync(forceLocal: true);
        await using var db = await TestDatabase.CreateAsync(server, seedSchema: false);
        var connection = new NpgsqlConnectionStringBuilder(db.ConnectionString);
        var pgbench = Path.Combine(server.BinDirectory ?? "/usr/lib/postgresql/15/bin", "pgbench");
        async Task<int> PgbenchAsync(params string[] arguments)
        {
            var start = new System.Diagnostics.ProcessStartInfo(pgbench) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in (string[])[.. arguments, "-h", connection.Host!, "-p", connection.Port.ToString(CultureInfo.InvariantCulture), "-U", connection.Username!, db.Name])
                start.ArgumentList.Add(argument);
            using var process = System.Diagnostics.Process.Start(start)!;
            await Task.WhenAll(process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
            await process.WaitForExitAsync();
            return process.ExitCode;
        }
        Assert.Equal(0, await PgbenchAsync("-i", "-q", "-s", "1"));

        var rows = new Dictionary<int, PgbenchAccount>();
        var changes = new List<SchemaChange>();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            client.On<PgbenchAccount>(c =>
            {
                lock (rows)
                {
                    if (c.Kind == ChangeKind.Delete)
                        rows.Remove(c.Old!.Aid);
                    else if (c.Kind == ChangeKind.Truncate)
                        rows.Clear();
                    else
                        rows[c.New!.Aid] = c.New;
                }
            });
            client.OnSchemaChange(c =>
            {
                lock (changes)
                    changes.Add(c);
            });
        }, configure: o => (o.CaptureSchemaChanges, o.SnapshotChunkSize, o.ReconnectDelay) = (true, 5000, TimeSpan.FromMilliseconds(300)));
        var snapshot = run.Client.SnapshotAsync<PgbenchAccount>();

        // pgbench's own transactions (update an account, a teller, a branch, insert a history row) while the migrations run.
        var workload = PgbenchAsync("-c", "2", "-j", "1", "-T", "12", "-n");
        await Task.Delay(2000);
        await db.ExecuteAsync("ALTER TABLE pgbench_accounts ADD COLUMN touched timestamptz DEFAULT clock_timestamp()");
        await Task.Delay(2000);
        await server.RestartAsync();
        NpgsqlConnection.ClearAllPools();
        await db.ExecuteAsync("ALTER TABLE pgbench_accounts ALTER COLUMN abalance TYPE bigint USING abalance * 2");
        await workload; // its clients cut by the restart end early: what they committed counts
        await snapshot.WaitAsync(TimeSpan.FromSeconds(120));
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCompleted>().Count(p => p.Table == "public.pgbench_accounts") >= 3,
            "the snapshots queued by the two rewrites", TimeSpan.FromSeconds(120));
        await db.ExecuteAsync("UPDATE pgbench_accounts SET filler = 'marker' WHERE aid = 1");
        await run.WaitUntilAsync(_ => { lock (rows) return rows.TryGetValue(1, out var a) && a.Filler?.TrimEnd() == "marker"; }, "the marker update");

        // filler is char(84): blank-padded on both sides, compared without the padding.
        var source = await db.RowsAsync("SELECT concat_ws('|', aid, bid, abalance, rtrim(filler)) FROM pgbench_accounts");
        List<string> replica;
        lock (rows)
            replica = [.. rows.Values.Select(a => string.Join('|', a.Aid, a.Bid, a.Abalance, a.Filler?.TrimEnd()))];
        Assert.Equal(100_000, source.Count);
        Assert.Equal(source.Order(StringComparer.Ordinal), replica.Order(StringComparer.Ordinal));
        lock (changes)
        {
            Assert.Contains(changes, c => c is { Kind: SchemaChangeKind.ColumnAdded, Column: "touched", Rewritten: true });
            Assert.Contains(changes, c => c is { Kind: SchemaChangeKind.ColumnTypeChanged, Column: "abalance", Rewritten: true });
        }
    }
}
