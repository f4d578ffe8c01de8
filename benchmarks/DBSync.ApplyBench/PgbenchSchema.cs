using System.Diagnostics;
using System.Globalization;
using DBSync.Bench;
using Npgsql;

namespace DBSync.ApplyBench;

/// <summary>pgbench's tables on the source, their schema in the targets, and the check that a target equals the source.</summary>
internal static class PgbenchSchema
{
    /// <summary>The tables and the key each is ordered by for its hash.</summary>
    public static readonly (string Table, string Key)[] Tables =
        [("pgbench_accounts", "aid"), ("pgbench_branches", "bid"), ("pgbench_tellers", "tid"), ("pgbench_history", "id")];

    /// <summary>pgbench creates pgbench_history without a key. DBSync needs one (its snapshot reads by key, its applier
    /// upserts by key); the subscription does not (pgbench only inserts there), but gets the same table. pgbench names its
    /// columns when it inserts, so the default fills the key.</summary>
    public const string HistoryKeySql = "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY";

    /// <summary>The publication the subscription reads (DBSync creates its own).</summary>
    public const string Publication = "bench_subscription";

    /// <summary>pgbench -i -s <paramref name="scale"/>, the history key, statistics and the subscription's publication;
    /// returns the seconds pgbench -i took.</summary>
    public static async Task<double> CreateSourceAsync(Pgbench pgbench, string connectionString, int scale)
    {
        var init = await pgbench.InitializeAsync(scale);
        await ExecuteAsync(connectionString, HistoryKeySql);
        await ExecuteAsync(connectionString, "VACUUM ANALYZE");
        await ExecuteAsync(connectionString, $"CREATE PUBLICATION {Publication} FOR TABLE {string.Join(", ", Tables.Select(t => t.Table))}");
        return init;
    }

    /// <summary>The four tables' definitions (pg_dump --schema-only), restored into the target database with psql.</summary>
    public static async Task CopySchemaAsync(string? binDirectory, string source, string target)
    {
        List<string> dump = ["--schema-only", "--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions"];
        foreach (var (table, _) in Tables)
            dump.AddRange(["-t", $"public.{table}"]);
        var sql = await RunToolAsync(Pgbench.FindTool(binDirectory, "pg_dump"), [.. dump, .. ConnectionArguments(source)], null);
        await RunToolAsync(Pgbench.FindTool(binDirectory, "psql"), ["-q", "-v", "ON_ERROR_STOP=1", .. ConnectionArguments(target)], sql);
    }

    /// <summary>Row counts of the four tables (the copy is complete when a target's equal the source's).</summary>
    public static async Task<long[]> CountsAsync(string connectionString)
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(connectionString);
        await using var command = new NpgsqlCommand(
            "SELECT " + string.Join(", ", Tables.Select(t => $"(SELECT count(*) FROM {t.Table})")), connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return [.. Tables.Select((_, i) => reader.GetInt64(i))];
    }

    /// <summary>Fails, naming the table and the figures, unless every table of <paramref name="target"/> has the source's
    /// rows: the same count and the same md5 of the rows' text in key order.</summary>
    public static async Task VerifyEqualAsync(string source, string target, string targetName)
    {
        foreach (var (table, key) in Tables)
        {
            var (sourceCount, sourceHash) = await HashAsync(source, table, key);
            var (targetCount, targetHash) = await HashAsync(target, table, key);
            if (sourceCount != targetCount || sourceHash != targetHash)
            {
                throw new InvalidOperationException(
                    $"The {targetName} target's {table} differs from the source: {targetCount} rows, md5 {targetHash}; the source has {sourceCount} rows, md5 {sourceHash}.");
            }
        }
    }

    private static async Task<(long Count, string Hash)> HashAsync(string connectionString, string table, string key)
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(connectionString);
        // md5 of each row's text, then of their concatenation in key order: a changed, missing or extra row changes it.
        await using var command = new NpgsqlCommand(
            $"SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY t.{key})), '') FROM {table} t", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetString(1));
    }

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<T> ScalarAsync<T>(string connectionString, string sql, params object[] parameters)
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        return (T)(await command.ExecuteScalarAsync())!;
    }


    private static string[] ConnectionArguments(string connectionString)
    {
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        return ["-h", target.Host!, "-p", target.Port.ToString(CultureInfo.InvariantCulture), "-U", target.Username!, "-d", target.Database!];
    }

    /// <summary>Runs a client program, with <paramref name="input"/> on its standard input; returns its output, or throws
    /// with its errors.</summary>
    private static async Task<string> RunToolAsync(string executable, IEnumerable<string> arguments, string? input)
    {
        var start = new ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            RedirectStandardInput = input is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {executable}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
            process.StandardInput.Close();
        }
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{executable} {string.Join(' ', start.ArgumentList)} exited with {process.ExitCode}: {await errors}");
        return await output;
    }
}
