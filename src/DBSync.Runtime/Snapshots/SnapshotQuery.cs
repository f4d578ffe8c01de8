using System.Text;
using DBSync.Checkpoints;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Snapshots;

/// <summary>
/// The keyset chunk query of one table's snapshot: <c>WHERE (filter) AND (k1, k2) &gt; (last) AND (k1, k2) &lt;= (max)
/// ORDER BY k1, k2 LIMIT n</c>, never OFFSET. The chunk key is the primary key, or a surrogate column (NOT NULL, with a
/// unique index of its own). Key values travel as text and are cast to the key columns' own types, so any key type works
/// and progress can be stored as plain strings. The maximum key is fixed when the table's snapshot starts, so a table
/// that keeps growing still finishes (rows inserted later arrive through the stream).
/// </summary>
internal sealed class SnapshotQuery
{
    private const string UndefinedTable = "42P01";
    private const string ReadOnlySqlTransaction = "25006";

    internal SnapshotQuery(SyncTableInfo table, string from, bool emitsDeletes, string[] keyColumns, string[] keyTypes, string? filter,
        IReadOnlyList<string?> filterParameters, string[]? maxKey)
    {
        Table = table;
        From = from;
        EmitsDeletes = emitsDeletes;
        KeyColumns = keyColumns;
        KeyTypes = keyTypes;
        Filter = filter;
        FilterParameters = filterParameters;
        MaxKey = maxKey;
    }

    public SyncTableInfo Table { get; }

    /// <summary>What the chunks read: the table, or (<see cref="EmitsDeletes"/>) the table its rows left, aliased.</summary>
    private string From { get; }

    /// <summary>Whether the rows read are delivered as deletes (<see cref="JobState.DeletesFrom"/>) rather than Read.</summary>
    public bool EmitsDeletes { get; }

    /// <summary>The chunk key columns, in order.</summary>
    public string[] KeyColumns { get; }

    /// <summary>The SQL types of the chunk key columns (format_type), in key order.</summary>
    public string[] KeyTypes { get; }

    public string? Filter { get; }

    public IReadOnlyList<string?> FilterParameters { get; }

    /// <summary>The largest key when the snapshot started, as text; null for an empty table.</summary>
    public string[]? MaxKey { get; }

