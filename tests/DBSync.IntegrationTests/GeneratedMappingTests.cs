using DBSync.IntegrationTests.Infrastructure;
using DBSync.IntegrationTests.Types;
using DBSync.Sample;
using DBSync.Testing;

namespace DBSync.IntegrationTests;

/// <summary>
/// The generated applier mapping (<see cref="PostgresApplier.MapTable{T}"/>): every mapped type goes from a source table
/// into a second database through generated statements, batches and COPY, and ends there equal, column by column, to
/// the source; a statement that fails names the change; a target table that cannot take the rows is named at first use.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class GeneratedMappingTests(PostgresFixture fixture)
{
    private const string RestaurantCopy = """
        CREATE TABLE restaurant_copy (id varchar(255) PRIMARY KEY, name varchar(255) NOT NULL, description text, address text,
                                      rating int CHECK (rating < 100), tags text[]);
        """;

    /// <summary>
    /// All of TypeRow's columns (every mapped type, their edge values: infinities, NaN, enums by label, arrays of one to
    /// three dimensions, json as written, networks with masks, 1 MB values): rows there before the run arrive through the
    /// initial snapshot (COPY, several chunks), then updates of every column, updates that leave a 1 MB out-of-line value
    /// unchanged (with and without a key change), key changes, deletes, a snapshot over a target that drifted (rows missing
    /// and rows changed), and a truncate. After each step the target equals the source, column by column, as text.
    /// </summary>
    [Fact]
    [Trait("Category", "Types")]
    public async Task EveryType_SnapshotUpdatesToastKeyMovesDeletesTruncate_TargetEqualsSourceAfterEachStep()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await source.ExecuteAsync(TypeRow.CreateSql + "ALTER TABLE type_round_trip ALTER COLUMN text SET STORAGE EXTERNAL;");
        await target.ExecuteAsync(TypeRow.CreateSql);
        var columns = TypeRoundTripTests.Columns;
        var rows = columns.Max(c => c.Values.Length) + 1;
        for (var k = 0; k < rows; k++)
            await source.ExecuteAsync($"INSERT INTO type_round_trip (id, {string.Join(", ", columns.Select(c => c.Name))}) VALUES ({k}, {string.Join(", ", columns.Select(c => c.Sql(k, rows)))})");

        PostgresApplier? applier = null;
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, recorder) =>
        {
            applier = new PostgresApplier(client, target.ConnectionString, "types").MapTable<TypeRow>();
            client.On<TypeRow>(c => recorder.Add(c));
        }, configure: o =>
            {
                o.InitialSnapshot = true;
                o.SnapshotChunkSize = 3;
            });
        await using var _ = applier;
        await AssertTargetEqualsSourceAsync(source, target, run, "the initial snapshot");

        for (var k = 0; k < rows; k++)
            await source.ExecuteAsync($"UPDATE type_round_trip SET {string.Join(", ", columns.Select(c => $"{c.Name} = {c.Sql((k + 1) % rows, rows)}"))} WHERE id = {k}");
        await AssertTargetEqualsSourceAsync(source, target, run, "updates of every column");

        // The 1 MB text is stored out of line, so updates of other columns send it as unchanged TOAST.
        var big = await source.ScalarAsync<int>("SELECT id FROM type_round_trip WHERE length(text) > 100000 ORDER BY id LIMIT 1");
        await source.ExecuteAsync($"UPDATE type_round_trip SET int4 = 42, mood = 'sad' WHERE id = {big}");
        await AssertTargetEqualsSourceAsync(source, target, run, "an update that left the 1 MB text unchanged");
        Assert.Contains(run.Recorder.Of<TypeRow>(), c => c.Kind == ChangeKind.Update && c.IsUnchangedToast("text") && c.Old is null);
        await source.ExecuteAsync($"UPDATE type_round_trip SET id = 1000, int4 = 43 WHERE id = {big}");
        await AssertTargetEqualsSourceAsync(source, target, run, "a key move that left the 1 MB text unchanged");
        Assert.Contains(run.Recorder.Of<TypeRow>(), c => c.Kind == ChangeKind.Update && c.IsUnchangedToast("text") && c.Old is { Id: var old } && old == big);

        await source.ExecuteAsync("BEGIN; UPDATE type_round_trip SET id = id + 100 WHERE id < 3; DELETE FROM type_round_trip WHERE id IN (3, 4); COMMIT;");
        await AssertTargetEqualsSourceAsync(source, target, run, "key moves and deletes");

        // The target drifted: a snapshot copies every row again over it (COPY, then upserts of existing keys too).
        await target.ExecuteAsync("DELETE FROM type_round_trip WHERE id % 2 = 0; UPDATE type_round_trip SET int4 = -1, text = 'drifted'");
        await run.Client.SnapshotAsync<TypeRow>().WaitAsync(TimeSpan.FromSeconds(120));
        await AssertTargetEqualsSourceAsync(source, target, run, "a snapshot over a drifted target");

        await source.ExecuteAsync("TRUNCATE type_round_trip");
        await AssertTargetEqualsSourceAsync(source, target, run, "a truncate");
        Assert.Equal(0, await target.ScalarAsync<long>("SELECT count(*) FROM type_round_trip"));
        await run.StopAsync();
    }

    /// <summary>One source transaction of 300 inserts (more than one batch) whose 257th row breaks a CHECK constraint of the
    /// target: the run stops with an error naming the change (kind, key, target table), the target transaction is rolled
    /// back whole and its position not recorded.</summary>
    [Fact]
    [Trait("Category", "Reliability")]
    public async Task StatementFailsInsideABatch_RunStopsNamingKindKeyAndTable_TargetTransactionRolledBack()
    {
        await using var copy = await RestaurantCopyRun.StartAsync(fixture.Server);
        var (source, target, run) = (copy.Source, copy.Target, copy.Run);

        await source.ExecuteAsync("INSERT INTO Restaurant (id, name, rating) SELECT 'r-' || i, 'n', CASE WHEN i = 257 THEN 500 ELSE i % 100 END FROM generate_series(1, 300) i");
        var error = await Assert.ThrowsAsync<DBSyncException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(60)));

        Assert.Contains("the insert of key (id='r-257') into the target table public.restaurant_copy", error.Message, StringComparison.Ordinal);
        Assert.Contains("23514", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, await target.ScalarAsync<long>("SELECT count(*) FROM restaurant_copy"));
        Assert.Equal(0, await target.ScalarAsync<long>("SELECT count(*) FROM dbsync_applied"));
    }

    /// <summary>The target table is missing, then one of its mapped columns is: each is a configuration error at the first
    /// change, naming the table (and the column), and nothing is applied.</summary>
    [Theory]
    [Trait("Category", "Integration")]
    [InlineData("", "the target table public.restaurant_copy of public.restaurant does not exist")]
    [InlineData("CREATE TABLE restaurant_copy (id varchar(255) PRIMARY KEY, name text, description text, address text, rating int);",
        "the target table public.restaurant_copy has no column \"tags\" (mapped by Restaurant.Tags)")]
    [InlineData("CREATE TABLE restaurant_copy (id varchar(255), name text, description text, address text, rating int, tags text[]);",
        "has no primary key or unique index (not deferrable) on exactly (\"id\")")]
    [InlineData("CREATE TABLE restaurant_copy (id varchar(255) PRIMARY KEY DEFERRABLE, name text, description text, address text, rating int, tags text[]);",
        "has no primary key or unique index (not deferrable) on exactly (\"id\")")]
    [InlineData("CREATE TABLE restaurant_copy (id varchar(255) PRIMARY KEY, name text, description text, address text, rating int GENERATED ALWAYS AS IDENTITY, tags text[]);",
        "the column \"rating\" of the target table public.restaurant_copy is GENERATED ALWAYS AS IDENTITY")]
    [InlineData(RestaurantCopy + "CREATE TABLE rule_log (id text); CREATE RULE log_insert AS ON INSERT TO restaurant_copy DO ALSO INSERT INTO rule_log VALUES (NEW.id);",
        "the target table public.restaurant_copy has INSERT or UPDATE rules (CREATE RULE)")]
    public async Task TargetTableCannotTakeTheRows_FirstChange_StopsNamingWhatIsMissing(string targetSchema, string expected)
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        if (targetSchema.Length > 0)
            await target.ExecuteAsync(targetSchema);
        PostgresApplier? applier = null;
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
            applier = new PostgresApplier(client, target.ConnectionString, "restaurants").MapTable<Restaurant>("restaurant_copy"));
        await using var _ = applier;

        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-1', 'one')");
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(60)));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    /// <summary>The end hook runs in each target transaction after the generated statements were sent (it sees their
    /// rows) and before the commit (its own rows commit with them), once per source transaction; the target connection
    /// carries the applier's application name.</summary>
    [Fact]
    [Trait("Category", "Integration")]
    public async Task TargetTransactionEndHook_SeesTheBatchedRows_CommitsWithThem_OncePerTransaction()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await target.ExecuteAsync(RestaurantCopy + "CREATE TABLE hook_log (seen bigint NOT NULL, application_name text NOT NULL);");
        PostgresApplier? applier = null;
        await using var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
            applier = new PostgresApplier(client, target.ConnectionString, "restaurants").MapTable<Restaurant>("restaurant_copy")
                .OnTargetTransactionEnd(async (context, cancellationToken) =>
                {
                    await using var log = context.CreateCommand(
                        "INSERT INTO hook_log SELECT (SELECT count(*) FROM restaurant_copy), current_setting('application_name')");
                    await log.ExecuteNonQueryAsync(cancellationToken);
                }));
        await using var _ = applier;

        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) SELECT 'r-' || i, 'n' FROM generate_series(1, 450) i");
        await source.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-last', 'n')");
        await run.WaitUntilAsync(r => r.Transactions.Count == 2, "two transactions", TimeSpan.FromSeconds(60));
        for (var attempt = 0; await target.ScalarAsync<long>("SELECT count(*) FROM hook_log WHERE seen = 451") < 1; attempt++)
        {
            Assert.True(attempt < 3000, "The hook's rows did not commit within 60 s.");
            await Task.Delay(20);
        }

        // One hook row per target transaction, each seeing every row before it: the two source transactions in one target
        // transaction (grouped, when the second was waiting already) or in one each.
        var rows = await target.RowsAsync("SELECT seen || '|' || application_name FROM hook_log ORDER BY seen");
        Assert.Equal(applier!.TargetCommits, rows.Count);
        Assert.Contains(rows, r => r == "451|DBSync applier restaurants");
        Assert.All(rows, r => Assert.Contains(r, new[] { "450|DBSync applier restaurants", "451|DBSync applier restaurants" }));
        await run.StopAsync();
    }

    /// <summary>
    /// Long runs of one table's changes in a source transaction go through COPY (past one batch of statements) and end as
    /// the changes one by one would: 1,000 inserts, updates of every row, key moves, rows updated then deleted, rows
    /// inserted then deleted, a chain moving keys onto keys moved away in the same transaction, deletes, deleted keys
    /// inserted again, and one row updated 300 times (small sets: those go back to statements). A last transaction deletes
    /// most rows. The target equals the source after each, and most rows went through COPY.
    /// </summary>
    [Fact]
    [Trait("Category", "Reliability")]
    public async Task LongRunsOfOneTablesChanges_GoThroughCopy_AndEndAsTheChangesOneByOne()
    {
        await using var copy = await RestaurantCopyRun.StartAsync(fixture.Server);
        var (source, target, run, applier) = (copy.Source, copy.Target, copy.Run, copy.Applier);

        // Each transaction starts with more than a batch of changes of the table, so that what follows is staged.
        await source.ExecuteAsync("""
            BEGIN;
            INSERT INTO Restaurant (id, name, rating, tags) SELECT 'r-' || i, 'n' || i, i % 100, ARRAY['t' || i] FROM generate_series(1, 1000) i;
            UPDATE Restaurant SET rating = 7 WHERE id = 'r-1000';
            UPDATE Restaurant SET rating = (rating + 1) % 100, name = name || '-u';
            UPDATE Restaurant SET id = id || '-m' WHERE substr(id, 3)::int % 7 = 0;
            COMMIT;
            BEGIN;
            UPDATE Restaurant SET rating = (rating + 2) % 100;
            DELETE FROM Restaurant WHERE id LIKE 'r-%4';
            COMMIT;
            BEGIN;
            UPDATE Restaurant SET name = name || '+';
            INSERT INTO Restaurant (id, name) SELECT 'brief-' || i, 'brief' FROM generate_series(1, 300) i;
            DELETE FROM Restaurant WHERE id LIKE 'brief-%';
            COMMIT;
            BEGIN;
            UPDATE Restaurant SET rating = (rating + 3) % 100;
            UPDATE Restaurant SET id = 'tmp' WHERE id = 'r-2';
            UPDATE Restaurant SET id = 'r-2' WHERE id = 'r-3';
            UPDATE Restaurant SET id = 'r-3' WHERE id = 'tmp';
            DELETE FROM Restaurant WHERE id LIKE 'r-%5';
            INSERT INTO Restaurant (id, name, rating) SELECT 'r-' || i, 'again', 1 FROM generate_series(5, 500, 10) i;
            DO $$ BEGIN FOR i IN 1..300 LOOP UPDATE Restaurant SET rating = i % 100 WHERE id = 'r-1'; END LOOP; END $$;
            COMMIT;
            """);
        await AssertRestaurantsEqualAsync(source, target, run, "four transactions");
        var staged = applier.StagedRows;
        Assert.True(staged > 4000, $"only {staged} rows went through COPY");
        // The inserts past the first batch went straight into the empty target table (the columns need no cast).
        Assert.True(applier.DirectlyCopiedRows >= 800, $"{applier.DirectlyCopiedRows} rows were copied straight into the target table");

        await source.ExecuteAsync("DELETE FROM Restaurant WHERE rating < 90");
        await AssertRestaurantsEqualAsync(source, target, run, "a mass delete");
        Assert.True(applier.StagedRows > staged + 500, $"{applier.StagedRows - staged} deletes went through COPY");
        await run.StopAsync();
    }

    /// <summary>
    /// One source transaction of many staged sets (40 updates of 400 rows each): the first <c>ApplyBatch.MaxSavepoints</c>
    /// sets run behind savepoints, the rest without, and all apply; a failure in a set without a savepoint rolls the
    /// target transaction back and names the set (its table, key range and error), not its change.
    /// </summary>
    [Fact]
    [Trait("Category", "Reliability")]
    public async Task ManyStagedSetsInOneTransaction_ApplyPastTheSavepointLimit_AFailureThereNamesTheSet()
    {
        await using var copy = await RestaurantCopyRun.StartAsync(fixture.Server);
        var (source, target, run, applier) = (copy.Source, copy.Target, copy.Run, copy.Applier);
        var passes = Applying.ApplyBatch.MaxSavepoints + 8;
        await source.ExecuteAsync($"""
            BEGIN;
            INSERT INTO Restaurant (id, name, rating) SELECT 'r-' || i, 'n', 0 FROM generate_series(1, 400) i;
            DO $$ BEGIN FOR p IN 1..{passes} LOOP UPDATE Restaurant SET rating = p; END LOOP; END $$;
            COMMIT;
            """);
        await AssertRestaurantsEqualAsync(source, target, run, $"{passes} updates of every row");
        Assert.True(applier.StagedRows > passes * 300, $"{applier.StagedRows} rows staged");

        await source.ExecuteAsync($"DO $$ BEGIN FOR p IN 1..{passes} LOOP UPDATE Restaurant SET rating = CASE WHEN p = {passes} AND id = 'r-300' THEN 500 ELSE p END; END LOOP; END $$");
        var error = await Assert.ThrowsAsync<DBSyncException>(() => run.Run.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("changes of public.restaurant (keys (id='r-", error.Message, StringComparison.Ordinal);
        Assert.Contains("23514", error.Message, StringComparison.Ordinal);
        Assert.Equal(400, await target.ScalarAsync<long>("SELECT count(*) FROM restaurant_copy WHERE rating = " + passes));
    }

    /// <summary>
    /// The initial snapshot into a target table that has some of the keys already (and other values for them): the chunks
    /// whose keys are new go straight into the table by COPY; a chunk that meets a key the target has fails that COPY,
    /// which is rolled back, and goes through the staging table and the upsert; the target ends equal to the source.
    /// </summary>
    [Fact]
    [Trait("Category", "Integration")]
    public async Task Snapshot_IntoATargetWithSomeOfTheKeys_CopiesTheNewOnesDirectly_UpsertsTheRest()
    {
        await using var copy = await RestaurantCopyRun.StartAsync(fixture.Server, async (source, target) =>
        {
            await source.ExecuteAsync("INSERT INTO Restaurant (id, name, rating, tags) SELECT 'r-' || lpad(i::text, 5, '0'), 'n' || i, i % 100, ARRAY['t', i::text] FROM generate_series(1, 5000) i");
            await target.ExecuteAsync("INSERT INTO restaurant_copy (id, name, rating) SELECT 'r-' || lpad(i::text, 5, '0'), 'stale', 1 FROM generate_series(2000, 2100) i");
        }, o =>
        {
            o.InitialSnapshot = true;
            o.SnapshotChunkSize = 500;
        });
        var (source, target, run, applier) = (copy.Source, copy.Target, copy.Run, copy.Applier);

        await AssertRestaurantsEqualAsync(source, target, run, "the initial snapshot");
        Assert.Equal(5000, applier.StagedRows);
        Assert.InRange(applier.DirectlyCopiedRows, 2500, 4500);
        await run.StopAsync();
    }

    /// <summary>
    /// A table of only the types whose COPY values DBSync writes itself (no Npgsql importer): edge values of each (NULL,
    /// integer limits, NaN, infinities and -0, empty and multi-byte strings, values longer than the COPY buffer, empty and
    /// large bytea) go through the initial snapshot (straight into the table, and through the staging table where the
    /// target had some keys), a long run of updates and one of deletes (staged, with the delete flag and null non-key
    /// columns); after each the target equals the source, row by row.
    /// </summary>
    [Fact]
    [Trait("Category", "Types")]
    public async Task PlainTypes_ThroughHandWrittenCopy_SnapshotUpdatesDeletes_TargetEqualsSource()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await using var target = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await source.ExecuteAsync(PlainRow.CreateSql);
        await target.ExecuteAsync(PlainRow.CreateSql);
        await source.ExecuteAsync("""
            INSERT INTO plain_types
            SELECT i,
                   (ARRAY[-32768, 32767, 0, 7])[i % 4 + 1],
                   CASE WHEN i % 5 = 0 THEN NULL ELSE (ARRAY[-2147483648, 2147483647, 0, i])[i % 4 + 1] END,
                   (ARRAY[-9223372036854775808, 9223372036854775807, 0, i])[i % 4 + 1],
                   CASE WHEN i % 6 = 0 THEN NULL ELSE (ARRAY['NaN', 'Infinity', '-Infinity', '-0', '1.5e-38', '3.25'])[i % 6 + 1]::real END,
                   (ARRAY['NaN', 'Infinity', '-Infinity', '-0', '2.2250738585072014e-308', '0.1'])[i % 6 + 1]::float8,
                   CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END,
                   i % 2 = 1,
                   CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'ünïcödé ✓ 🐘 ' || i WHEN 3 THEN repeat('long ✓', 20000) ELSE 'row ' || i END,
                   left('v' || i || 'é✓', 20),
                   CASE WHEN i % 4 = 0 THEN NULL ELSE left('b' || i, 3) END,
                   CASE WHEN i % 5 = 1 THEN NULL ELSE md5(i::text)::uuid END,
                   md5('set' || i)::uuid,
                   CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN ''::bytea WHEN 2 THEN decode(repeat('00ff', 100000), 'hex') ELSE decode(md5(i::text), 'hex') END,
                   CASE WHEN i % 3 = 2 THEN NULL ELSE convert_to('mem ' || i, 'UTF8') END
            FROM generate_series(1, 1200) i;
            """);
        // Keys the target has already: their chunks fail the straight COPY and go through the staging table.
        await target.ExecuteAsync("INSERT INTO plain_types (id, int2, int8, float8, flag, varchar, uuid_set) SELECT i, 1, 1, 1, false, 'stale', md5('x')::uuid FROM generate_series(600, 620) i");

        PostgresApplier? applier = null;
        await using var run = await StreamRun.StartAsync(source.ConnectionString,
            (client, _) => applier = new PostgresApplier(client, target.ConnectionString, "plain").MapTable<PlainRow>(),
            configure: o =>
            {
                o.InitialSnapshot = true;
                o.SnapshotChunkSize = 100;
            });
        await using var _ = applier;
        await using (var connection = new Npgsql.NpgsqlConnection(target.ConnectionString))
        {
            await connection.OpenAsync();
            var table = await Applying.TargetTable.LoadAsync(connection, InfoOf<PlainRow>(),  "public", "plain_types", "plain", "the target", CancellationToken.None);
            Assert.True(table.RawCopy, "plain_types should be written into COPY by DBSync's own encoder");
        }
        const string rows = "SELECT id || ' ' || md5(t::text) FROM plain_types t ORDER BY id";
        await AssertSameRowsAsync(source, rows, target, rows, run, "the initial snapshot");
        Assert.Equal(1200, applier!.StagedRows);
        // Most chunks go straight into COPY; how many depends on how the stream's transactions interleave with the chunks
        // (850 of 1,200 seen on a loaded machine), so the range is wide: what matters is that the direct path is taken.
        Assert.InRange(applier.DirectlyCopiedRows, 600, 1200);

        await source.ExecuteAsync("""
            BEGIN;
            UPDATE plain_types SET int4 = CASE WHEN int4 IS NULL THEN 1 END, text = CASE WHEN text IS NULL THEN 'was null' ELSE text || '+' END,
                                   float8 = -float8, bool = NOT bool, bytea = CASE WHEN bytea IS NULL THEN '\x00'::bytea END;
            COMMIT;
            """);
        await AssertSameRowsAsync(source, rows, target, rows, run, "a long run of updates");
        var staged = applier.StagedRows;
        Assert.True(staged > 2000, $"only {staged - 1200} updates were staged");

        await source.ExecuteAsync("DELETE FROM plain_types WHERE id % 3 <> 0");
        await AssertSameRowsAsync(source, rows, target, rows, run, "a long run of deletes");
        Assert.True(applier.StagedRows > staged + 500, $"{applier.StagedRows - staged} deletes were staged");
        await run.StopAsync();
    }

    /// <summary>A source database with the seed tables, a target database with restaurant_copy, and a run whose applier
    /// maps Restaurant into it (generated mapping); <c>before</c> writes what is there before the run starts.</summary>
    private sealed class RestaurantCopyRun : IAsyncDisposable
    {
        private RestaurantCopyRun(TestDatabase source, TestDatabase target, StreamRun run, PostgresApplier applier)
            => (Source, Target, Run, Applier) = (source, target, run, applier);

        public TestDatabase Source { get; }

        public TestDatabase Target { get; }

        public StreamRun Run { get; }

        public PostgresApplier Applier { get; }

        public static async Task<RestaurantCopyRun> StartAsync(PostgresServer server, Func<TestDatabase, TestDatabase, Task>? before = null,
            Action<DBSyncOptions>? configure = null)
        {
            var source = await TestDatabase.CreateAsync(server);
            var target = await TestDatabase.CreateAsync(server, seedSchema: false);
            await target.ExecuteAsync(RestaurantCopy);
            if (before is not null)
                await before(source, target);
            PostgresApplier? applier = null;
            var run = await StreamRun.StartAsync(source.ConnectionString, (client, _) =>
                applier = new PostgresApplier(client, target.ConnectionString, "restaurants").MapTable<Restaurant>("public.restaurant_copy"), configure: configure);
            return new RestaurantCopyRun(source, target, run, applier!);
        }

        public async ValueTask DisposeAsync()
        {
            await Applier.DisposeAsync();
            await Run.DisposeAsync();
            await Target.DisposeAsync();
            await Source.DisposeAsync();
        }
    }

    private static Task AssertRestaurantsEqualAsync(TestDatabase source, TestDatabase target, StreamRun run, string after)
        => AssertSameRowsAsync(source, "SELECT concat_ws('|', id, name, rating, tags) FROM Restaurant ORDER BY id",
            target, "SELECT concat_ws('|', id, name, rating, tags) FROM restaurant_copy ORDER BY id", run, after);

    /// <summary>Waits until every column of every row of type_round_trip has the same text in both databases (long values
    /// compared by hash; array lower bounds left out, which DBSync does not keep: docs/types.md), or fails listing the
    /// first differences.</summary>
    private static async Task AssertTargetEqualsSourceAsync(TestDatabase source, TestDatabase target, StreamRun run, string after)
    {
        var names = Columns<TypeRow>().Select(c => c.Name).Prepend("doubled").ToList();
        var query = "SELECT t.id || ' ' || c.name || ' = ' || coalesce(CASE WHEN length(c.value) > 200 THEN md5(c.value) ELSE c.value END, 'NULL') " +
                    $"FROM type_round_trip t CROSS JOIN LATERAL (VALUES {string.Join(", ", names.Select(n => $"('{n}', regexp_replace(t.\"{n}\"::text, '^(\\[-?\\d+:-?\\d+\\])+=', ''))"))}) c(name, value) ORDER BY t.id, c.name";
        await AssertSameRowsAsync(source, query, target, query, run, after);
    }

    /// <summary>Waits until <paramref name="targetQuery"/> returns what <paramref name="sourceQuery"/> does, or fails listing
    /// the first differences (or with the run's error, when it stopped).</summary>
    private static async Task AssertSameRowsAsync(TestDatabase source, string sourceQuery, TestDatabase target, string targetQuery, StreamRun run, string after)
    {
        var expected = await source.RowsAsync(sourceQuery);
        List<string> actual = [];
        for (var attempt = 0; attempt < 600; attempt++)
        {
            actual = await target.RowsAsync(targetQuery);
            if (expected.SequenceEqual(actual) || run.Run.IsCompleted)
                break;
            await Task.Delay(100);
        }
        if (run.Run.IsCompleted)
            await run.Run; // the run's error says more than a difference
        var missing = expected.Except(actual).Take(10).ToList();
        var extra = actual.Except(expected).Take(10).ToList();
        Assert.True(expected.SequenceEqual(actual),
            $"After {after}, the target differs from the source.\nSource only:\n{string.Join("\n", missing)}\nTarget only:\n{string.Join("\n", extra)}");
    }

    private static IEnumerable<SyncColumnInfo> Columns<T>() where T : ISyncTable<T> => T.TableInfo.Columns;

    private static SyncTableInfo InfoOf<T>() where T : ISyncTable<T> => T.TableInfo;
}
