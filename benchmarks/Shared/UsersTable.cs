using System.Diagnostics;
using Npgsql;

namespace DBSync.Bench;

/// <summary>The sample schema's users table: creation and bulk loading of generated rows.</summary>
internal static class UsersTable
{
    public const string Columns = "id, first_name, user_name, email, avatar, homepage, date_of_birth, address, interests";

    public const string CopyCommand = "COPY users (" + Columns + ") TO STDOUT (FORMAT BINARY)";

    // Every column is filled; the nullable ones are NULL on some rows, the arrays have 0 to 4 elements.
    private const string InsertSql =
        "INSERT INTO users (" + Columns + ") " +
        "SELECT i, " +
        "       'First' || i, " +
        "       'user_' || i, " +
        "       'user' || i || '@example.com', " +
        "       CASE WHEN i % 4 = 0 THEN NULL ELSE 'https://cdn.example.com/avatars/' || i || '.png' END, " +
        "       CASE WHEN i % 3 = 0 THEN NULL ELSE 'https://example.com/~user' || i END, " +
        "       CASE WHEN i % 10 = 0 THEN NULL ELSE DATE '1940-01-01' + ((i::bigint * 7919) % 25000)::int END, " +
        "       i || ' Main Street, Springfield ' || (i % 1000), " +
        "       CASE WHEN i % 11 = 0 THEN NULL ELSE (ARRAY['reading', 'cooking', 'hiking', 'chess', 'music'])[1:(i % 5)] END " +
        "FROM generate_series(@from::int, @to::int) AS s(i)";

    /// <summary>Creates the sample schema (users, restaurant, visit) from samples/DBSync.Sample/seed-schema.sql.</summary>
    public static async Task CreateSchemaAsync(string connectionString)
    {
        var sql = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "seed-schema.sql"));
        await ExecuteAsync(connectionString, sql);
    }

    /// <summary>Inserts the rows with ids <paramref name="from"/>..<paramref name="to"/>, then runs VACUUM ANALYZE; returns the seconds taken.</summary>
    public static async Task<double> LoadAsync(string connectionString, int from, int to)
    {
        var watch = Stopwatch.StartNew();
        await InsertAsync(connectionString, from, to);
        await AdvanceSequenceAsync(connectionString);
        await ExecuteAsync(connectionString, "VACUUM ANALYZE users");
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>Inserts the rows with ids <paramref name="from"/>..<paramref name="to"/> in one transaction.</summary>
    public static async Task InsertAsync(string connectionString, int from, int to)
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(connectionString);
        await using var insert = new NpgsqlCommand(InsertSql, connection);
        insert.Parameters.AddWithValue("from", from);
        insert.Parameters.AddWithValue("to", to);
        await insert.ExecuteNonQueryAsync();
    }

    /// <summary>Moves the serial sequence past the rows inserted with explicit ids.</summary>
    public static Task AdvanceSequenceAsync(string connectionString)
        => ExecuteAsync(connectionString, "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))");

    public static Task<long> CountAsync(string connectionString) => ScalarAsync<long>(connectionString, "SELECT count(*) FROM users");

    /// <summary>Heap plus TOAST size of users, without indexes.</summary>
    public static Task<long> TableBytesAsync(string connectionString) => ScalarAsync<long>(connectionString, "SELECT pg_table_size('users')");

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Opens a connection without a command timeout (loading 4M rows takes longer than Npgsql's default 30 s).</summary>
}
