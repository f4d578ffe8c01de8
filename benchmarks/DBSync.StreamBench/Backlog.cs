using System.Globalization;
using DBSync.Bench;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.StreamBench;

/// <summary>
/// The backlog every consumer drains: a template slot created before 1M users rows are inserted in 1,000-row
/// transactions and 200k single-row update transactions are run (pgbench, 4 clients). Each drain reads a copy of the
/// template (<c>pg_copy_logical_replication_slot</c>), so every consumer and every round sees the same WAL.
/// </summary>
internal sealed class Backlog
{
    public const string Publication = "dbsync_e2e";
    private const string Template = "dbsync_e2e_template";

    private Backlog(NpgsqlLogSequenceNumber end, long transactions, long rows)
    {
        End = end;
        Transactions = transactions;
        Rows = rows;
    }

    /// <summary>The end of the last transaction's commit: the position every drain stops at.</summary>
    public NpgsqlLogSequenceNumber End { get; }

    public long Transactions { get; }

    /// <summary>Row changes (inserts and updates) in the backlog.</summary>
    public long Rows { get; }

    public static async Task<Backlog> BuildAsync(string connectionString, Pgbench pgbench, int rows, int rowsPerTransaction, int updates)
    {
        await UsersTable.CreateSchemaAsync(connectionString);
        await UsersTable.ExecuteAsync(connectionString, $"CREATE PUBLICATION {Publication} FOR TABLE users");
        await UsersTable.ExecuteAsync(connectionString, $"SELECT pg_create_logical_replication_slot('{Template}', 'pgoutput')");

        for (var from = 1; from <= rows; from += rowsPerTransaction)
            await UsersTable.InsertAsync(connectionString, from, Math.Min(rows, from + rowsPerTransaction - 1));
        await UsersTable.AdvanceSequenceAsync(connectionString);
        var script = Path.Combine(Path.GetTempPath(), $"dbsync-e2e-update-{Environment.ProcessId}.sql");
        await File.WriteAllTextAsync(script, string.Create(CultureInfo.InvariantCulture,
            $"\\set id random(1, {rows})\nUPDATE users SET first_name = 'Updated' || :id, address = :id || ' Updated Road' WHERE id = :id;\n"));
        try
        {
            const int clients = 4;
            await pgbench.RunScriptAsync(script, clients, threads: 2, transactionsPerClient: updates / clients);
        }
        finally
        {
            File.Delete(script);
        }

        // Where the last commit ends, as the template slot decodes it: the last message's position (pgoutput writes a
        // Commit at the end of its commit record). One decoding pass, not consumed (peek).
        var end = await UsersTable.ScalarAsync<string>(connectionString,
            $"SELECT max(lsn)::text FROM pg_logical_slot_peek_binary_changes('{Template}', NULL, NULL, 'proto_version', '2', 'publication_names', '{Publication}')");
        var transactions = rows / rowsPerTransaction + updates;
        return new Backlog(NpgsqlLogSequenceNumber.Parse(end), transactions, (long)rows + updates);
    }

    /// <summary>A fresh slot at the template's position, for one drain.</summary>
    public static Task CopyAsync(string connectionString, string slot)
        => UsersTable.ExecuteAsync(connectionString, $"SELECT pg_copy_logical_replication_slot('{Template}', '{slot}')");
}
