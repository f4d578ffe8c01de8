using System.Text;
using Npgsql;

namespace DBSync.Snapshots;

/// <summary>
/// The keyset chunk query of one table: <c>WHERE (k1, k2) &gt; (last) AND (k1, k2) &lt;= (max) ORDER BY k1, k2 LIMIT n</c>,
/// never OFFSET. Key values travel as text and are cast to the key columns' own types, so any key type works and
/// progress can be stored as plain strings. The maximum key is fixed when the table's snapshot starts, so a table that
/// keeps growing still finishes (rows inserted later arrive through the stream).
/// </summary>
internal sealed class SnapshotQuery
{
    private SnapshotQuery(SyncTableInfo table, string[] keyTypes, string[]? maxKey)
    {
        Table = table;
        KeyTypes = keyTypes;
        MaxKey = maxKey;
    }

    public SyncTableInfo Table { get; }

    /// <summary>The SQL types of the key columns (format_type), in key order.</summary>
    public string[] KeyTypes { get; }

    /// <summary>The largest key when the snapshot started, as text; null for an empty table.</summary>
    public string[]? MaxKey { get; }

    public static async Task<SnapshotQuery> CreateAsync(NpgsqlConnection connection, SyncTableInfo table, CancellationToken cancellationToken)
    {
        var keyTypes = new string[table.KeyColumns.Length];
        await using (var command = new NpgsqlCommand(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = table.QualifiedName });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                for (var i = 0; i < keyTypes.Length; i++)
                {
                    if (table.KeyColumns[i].Name == reader.GetString(0))
                        keyTypes[i] = reader.GetString(1);
                }
            }
        }

        string[]? maxKey = null;
        var keys = string.Join(", ", table.KeyColumns.Select(k => SyncTableInfo.QuoteIdentifier(k.Name) + " DESC"));
        var texts = KeyTexts(table);
        await using (var command = new NpgsqlCommand($"SELECT {texts} FROM {table.QualifiedName} ORDER BY {keys} LIMIT 1", connection))
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                maxKey = [.. Enumerable.Range(0, keyTypes.Length).Select(reader.GetString)];
        }

        return new SnapshotQuery(table, keyTypes, maxKey);
    }

    /// <summary>The chunk SELECT: the entity's columns in order, then the key columns as text. Parameters: the last key
    /// of the previous chunk (when <paramref name="hasLastKey"/>), then the maximum key.</summary>
    public string ChunkSql(bool hasLastKey, int chunkSize)
    {
        var keyList = "(" + string.Join(", ", Table.KeyColumns.Select(k => SyncTableInfo.QuoteIdentifier(k.Name))) + ")";
        var sql = new StringBuilder("SELECT ");
        sql.AppendJoin(", ", Table.Columns.Select(c => SyncTableInfo.QuoteIdentifier(c.Name)));
        sql.Append(", ").Append(KeyTexts(Table));
        sql.Append(" FROM ").Append(Table.QualifiedName).Append(" WHERE ");
        var parameter = 1;
        if (hasLastKey)
            sql.Append(keyList).Append(" > ").Append(Parameters(ref parameter)).Append(" AND ");
        sql.Append(keyList).Append(" <= ").Append(Parameters(ref parameter));
        sql.Append(" ORDER BY ").AppendJoin(", ", Table.KeyColumns.Select(k => SyncTableInfo.QuoteIdentifier(k.Name)));
        sql.Append(" LIMIT ").Append(chunkSize);
        return sql.ToString();
    }

    /// <summary>The key columns as text, aliased: an output column named like the key would otherwise capture
    /// ORDER BY, which would then sort by the text (so '99' &gt; '120').</summary>
    private static string KeyTexts(SyncTableInfo table)
        => string.Join(", ", table.KeyColumns.Select((k, i) => $"{SyncTableInfo.QuoteIdentifier(k.Name)}::text AS dbsync_key_{i}"));

    private string Parameters(ref int next)
    {
        var parts = new string[KeyTypes.Length];
        for (var i = 0; i < parts.Length; i++)
            parts[i] = $"${next++}::text::{KeyTypes[i]}";
        return "(" + string.Join(", ", parts) + ")";
    }
}
