using DBSync.Protocol;
using Npgsql;

namespace DBSync.Mapping;

/// <summary>
/// At startup, before anything streams: every mapped column exists, is not a generated column, has a type its property
/// can hold, and (for an enum property) every label of the PostgreSQL enum has a member. The stream checks types again at
/// each Relation message and snapshots at each chunk; this check reports every problem of every table at once, early.
/// </summary>
internal static class ColumnTypeCheck
{
    /// <summary>Why a key property is never told to use [SyncIgnore] (the generator's DBSYNC003 says the same).</summary>
    internal const string KeyCannotBeIgnored = "a [PrimaryKey] property identifies the row, so it cannot be [SyncIgnore]";

    /// <summary>Reads the database's types for <paramref name="tables"/> and checks their columns.</summary>
    /// <exception cref="DBSyncConfigurationException">A mapped column cannot be decoded; the message lists each problem and its fix.</exception>
    public static async Task<PgTypeCatalog> CheckAsync(NpgsqlConnection connection, IReadOnlyList<SyncTableInfo> tables, CancellationToken cancellationToken)
    {
        var types = await PgTypeCatalog.LoadAsync(connection, tables, cancellationToken).ConfigureAwait(false);
        var problems = new List<string>();
        int? moneyDigits = null;
        foreach (var table in tables)
        {
            var columns = new Dictionary<string, (uint Type, string Generated)>(StringComparer.Ordinal);
            await using (var command = new NpgsqlCommand(
                "SELECT a.attname::text, a.atttypid, a.attgenerated::text FROM pg_attribute a " +
                "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped", connection))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = table.QualifiedName });
                await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    columns[reader.GetString(0)] = (reader.GetFieldValue<uint>(1), reader.GetString(2));
            }

            foreach (var column in table.Columns)
            {
                var property = $"{table.EntityType.Name}.{column.PropertyName}";
                if (!columns.TryGetValue(column.Name, out var found))
                {
                    problems.Add($"Column \"{column.Name}\" of {table.DisplayName} (property {property}) does not exist. " +
                                 (column.IsKey
                                     ? $"Create it, or map the property to the table's key column with [Column(\"...\")]; {KeyCannotBeIgnored}."
                                     : "Create it, map the property to another column with [Column(\"...\")], or mark it [SyncIgnore]."));
                    continue;
                }
                if (found.Generated.Length > 0)
                {
                    problems.Add($"Column \"{column.Name}\" of {table.DisplayName} (property {property}) is a generated column: pgoutput never " +
                                 "sends generated columns, so changes could not fill it while snapshots would. " +
                                 (column.IsKey
                                     ? $"Put [PrimaryKey] on columns that are stored, not generated; {KeyCannotBeIgnored}."
                                     : "Mark the property [SyncIgnore] (and compute it in C# if you need it)."));
                    continue;
                }
                PgColumnType resolved;
                try
                {
                    resolved = ColumnBinding.Resolve(table, column, found.Type, types);
                }
                catch (SchemaMismatchException e)
                {
                    problems.Add(e.Message);
                    continue;
                }
                if (resolved.Scalar == PgTypeOids.Money)
                {
                    // A money value is an integer count of the smallest unit of the lc_monetary it was written under; DBSync
                    // reads two decimal places (lc_monetary = C). Another number of places would shift every value.
                    moneyDigits ??= await MoneyDigitsAsync(connection, cancellationToken).ConfigureAwait(false);
                    if (moneyDigits != 2)
                    {
                        problems.Add($"Column \"{column.Name}\" of {table.DisplayName} (property {property}) is money, whose values this database's " +
                                     $"lc_monetary counts in units of 10^-{moneyDigits}; DBSync reads money with two decimal places. " +
                                     $"Change the column to numeric (ALTER TABLE {table.QualifiedName} ALTER COLUMN {SyncTableInfo.QuoteIdentifier(column.Name)} TYPE numeric)" +
                                     (column.IsKey ? "." : ", or mark the property [SyncIgnore]."));
                    }
                }
                if (column.EnumLabels is { } labels && types.EnumOf(found.Type) is var (enumName, pgLabels))
                {
                    var missing = pgLabels.Where(l => !labels.Labels.Contains(l, StringComparer.Ordinal)).ToList();
                    if (missing.Count > 0)
                    {
                        problems.Add($"Enum {enumName} of column \"{column.Name}\" of {table.DisplayName} has label(s) {string.Join(", ", missing.Select(l => $"'{l}'"))} " +
                                     $"that {labels.EnumName} (property {property}) has no member for. Add the members " +
                                     $"(with [PgLabel(\"...\")] where the name differs), or map the column to string.");
                    }
                }
            }
        }

        if (problems.Count > 0)
            throw new DBSyncConfigurationException(string.Join(Environment.NewLine, problems));
        return types;
    }

    /// <summary>The decimal places of money under the session's (by default the database's) lc_monetary.</summary>
    private static async Task<int> MoneyDigitsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT scale('1'::money::numeric)", connection);
        return (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }
}