    /// <summary>Checks the table, chunk key and filter of <paramref name="job"/> and fixes the maximum key (or takes the one
    /// fixed when the job first started).</summary>
    /// <exception cref="SnapshotTableMissingException">The table does not exist.</exception>
    /// <exception cref="DBSyncException">The chunk key or the filter is not usable; the message says why.</exception>
    public static async Task<SnapshotQuery> CreateAsync(NpgsqlConnection connection, SyncTableInfo table, JobState job, CancellationToken cancellationToken)
    {
        // Rows that left the table (a detached partition): read from where they are now, those the table does not have
        // again. The source keeps the table's key, so its chunks page by the same columns.
        var source = job.DeletesFrom ?? table.QualifiedName;
        var columns = await ReadColumnsAsync(connection, source, job.DeletesFrom ?? table.DisplayName, cancellationToken).ConfigureAwait(false);
        string[] keyColumns;
        if (job.ChunkKey is null)
        {
            keyColumns = [.. table.KeyColumns.Select(k => k.Name)];
        }
        else
        {
            await CheckChunkKeyAsync(connection, table, job.ChunkKey, columns, cancellationToken).ConfigureAwait(false);
            keyColumns = [job.ChunkKey];
        }
        var keyTypes = keyColumns.Select(k => columns.TryGetValue(k, out var c) ? c.Type
            : throw new DBSyncException($"Snapshot of {table.DisplayName}: key column \"{k}\" does not exist any more.")).ToArray();

        var (from, filter) = (table.QualifiedName, job.Filter);
        if (job.DeletesFrom is { } left)
        {
            var keys = keyColumns.Select(SyncTableInfo.QuoteIdentifier).ToArray();
            from = $"{left} AS dbsync_rows";
            filter = $"NOT EXISTS (SELECT 1 FROM {table.QualifiedName} dbsync_table WHERE ({string.Join(", ", keys.Select(k => "dbsync_table." + k))}) = " +
                     $"({string.Join(", ", keys.Select(k => "dbsync_rows." + k))}))";
        }
        var query = new SnapshotQuery(table, from, job.DeletesFrom is not null, keyColumns, keyTypes, filter, job.FilterParameters, null);
        if (job.Started)
            return query.WithMaxKey(job.MaxKey?.ToArray());

        // The largest key (among the rows the filter selects); a bad filter fails here, before any watermark.
        var order = string.Join(", ", keyColumns.Select(k => SyncTableInfo.QuoteIdentifier(k) + " DESC"));
        var sql = $"SELECT {query.KeyTexts()} FROM {from} {query.FilterClause("WHERE")} ORDER BY {order} LIMIT 1";
        try
        {
            // Read only, as every query that carries a filter (SQL of whoever may request a snapshot) is.
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (var readOnly = new NpgsqlCommand("SET TRANSACTION READ ONLY", connection, transaction))
                await readOnly.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            string[]? maxKey = null;
            await using (var command = new NpgsqlCommand(sql, connection, transaction))
            {
                query.AddFilterParameters(command);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    maxKey = [.. Enumerable.Range(0, keyColumns.Length).Select(reader.GetString)];
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return query.WithMaxKey(maxKey);
        }
        catch (PostgresException e) when (job.Filter is not null && e.SqlState == ReadOnlySqlTransaction)
        {
            throw new DBSyncException(
                $"Snapshot filter of {table.DisplayName} tried to write ({e.MessageText}): every query with a snapshot filter runs in a read-only " +
                $"transaction. The filter was: {job.Filter}; write a condition that only reads.", e);
        }
        catch (PostgresException e) when (job.Filter is not null && e.SqlState != UndefinedTable)
        {
            throw new DBSyncException(
                $"Snapshot filter of {table.DisplayName} is not valid: {e.MessageText}. The filter was: {job.Filter} " +
                $"with {job.FilterParameters.Count} parameter(s); write a SQL condition on the table's columns, with $1, $2, ... for the parameters.", e);
        }
    }

    private SnapshotQuery WithMaxKey(string[]? maxKey) => new(Table, From, EmitsDeletes, KeyColumns, KeyTypes, Filter, FilterParameters, maxKey);

    /// <summary>The same query over the keys up to and including <paramref name="upper"/> (a segment's end).</summary>
    public SnapshotQuery Through(IReadOnlyList<string> upper) => WithMaxKey([.. upper]);

    /// <summary>How many pages the table has (its partitions' together), for <see cref="SampleKeysSql"/>. Parameter: the
    /// table's name.</summary>
    public const string PagesSql =
        "SELECT coalesce(sum(pg_relation_size(relid)), 0) / current_setting('block_size')::bigint FROM pg_partition_tree($1::regclass)";

    /// <summary>The chunk keys (as text, in key order, up to the maximum key) of a sample of the table's pages
    /// (<c>TABLESAMPLE SYSTEM</c>: whole pages at random, no scan of the rest), to split the key range for parallel reads.
    /// The filter is left out: the bounds only spread the work. Parameters: the sample's percentage, then the maximum key.</summary>
    public string SampleKeysSql()
    {
        var parameter = 2;
        var keyList = "(" + string.Join(", ", KeyColumns.Select(SyncTableInfo.QuoteIdentifier)) + ")";
        return $"SELECT {KeyTexts()} FROM {Table.QualifiedName} TABLESAMPLE SYSTEM ($1::float8) WHERE {keyList} <= {KeyParameters(ref parameter)} " +
               $"ORDER BY {string.Join(", ", KeyColumns.Select(SyncTableInfo.QuoteIdentifier))}";
    }

    /// <summary>Adds the maximum key as the parameters of <see cref="SampleKeysSql"/> after the percentage.</summary>
    public void AddMaxKeyParameters(NpgsqlCommand command)
    {
        foreach (var value in MaxKey!)
            command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.Text });
    }

    private static async Task<Dictionary<string, (string Type, bool NotNull)>> ReadColumnsAsync(NpgsqlConnection connection, string qualifiedName,
        string displayName, CancellationToken cancellationToken)
    {
        var columns = new Dictionary<string, (string Type, bool NotNull)>();
        await using var command = new NpgsqlCommand(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a " +
            "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            connection);
        command.Parameters.Add(new NpgsqlParameter { Value = qualifiedName });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            columns[reader.GetString(0)] = (reader.GetString(1), reader.GetBoolean(2));
        if (columns.Count == 0)
            throw new SnapshotTableMissingException($"table {displayName} does not exist in database \"{connection.Database}\"");
        return columns;
    }

    private static async Task CheckChunkKeyAsync(NpgsqlConnection connection, SyncTableInfo table, string chunkKey,
        Dictionary<string, (string Type, bool NotNull)> columns, CancellationToken cancellationToken)
    {
        if (!columns.TryGetValue(chunkKey, out var column))
            throw new DBSyncException($"Snapshot chunk key \"{chunkKey}\" is not a column of {table.DisplayName}. Name a NOT NULL column with a unique index of its own, or leave ChunkKey unset to use the primary key.");
        await using var command = new NpgsqlCommand(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] " +
            "WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1 AND i.indpred IS NULL " +
            "AND i.indexprs IS NULL AND a.attname = $2)",
            connection);
        command.Parameters.Add(new NpgsqlParameter { Value = table.QualifiedName });
        command.Parameters.Add(new NpgsqlParameter { Value = chunkKey });
        var unique = (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        if (!column.NotNull || !unique)
        {
            var missing = string.Join(" and ", new[] { column.NotNull ? null : "NOT NULL", unique ? null : "a unique index on it alone" }.Where(m => m is not null));
            throw new DBSyncException(
                $"Snapshot chunk key \"{chunkKey}\" of {table.DisplayName} lacks {missing}: chunks by a key that can repeat or be NULL would skip rows. " +
                $"Add it (ALTER TABLE {table.QualifiedName} ALTER COLUMN {SyncTableInfo.QuoteIdentifier(chunkKey)} SET NOT NULL; CREATE UNIQUE INDEX ON {table.QualifiedName} ({SyncTableInfo.QuoteIdentifier(chunkKey)});) or use the primary key.");
        }
    }

    /// <summary>The chunk SELECT: the entity's columns in order, then the chunk key columns as text. Parameters: the
    /// filter's, then the last key of the previous chunk (when <paramref name="hasLastKey"/>), then the maximum key.</summary>
    public string ChunkSql(bool hasLastKey, int chunkSize)
        => RangeSql(string.Join(", ", Table.Columns.Select(c => SyncTableInfo.QuoteIdentifier(c.Name))) + ", " + KeyTexts(), hasLastKey, "", chunkSize);

    /// <summary>The key (as text) of the last row <see cref="ChunkSql"/> returns when that is fewer rows than asked for
    /// (every row of the range): in the chunk's transaction it is the range's highest key. Same parameters.</summary>
    public string LastKeySql(bool hasLastKey) => RangeSql(KeyTexts(), hasLastKey, " DESC", 1);

    private string RangeSql(string selectList, bool hasLastKey, string direction, int limit)
    {
        var keyList = "(" + string.Join(", ", KeyColumns.Select(SyncTableInfo.QuoteIdentifier)) + ")";
        var sql = new StringBuilder("SELECT ").Append(selectList);
        sql.Append(" FROM ").Append(From).Append(" WHERE ");
        var parameter = FilterParameters.Count + 1;
        if (Filter is not null)
            sql.Append(FilterClause("")).Append(" AND ");
        if (hasLastKey)
            sql.Append(keyList).Append(" > ").Append(KeyParameters(ref parameter)).Append(" AND ");
        sql.Append(keyList).Append(" <= ").Append(KeyParameters(ref parameter));
        sql.Append(" ORDER BY ").AppendJoin(", ", KeyColumns.Select(k => SyncTableInfo.QuoteIdentifier(k) + direction));
        sql.Append(" LIMIT ").Append(limit);
        return sql.ToString();
    }

    /// <summary>Adds the chunk query's parameters to <paramref name="command"/>.</summary>
    public void AddParameters(NpgsqlCommand command, IReadOnlyList<string>? lastKey)
    {
        AddFilterParameters(command);
        foreach (var value in (lastKey ?? []).Concat(MaxKey!))
            command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.Text });
    }

    // Filter values go as untyped text: the server infers each one's type from the condition, as for a literal.
    private void AddFilterParameters(NpgsqlCommand command)
    {
        foreach (var value in FilterParameters)
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Unknown });
    }

    private string FilterClause(string keyword) => Filter is null ? "" : $"{keyword} ({Filter})";

    /// <summary>The key columns as text, aliased: an output column named like the key would otherwise capture
    /// ORDER BY, which would then sort by the text (so '99' &gt; '120').</summary>
    private string KeyTexts() => string.Join(", ", KeyColumns.Select((k, i) => $"{SyncTableInfo.QuoteIdentifier(k)}::text AS dbsync_key_{i}"));

    private string KeyParameters(ref int next)
    {
        var parts = new string[KeyTypes.Length];
        for (var i = 0; i < parts.Length; i++)
            parts[i] = $"${next++}::text::{KeyTypes[i]}";
        return "(" + string.Join(", ", parts) + ")";
    }
}
