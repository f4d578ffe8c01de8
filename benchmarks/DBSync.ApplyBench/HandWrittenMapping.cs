using Npgsql;

namespace DBSync.ApplyBench;

/// <summary>
/// How the benchmark's applier writes pgbench's tables into the target: today's hand-written <c>Map&lt;T&gt;</c>
/// mappings, one statement per change (an upsert for inserts, updates and snapshot rows). This is the only place that
/// knows it.
/// TODO(lead): switch to the generated mapping (<c>applier.MapTable&lt;T&gt;("pgbench_accounts")</c> and so on, batched,
/// snapshot chunks through COPY) once it is merged; nothing else in the benchmark changes.
/// </summary>
internal static class HandWrittenMapping
{
    /// <summary>Maps the four tables onto tables of the same names in the target.</summary>
    public static void MapPgbenchTables(PostgresApplier applier)
    {
        Map<PgbenchAccount>(applier, "pgbench_accounts", ["aid", "bid", "abalance", "filler"], a => [a.Aid, a.Bid, a.Abalance, a.Filler]);
        Map<PgbenchBranch>(applier, "pgbench_branches", ["bid", "bbalance", "filler"], b => [b.Bid, b.Bbalance, b.Filler]);
        Map<PgbenchTeller>(applier, "pgbench_tellers", ["tid", "bid", "tbalance", "filler"], t => [t.Tid, t.Bid, t.Tbalance, t.Filler]);
        Map<PgbenchHistory>(applier, "pgbench_history", ["id", "tid", "bid", "aid", "delta", "mtime", "filler"],
            h => [h.Id, h.Tid, h.Bid, h.Aid, h.Delta, h.Mtime, h.Filler]);
    }

    /// <summary>One table whose key is its first column: upsert, delete by key, truncate.</summary>
    private static void Map<T>(PostgresApplier applier, string table, string[] columns, Func<T, object?[]> values) where T : class, ISyncTable<T>
    {
        var placeholders = string.Join(", ", columns.Select((_, i) => $"${i + 1}"));
        var updates = string.Join(", ", columns.Skip(1).Select(c => $"{c} = excluded.{c}"));
        var upsert = $"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES ({placeholders}) ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}";
        var delete = $"DELETE FROM {table} WHERE {columns[0]} = $1";
        var truncate = $"TRUNCATE {table}";
        applier.Map<T>(async (change, target, cancellationToken) =>
        {
            await using var command = target.CreateCommand(change.Kind switch
            {
                ChangeKind.Delete => delete,
                ChangeKind.Truncate => truncate,
                _ => upsert, // Insert, Update and snapshot rows (Read)
            });
            if (change.Kind != ChangeKind.Truncate)
            {
                var row = values(change.New ?? change.Old!);
                var count = change.Kind == ChangeKind.Delete ? 1 : row.Length;
                for (var i = 0; i < count; i++)
                    command.Parameters.Add(new NpgsqlParameter { Value = row[i] ?? DBNull.Value });
            }
            await command.ExecuteNonQueryAsync(cancellationToken);
        });
    }
}
