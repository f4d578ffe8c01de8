using DBSync.Testing;

namespace DBSync.Sample;

/// <summary>Where both samples run: a fresh database with the seed schema, on the server POSTGRES_* names or on a
/// throwaway local one.</summary>
public static class SeedDatabase
{
    /// <summary>Starts (or connects to) the server, creates a database named after <paramref name="prefix"/> with the seed
    /// schema, runs <paramref name="sample"/> with its connection string, then drops the database (and the server, if
    /// throwaway).</summary>
    public static async Task RunAsync(string prefix, Func<PostgresServer, string, Task> sample)
    {
        await using var server = await PostgresServer.StartAsync();
        Console.WriteLine(server.IsThrowaway
            ? $"Started a throwaway PostgreSQL on port {server.Port}."
            : $"Using the PostgreSQL server named by POSTGRES_HOST (port {server.Port}).");

        var database = await server.CreateDatabaseAsync(prefix);
        try
        {
            await server.ExecuteAsync(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "seed-schema.sql")), database);
            await sample(server, database);
        }
        finally
        {
            await server.DropDatabaseAsync(database);
        }
    }
}
