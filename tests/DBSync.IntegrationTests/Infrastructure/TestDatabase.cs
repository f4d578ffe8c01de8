using DBSync.Testing;
using Npgsql;

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

    public async ValueTask DisposeAsync() => await Server.DropDatabaseAsync(Name);
}
