using System.Text.RegularExpressions;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using DBSync.Testing;
using Npgsql;

namespace DBSync.IntegrationTests;

[SyncTable("missing_table")]
public partial class MissingTable
{
    [PrimaryKey]
    public int Id { get; set; }
}

/// <summary>pgbench's history table, whose columns are all duplicated freely; the entity keys it on aid.</summary>
[SyncTable("pgbench_history")]
public partial class PgbenchHistory
{
    [PrimaryKey]
    public int Aid { get; set; }

    public int? Delta { get; set; }
}

[SyncTable("no_key")]
public partial class NoKey
{
    [PrimaryKey]
    public int Id { get; set; }

    public string? Name { get; set; }
}

/// <summary>Maps the seed's restaurant table with the wrong key.</summary>
[SyncTable("restaurant")]
public partial class RestaurantByName
{
    [PrimaryKey]
    public string Name { get; set; } = "";
}

/// <summary>Maps a table keyed by text with an int key, and a text column with an int.</summary>
[SyncTable("text_key")]
public partial class TextKeyAsInt
{
    [PrimaryKey]
    public int Id { get; set; }

    public int Label { get; set; }
}

[Collection(PostgresCollection.Name)]
[Trait("Category", "Integration")]
public sealed class BadInputTests(PostgresFixture fixture)
{
    [Fact]
    public async Task WalLevelNotLogical_ThrowsNamingTheSettingAndTheFix()
    {
        await using var server = await PostgresServer.StartAsync(new Dictionary<string, string> { ["wal_level"] = "replica" }, forceLocal: true);
        await server.ExecuteAsync("CREATE TABLE restaurant (id varchar(255) PRIMARY KEY, name varchar(255) NOT NULL)");

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(server.ConnectionString, c => c.On<RestaurantByName>(_ => { })));
        Assert.Contains("wal_level is 'replica'", error.Message, StringComparison.Ordinal);
        Assert.Contains("ALTER SYSTEM SET wal_level = logical", error.Message, StringComparison.Ordinal);
        Assert.Contains("restart", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RoleWithoutReplication_ThrowsNamingTheRoleAndTheFix()
    {
        var db = await TestDatabase.CreateAsync(fixture.Server);
        var role = $"norepl_{db.Name}";
        try
        {
            await db.ExecuteAsync($"CREATE ROLE {role} LOGIN PASSWORD 'secret-pw-1'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};");
            var connectionString = fixture.Server.ConnectionStringFor(db.Name, role, "secret-pw-1");

            var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(connectionString, c => c.On<Restaurant>(_ => { })));
            Assert.Contains($"Role \"{role}\"", error.Message, StringComparison.Ordinal);
            Assert.Contains($"ALTER ROLE \"{role}\" WITH REPLICATION", error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("secret-pw-1", error.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            await db.DisposeAsync();
            await fixture.Server.ExecuteAsync($"DROP ROLE IF EXISTS {role}");
        }
    }

    [Fact]
    public async Task MissingTable_ThrowsNamingTheTableAndTheEntity()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<MissingTable>(_ => { }).On<Restaurant>(_ => { })));
        Assert.Contains("Table public.missing_table (mapped by DBSync.IntegrationTests.MissingTable) does not exist", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("restaurant", error.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"));
    }

    [Fact]
    public async Task TableWithoutPrimaryKeyOrReplicaIdentity_ThrowsWithTheFix_AndStreamsOnceFixed()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync("CREATE TABLE no_key (id int NOT NULL, name text)");

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<NoKey>(_ => { })));
        Assert.Contains("public.no_key has no primary key and no replica identity", error.Message, StringComparison.Ordinal);
        Assert.Contains("Run ALTER TABLE \"public\".\"no_key\" REPLICA IDENTITY FULL;", error.Message, StringComparison.Ordinal);
        // Nothing tells PostgreSQL that id is unique: no primary key is suggested on it.
        Assert.Contains("No unique index covers exactly (\"id\")", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ADD PRIMARY KEY (\"id\")", error.Message, StringComparison.Ordinal);

        await db.ExecuteAsync("ALTER TABLE no_key REPLICA IDENTITY FULL");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<NoKey>(c => recorder.Add(c)));
        await db.ExecuteAsync("INSERT INTO no_key VALUES (1, 'one'); DELETE FROM no_key");
        await run.WaitUntilAsync(r => r.Of<NoKey>().Count == 2, "insert and delete");
        Assert.Equal((OldRowKind.Full, "one"), (run.Recorder.Of<NoKey>()[1].OldRowKind, run.Recorder.Of<NoKey>()[1].Old!.Name));
    }

    [Fact]
    public async Task TableLikePgbenchHistory_WithADuplicatedKeyColumn_GetsReplicaIdentityFull_NeverAPrimaryKeyThatWouldFail()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync("""
            CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
            INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 7, 5, now()), (2, 1, 7, -3, now());
            """);

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<PgbenchHistory>(_ => { })));
        Assert.Contains("public.pgbench_history has no primary key and no replica identity", error.Message, StringComparison.Ordinal);
        Assert.Contains("Run ALTER TABLE \"public\".\"pgbench_history\" REPLICA IDENTITY FULL;", error.Message, StringComparison.Ordinal);
        Assert.Contains("No unique index covers exactly (\"aid\")", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ADD PRIMARY KEY (\"aid\")", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("USING INDEX", error.Message, StringComparison.Ordinal);
        // What the message no longer suggests would indeed fail here.
        var refused = await Assert.ThrowsAsync<PostgresException>(() => db.ExecuteAsync("ALTER TABLE pgbench_history ADD PRIMARY KEY (aid)"));
        Assert.Equal(PostgresErrorCodes.UniqueViolation, refused.SqlState);

        foreach (var statement in Statements(error.Message))
            await db.ExecuteAsync(statement);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<PgbenchHistory>(c => recorder.Add(c)));
        await db.ExecuteAsync("DELETE FROM pgbench_history WHERE delta = 5");
        await run.WaitUntilAsync(r => r.Of<PgbenchHistory>().Count == 1, "the delete");
        Assert.Equal((OldRowKind.Full, (int?)5), (run.Recorder.Of<PgbenchHistory>()[0].OldRowKind, run.Recorder.Of<PgbenchHistory>()[0].Old!.Delta));
    }

    [Theory]
    [InlineData("id int NOT NULL", "")]
    [InlineData("id int", "ALTER TABLE \"public\".\"no_key\" ALTER COLUMN \"id\" SET NOT NULL;")]
    public async Task TableWithAUniqueIndexOnTheKey_IsToldToUseThatIndex_AndTheSuggestedStatementsWork(string idColumn, string setNotNull)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        // A partial unique index proves nothing about the whole table; one on other columns is not the entity's key.
        await db.ExecuteAsync($"""
            CREATE TABLE no_key ({idColumn}, name text);
            CREATE UNIQUE INDEX no_key_a_partial ON no_key (id) WHERE id > 0;
            CREATE UNIQUE INDEX no_key_b_id ON no_key (id);
            CREATE UNIQUE INDEX no_key_c_name ON no_key (name);
            INSERT INTO no_key VALUES (1, 'one'), (2, 'two');
            """);

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<NoKey>(_ => { })));
        var message = error.Message;
        Assert.Contains("REPLICA IDENTITY FULL;", message, StringComparison.Ordinal);
        Assert.Contains("ALTER TABLE \"public\".\"no_key\" REPLICA IDENTITY USING INDEX \"no_key_b_id\";", message, StringComparison.Ordinal);
        Assert.Contains("ALTER TABLE \"public\".\"no_key\" ADD PRIMARY KEY USING INDEX \"no_key_b_id\";", message, StringComparison.Ordinal);
        Assert.DoesNotContain("no_key_a_partial", message, StringComparison.Ordinal);
        Assert.DoesNotContain("no_key_c_name", message, StringComparison.Ordinal);
        if (setNotNull.Length > 0)
            Assert.Contains($"once {setNotNull[..^1]}; succeeds", message, StringComparison.Ordinal);
        else
            Assert.DoesNotContain("SET NOT NULL", message, StringComparison.Ordinal);

        // The statements as given, in order, leave the table ready: all but REPLICA IDENTITY FULL (the other way).
        foreach (var statement in Statements(message).Where(s => !s.Contains("REPLICA IDENTITY FULL", StringComparison.Ordinal)))
            await db.ExecuteAsync(statement);
        Assert.Equal("no_key_b_id", await db.ScalarAsync<string>("SELECT conname::text FROM pg_constraint WHERE conrelid = 'no_key'::regclass AND contype = 'p'"));
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<NoKey>(c => recorder.Add(c)));
        await db.ExecuteAsync("DELETE FROM no_key WHERE id = 2");
        await run.WaitUntilAsync(r => r.Of<NoKey>().Count == 1, "the delete");
        Assert.Equal((OldRowKind.Key, 2), (run.Recorder.Of<NoKey>()[0].OldRowKind, run.Recorder.Of<NoKey>()[0].Old!.Id));
    }

    [Fact]
    public async Task ReplicaIdentityNothing_ThrowsWithTheFix()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("ALTER TABLE Restaurant REPLICA IDENTITY NOTHING");

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<Restaurant>(_ => { })));
        Assert.Contains("public.restaurant has REPLICA IDENTITY NOTHING", error.Message, StringComparison.Ordinal);
        Assert.Contains("REPLICA IDENTITY DEFAULT", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EntityKeyDifferentFromPrimaryKey_ThrowsNamingBothKeys()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<RestaurantByName>(_ => { })));
        Assert.Contains("marks [PrimaryKey] on (name) but the primary key of public.restaurant is (id)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyPropertyOfAWrongType_IsToldToChangeItsType_NeverToIgnoreIt()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync("CREATE TABLE text_key (id text PRIMARY KEY, label text)");

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<TextKeyAsInt>(_ => { })));
        var lines = error.Message.Split(Environment.NewLine);
        var key = Assert.Single(lines, l => l.StartsWith("Column \"id\"", StringComparison.Ordinal));
        Assert.Contains("which property TextKeyAsInt.Id (int) cannot hold", key, StringComparison.Ordinal);
        Assert.EndsWith("Change the property type to one of them; a [PrimaryKey] property identifies the row, so it cannot be [SyncIgnore].", key, StringComparison.Ordinal);
        // Leaving a column out is still the advice for a property that is not a key.
        var label = Assert.Single(lines, l => l.StartsWith("Column \"label\"", StringComparison.Ordinal));
        Assert.EndsWith("Change the property type, or mark it [SyncIgnore].", label, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlotInUseByAnotherConsumer_ThrowsNamingTheSlot()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var first = await StreamRun.StartAsync(db.ConnectionString);

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => RunAsync(db.ConnectionString, c => c.On<Restaurant>(_ => { }), slot: "dbsync_test"));
        Assert.Contains("Replication slot \"dbsync_test\" is in use", error.Message, StringComparison.Ordinal);
        Assert.False(first.Run.IsCompleted);
    }

    [Theory]
    [InlineData("Upper", "SlotName")]
    [InlineData("has-dash", "SlotName")]
    [InlineData("", "SlotName")]
    [InlineData("x'; DROP TABLE users; --", "SlotName")]
    public void InvalidSlotName_IsRejectedBeforeConnecting(string slot, string option)
    {
        var error = Assert.Throws<ArgumentException>(() => new DBSyncClient(new DBSyncOptions { ConnectionString = "Host=unused", SlotName = slot }));
        Assert.Equal(option, error.ParamName);
        Assert.Contains("lower-case letters, digits and underscores", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Host=db1,db2")]
    [InlineData("Host=db1:5432,db2:5433;Target Session Attributes=any")]
    [InlineData("Host=db1,db2;Target Session Attributes=prefer-primary")]
    public void SeveralHosts_WithoutTargetSessionAttributesPrimary_AreRejectedBeforeConnecting(string connectionString)
    {
        var error = Assert.Throws<ArgumentException>(() => new DBSyncClient(new DBSyncOptions { ConnectionString = connectionString }));
        Assert.Equal("ConnectionString", error.ParamName);
        Assert.Contains("lists several hosts", error.Message, StringComparison.Ordinal);
        Assert.Contains("Add Target Session Attributes=primary to the connection string", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Host=db1,db2;Target Session Attributes=primary")]
    [InlineData("Host=db1:5432,db2:5433;Target Session Attributes=read-write")]
    [InlineData("Host=db1;Target Session Attributes=any")] // one host: the attributes are Npgsql's business
    public void SeveralHosts_WithTargetSessionAttributesPrimary_AreAccepted(string connectionString)
        => _ = new DBSyncClient(new DBSyncOptions { ConnectionString = connectionString });

    /// <summary>The SQL statements a setup message suggests, in order.</summary>
    private static IEnumerable<string> Statements(string message)
        => Regex.Matches(message, "ALTER TABLE [^;]+;").Select(m => m.Value);

    private static async Task RunAsync(string connectionString, Action<DBSyncClient> register, string slot = "dbsync_bad")
    {
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = connectionString, SlotName = slot, PublicationName = slot, ReplicationTransport = TestTransport.Current,
        });
        register(client);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await client.RunAsync(timeout.Token);
        Assert.Fail("RunAsync returned without the expected error.");
    }
}
