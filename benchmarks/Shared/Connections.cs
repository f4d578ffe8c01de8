using Npgsql;

namespace DBSync.Bench;

/// <summary>Connections for the benchmarks' own statements.</summary>
internal static class Connections
{
    /// <summary>A connection without a command timeout (loading or hashing millions of rows on a busy machine can take
    /// longer than Npgsql's 30 s).</summary>
    public static async Task<NpgsqlConnection> OpenWithoutTimeoutAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 0 }.ConnectionString);
        try
        {
            await connection.OpenAsync();
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
