using DBSync.Testing;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>A fresh database with the seed schema, dropped (with its slots) at the end of the test.</summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private TestDatabase(PostgresServer server, string name)
    {
        Server = server;
        Name = name;
    }

    public PostgresServer Server { get; }

    public string Name { get; }

    public string ConnectionString => Server.ConnectionStringFor(Name);

    public static async Task<TestDatabase> CreateAsync(PostgresServer server, bool seedSchema = true)
    {
        var database = new TestDatabase(server, await server.CreateDatabaseAsync());
        if (seedSchema)
            await database.ExecuteAsync(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Seed", "seed-schema.sql")));
        return database;
    }

    public Task ExecuteAsync(string sql) => Server.ExecuteAsync(sql, Name);

    public Task<T> ScalarAsync<T>(string sql) => Server.ScalarAsync<T>(sql, Name);

    public async Task<NpgsqlConnection> OpenAsync() => await Server.OpenAsync(Name);

    /// <summary>The first column of every row <paramref name="sql"/> returns, as text.</summary>
    public async Task<List<string>> RowsAsync(string sql)
    {
        await using var connection = await OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
            rows.Add(reader.GetString(0));
        return rows;
    }

    /// <summary>The confirmed position of a slot of this database.</summary>
    public async Task<NpgsqlLogSequenceNumber> SlotConfirmedAsync(string slot = "dbsync_test")
        => NpgsqlLogSequenceNumber.Parse(await ScalarAsync<string>($"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"));

    /// <summary>Writes WAL in <paramref name="writer"/> (this database or another) outside any publication; the slot's
    /// confirmed position must pass the end of it within 30 s.</summary>
    public async Task AssertSlotFollowsWalWrittenInAsync(TestDatabase writer, string slot = "dbsync_test")
    {
        var start = await SlotConfirmedAsync(slot);
        await writer.ExecuteAsync("CREATE TABLE filler (id serial PRIMARY KEY, payload text)");
        for (var i = 0; i < 5; i++)
            await writer.ExecuteAsync("INSERT INTO filler (payload) SELECT repeat('x', 1000) FROM generate_series(1, 100)");
        var walAfterWrites = NpgsqlLogSequenceNumber.Parse(await writer.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text"));

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await SlotConfirmedAsync(slot) < walAfterWrites && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        var confirmed = await SlotConfirmedAsync(slot);
        Assert.True(confirmed >= walAfterWrites, $"confirmed_flush_lsn stayed at {confirmed} (started at {start}) while WAL reached {walAfterWrites}");
    }

    public async ValueTask DisposeAsync() => await Server.DropDatabaseAsync(Name);
}
