using System.Globalization;
using DBSync.Snapshots;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>What <see cref="PartitionWatcher"/> reads from the catalog about the partitions of the mapped tables.</summary>
internal sealed class PartitionCatalog(IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables)
{
    /// <summary>How many rows of a detached partition are counted at most (the log then says more than that).</summary>
    public const int MaxCounted = 1_000_000;

    /// <summary>Which mapped table the relation <paramref name="relationId"/> belongs to, through partitioning; null when none.</summary>
    public async Task<PartitionOwner?> FindOwnerAsync(NpgsqlConnection connection, uint relationId, CancellationToken cancellationToken)
    {
        // Ancestors nearest first, then the relation's own partitions: a mapped ancestor means the relation's changes are
        // that table's; a mapped partition below it means the mapped table's changes arrive under this relation.
        const string sql = """
            SELECT true, n.nspname::text, c.relname::text, a.depth
            FROM pg_partition_ancestors($1::oid) WITH ORDINALITY a(relid, depth)
            JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.relid <> $1::oid
            UNION ALL
            SELECT false, n.nspname::text, c.relname::text, t.level
            FROM pg_partition_tree($1::oid) t
            JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE t.relid <> $1::oid
            ORDER BY 1 DESC, 4
            """;
        // Before PostgreSQL 13 no partitioned table can be published (nor mapped: the setup refuses it), and before 12
        // these functions do not exist.
        if (connection.PostgreSqlVersion.Major < 13)
            return null;
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = relationId, NpgsqlDbType = NpgsqlDbType.Oid });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (tables.TryGetValue((reader.GetString(1), reader.GetString(2)), out var registration) && registration is not SignalRegistration)
                return new PartitionOwner(registration, reader.GetBoolean(0));
        }
        return null;
    }

    /// <summary>The mapped tables that are partitioned (their quoted names).</summary>
    public async Task<string[]> PartitionedRootsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT m FROM unnest($1::text[]) m JOIN pg_class c ON c.oid = to_regclass(m) WHERE c.relkind = 'p'", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Values.Where(t => t is not SignalRegistration).Select(t => t.Table.QualifiedName).ToArray() });
        var roots = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            roots.Add(reader.GetString(0));
        return [.. roots];
    }

    /// <summary>The leaf partitions under <paramref name="roots"/> now, by oid.</summary>
    public async Task<Dictionary<uint, Partition>> LeafPartitionsAsync(NpgsqlConnection connection, string[] roots, CancellationToken cancellationToken)
    {
        var partitions = new Dictionary<uint, Partition>();
        await using var command = new NpgsqlCommand("""
            SELECT m.name, t.relid::oid, format('%I.%I', n.nspname, c.relname), n.nspname || '.' || c.relname, c.relkind::text,
                   pg_get_expr(c.relpartbound, c.oid), pg_get_partition_constraintdef(c.oid), c.relfilenode::oid
            FROM unnest($1::text[]) m(name)
            CROSS JOIN LATERAL pg_partition_tree(to_regclass(m.name)) t
            JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE t.isleaf AND t.level > 0
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = roots });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var table = tables.Values.First(r => r.Table.QualifiedName == reader.GetString(0)).Table;
            partitions[reader.GetFieldValue<uint>(1)] = new Partition(table, reader.GetString(2), reader.GetString(3), reader.GetString(4)[0],
                reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetFieldValue<uint>(7));
        }
        return partitions;
    }

    /// <summary>Whether a partition has rows.</summary>
    public static async Task<bool> HasRowsAsync(NpgsqlConnection connection, Partition partition, CancellationToken cancellationToken)
    {
        // Rows are looked for through the partitioned table (the role may read it, not necessarily the partition itself),
        // restricted by the partition's constraint, which lets the planner read that partition alone.
        // The constraint is the server's own deparsed SQL (pg_get_partition_constraintdef), with its literals quoted by it.
        // A DEFAULT partition with no siblings has no constraint: it holds every row of the table.
        var where = partition.Constraint is { } constraint ? $"{partition.Table.QualifiedName} WHERE {constraint}" : $"ONLY {partition.Qualified}";
        await using var command = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM {where})", connection);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>A partition that left its table: its quoted name if it still exists as a table, and its rows (up to
    /// <see cref="MaxCounted"/> and one) when this role may count them.</summary>
    public static async Task<(string? Qualified, long? Rows)> DetachedAsync(NpgsqlConnection connection, uint oid, CancellationToken cancellationToken)
    {
        string? qualified;
        await using (var exists = new NpgsqlCommand("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid", connection))
        {
            exists.Parameters.Add(new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlDbType.Oid });
            qualified = await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
        }
        if (qualified is null)
            return (null, null);
        try
        {
            // Counted for the log, up to a bound: a big detached table must not hold the watcher (nor a session's start).
            await using var count = new NpgsqlCommand(
                $"SELECT count(*) FROM (SELECT FROM ONLY {qualified} LIMIT {(MaxCounted + 1).ToString(CultureInfo.InvariantCulture)}) rows", connection);
            return (qualified, (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);
        }
        catch (PostgresException e) when (e.SqlState is "42501" or "42P01")
        {
            // Not readable by this role, or dropped meanwhile: the warning says the count is unknown.
            return (qualified, null);
        }
    }
}

/// <summary>A leaf partition as one reading saw it.</summary>
/// <param name="Table">The mapped partitioned table it belongs to.</param>
/// <param name="Qualified">Its quoted name.</param>
/// <param name="Name">Its <c>schema.name</c>.</param>
/// <param name="Kind">Its pg_class.relkind ('r' a table, 'f' a foreign table).</param>
/// <param name="Bound">Its partition bound, if any.</param>
/// <param name="Constraint">Its partition constraint, if any.</param>
/// <param name="FileNode">Its storage: a new one means its rows were replaced.</param>
internal sealed record Partition(SyncTableInfo Table, string Qualified, string Name, char Kind, string? Bound, string? Constraint, uint FileNode);
