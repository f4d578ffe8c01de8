using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Applying;

/// <summary>How one mapped column is written into the target: the type its values travel as (a parameter's or a staging
/// column's), and the target column's type that the statement casts them to.</summary>
internal sealed class TargetColumn
{
    public TargetColumn(SyncColumnInfo source, string targetType, string baseTypeName)
    {
        Source = source;
        QuotedName = SyncTableInfo.QuoteIdentifier(source.Name);
        CastType = targetType;
        // Types Npgsql writes exactly as they are travel typed; the others as PostgreSQL's text form, which the cast parses
        // (enums by label, json as written, Pg* structs with their infinities, networks with their masks; dates and
        // timestamps too: Npgsql writes their MinValue and MaxValue as -infinity and infinity).
        AsText = source.Type is SyncColumnType.DateOnly or SyncColumnType.DateTime or SyncColumnType.DateTimeOffset or SyncColumnType.Enum or SyncColumnType.JsonDocument or SyncColumnType.JsonElement or SyncColumnType.IPNetwork
            or SyncColumnType.PgDate or SyncColumnType.PgTimestamp or SyncColumnType.PgTimeTz or SyncColumnType.PgInterval or SyncColumnType.PgInet;
        // A DateTime into a timestamptz is a UTC instant whatever its Kind says; a TimeSpan into a time column is written as
        // a time, so 24:00:00 stays 24:00:00 (as an interval it would be cast to 00:00:00).
        DateTimeUtc = source.Type == SyncColumnType.DateTime && baseTypeName == "timestamptz";
        var (wire, sql) = source.Type switch
        {
            _ when AsText => (NpgsqlDbType.Text, "text"),
            SyncColumnType.Boolean => (NpgsqlDbType.Boolean, "boolean"),
            SyncColumnType.Int16 => (NpgsqlDbType.Smallint, "smallint"),
            SyncColumnType.Int32 => (NpgsqlDbType.Integer, "integer"),
            SyncColumnType.Int64 => (NpgsqlDbType.Bigint, "bigint"),
            SyncColumnType.Single => (NpgsqlDbType.Real, "real"),
            SyncColumnType.Double => (NpgsqlDbType.Double, "double precision"),
            SyncColumnType.Decimal => (NpgsqlDbType.Numeric, "numeric"),
            SyncColumnType.String => (NpgsqlDbType.Text, "text"),
            SyncColumnType.TimeOnly => (NpgsqlDbType.Time, "time"),
            SyncColumnType.TimeSpan when baseTypeName == "time" => (NpgsqlDbType.Time, "time"),
            SyncColumnType.TimeSpan => (NpgsqlDbType.Interval, "interval"),
            SyncColumnType.Guid => (NpgsqlDbType.Uuid, "uuid"),
            SyncColumnType.Bytes or SyncColumnType.ByteMemory => (NpgsqlDbType.Bytea, "bytea"),
            SyncColumnType.IPAddress => (NpgsqlDbType.Inet, "inet"),
            _ => throw new NotSupportedException($"Column {source.Name}: no way to write a {source.Type}."),
        };
        // An array whose elements travel as text travels as one array literal, a text value like a scalar's.
        WireType = source.ArrayRank > 0 && !AsText ? NpgsqlDbType.Array | wire : wire;
        WireSqlType = source.ArrayRank > 0 && !AsText ? sql + "[]" : sql;
        // Binary COPY hands each value to the target column type's receive function: only a column whose type reads the
        // wire type's binary form (the same type; varchar and char read text's, and check their length as the cast does)
        // can take it without the cast. Others would fail, or worse, read the bytes as another type.
        // An array's elements must be of exactly the wire type too (array_recv checks the element type; no domains,
        // no varchar[]).
        DirectCopy = !AsText && source.ArrayRank > 0 == targetType.EndsWith("[]", StringComparison.Ordinal)
            && (source.ArrayRank == 0 || targetType == WireSqlType) && (wire, baseTypeName) switch
        {
            (NpgsqlDbType.Text, "text" or "varchar" or "bpchar") => true,
            (NpgsqlDbType.Boolean, "bool") or (NpgsqlDbType.Smallint, "int2") or (NpgsqlDbType.Integer, "int4") or (NpgsqlDbType.Bigint, "int8") => true,
            (NpgsqlDbType.Real, "float4") or (NpgsqlDbType.Double, "float8") or (NpgsqlDbType.Numeric, "numeric") => true,
            (NpgsqlDbType.Time, "time") or (NpgsqlDbType.Interval, "interval") or (NpgsqlDbType.Uuid, "uuid") or (NpgsqlDbType.Bytea, "bytea") => true,
            (NpgsqlDbType.Inet, "inet") => true,
            _ => false,
        };
    }

    /// <summary>Whether binary COPY can write this column's values straight into the target column (see the constructor).</summary>
    public bool DirectCopy { get; }

    /// <summary>Whether the column's values are written into a COPY by <see cref="BinaryCopyBuffer"/> rather than Npgsql's
    /// importer: scalars of the plain types whose send format is fixed (booleans, integers, floats, text, bytea, uuid).</summary>
    public bool RawCopy => Source.ArrayRank == 0 && !AsText && Source.Type is SyncColumnType.Boolean or SyncColumnType.Int16 or SyncColumnType.Int32
        or SyncColumnType.Int64 or SyncColumnType.Single or SyncColumnType.Double or SyncColumnType.String or SyncColumnType.Guid or SyncColumnType.Bytes
        or SyncColumnType.ByteMemory;

    /// <summary>The mapped property's column.</summary>
    public SyncColumnInfo Source { get; }

    /// <summary>The target column's name, quoted.</summary>
    public string QuotedName { get; }

    /// <summary>The target column's type without modifiers (<c>varchar</c>, <c>mood[]</c>, <c>posint</c>): values are cast
    /// to it explicitly, and the column's modifiers then apply as to any assignment.</summary>
    public string CastType { get; }

    /// <summary>Whether values travel as PostgreSQL text (see <see cref="ColumnValues.Text"/>).</summary>
    public bool AsText { get; }

    /// <summary>Whether DateTime values are written as UTC instants (into a <c>timestamptz</c>), or as the clock reading.</summary>
    public bool DateTimeUtc { get; }

    /// <summary>The type values travel as.</summary>
    public NpgsqlDbType WireType { get; }

    /// <summary><see cref="WireType"/> in SQL, for the staging table of a snapshot chunk.</summary>
    public string WireSqlType { get; }

    /// <summary>The value of parameter <paramref name="number"/> cast to the target column's type.</summary>
    public string Parameter(int number) => $"${number}::{CastType}";
}

/// <summary>
/// The target table of a generated mapping as found in the target database, and the statements that apply each kind of
/// change to it. Statement parameters are the mapped columns in <see cref="SyncTableInfo.Columns"/> order, only those
/// that <see cref="Includes"/> selects, so the SQL and the parameter writer number them alike.
/// </summary>
internal sealed class TargetTable
{
    private readonly Dictionary<ColumnSet, string> _partialUpdates = [];

    private TargetTable(SyncTableInfo source, string qualifiedName, string displayName, TargetColumn[] columns)
    {
        Source = source;
        QualifiedName = qualifiedName;
        DisplayName = displayName;
        Columns = columns;
        Keys = [.. source.KeyColumns.Select(k => columns[k.Index])];
        var names = string.Join(", ", columns.Select(c => c.QuotedName));
        var keyList = string.Join(", ", Keys.Select(k => k.QuotedName));
        var nonKeys = columns.Where(c => !c.Source.IsKey).ToArray();
        var onConflict = nonKeys.Length == 0
            ? $" ON CONFLICT ({keyList}) DO NOTHING"
            : $" ON CONFLICT ({keyList}) DO UPDATE SET {string.Join(", ", nonKeys.Select(c => $"{c.QuotedName} = excluded.{c.QuotedName}"))}";
        UpsertSql = $"INSERT INTO {qualifiedName} ({names}) VALUES ({string.Join(", ", columns.Select((c, i) => c.Parameter(i + 1)))}){onConflict}";
        DeleteSql = $"DELETE FROM {qualifiedName} WHERE {KeyMatch(1)}";
        TruncateSql = $"TRUNCATE {qualifiedName}";
        StagingTable = SyncTableInfo.QuoteIdentifier("dbsync_stage_" + source.Schema + "_" + source.Name);
        CreateStagingSql = $"CREATE TEMPORARY TABLE IF NOT EXISTS {StagingTable} ({string.Join(", ", columns.Select(c => $"{c.QuotedName} {c.WireSqlType}"))}, {DeleteFlag} boolean NOT NULL)";
        CopySql = $"COPY {StagingTable} ({names}, {DeleteFlag}) FROM STDIN (FORMAT BINARY)";
        UpsertStagedSql = $"INSERT INTO {qualifiedName} ({names}) SELECT {string.Join(", ", columns.Select(c => $"{c.QuotedName}::{c.CastType}"))} FROM {StagingTable} WHERE NOT {DeleteFlag}{onConflict}";
        DeleteStagedSql = $"DELETE FROM {qualifiedName} t USING {StagingTable} s WHERE s.{DeleteFlag} AND " +
                          string.Join(" AND ", Keys.Select(k => $"t.{k.QuotedName} = s.{k.QuotedName}::{k.CastType}"));
        ClearStagingSql = $"TRUNCATE {StagingTable}";
        DirectCopySql = columns.All(c => c.DirectCopy) ? $"COPY {qualifiedName} ({names}) FROM STDIN (FORMAT BINARY)" : null;
        RawCopy = columns.All(c => c.RawCopy);
    }

    /// <summary>Whether COPY rows are written by <see cref="BinaryCopyBuffer"/> (every column <see cref="TargetColumn.RawCopy"/>).</summary>
    public bool RawCopy { get; }

    /// <summary>The mapped source table.</summary>
    public SyncTableInfo Source { get; }

    /// <summary>The target table, quoted.</summary>
    public string QualifiedName { get; }

    /// <summary>The target table as <c>schema.table</c>, for messages.</summary>
    public string DisplayName { get; }

    /// <summary>One per mapped column, in <see cref="SyncTableInfo.Columns"/> order.</summary>
    public TargetColumn[] Columns { get; }

    /// <summary>The key columns, in key order.</summary>
    public TargetColumn[] Keys { get; }

    /// <summary>Insert, or update every column of the row with the same key: parameters are all the columns.</summary>
    public string UpsertSql { get; }

    /// <summary>Delete by key: parameters are the key columns.</summary>
    public string DeleteSql { get; }

    /// <summary>Empties the table.</summary>
    public string TruncateSql { get; }

    /// <summary>The session's temporary table that staged rows (a snapshot chunk's, or a long run of changes) are copied
    /// into.</summary>
    public string StagingTable { get; }

    /// <summary>Creates <see cref="StagingTable"/> (once per session).</summary>
    public string CreateStagingSql { get; }

    /// <summary>Binary COPY into <see cref="StagingTable"/>.</summary>
    public string CopySql { get; }

    /// <summary>The staging table's column that marks a staged delete (only its key columns count); the other rows are
    /// upserts. A name no mapped column can plausibly have.</summary>
    public const string DeleteFlag = "\"dbsync$delete\"";

    /// <summary>The staged rows that are not deletes, as upserts into the target table.</summary>
    public string UpsertStagedSql { get; }

    /// <summary>The staged deletes, by key, from the target table.</summary>
    public string DeleteStagedSql { get; }

    /// <summary>Binary COPY straight into the target table; null when a column's values need the cast
    /// (<see cref="TargetColumn.DirectCopy"/>).</summary>
    public string? DirectCopySql { get; }

    /// <summary>Empties <see cref="StagingTable"/> for the next rows.</summary>
    public string ClearStagingSql { get; }

    /// <summary>Whether a column is a parameter of a statement that takes the key columns only (<paramref name="keysOnly"/>)
    /// or every column but the ones in <paramref name="skipped"/>. The SQL and the parameter writer both number by it.</summary>
    public static bool Includes(SyncColumnInfo column, bool keysOnly, ColumnSet skipped)
        => keysOnly ? column.IsKey : !skipped.Contains(column.Index);

    /// <summary>
    /// An update that leaves <paramref name="unchanged"/> (unchanged TOAST values) as they are in the target: the
    /// parameters are the new row's other columns, then the key columns of the row to update (the old key, when the
    /// update changed it). Built once per set of unchanged columns.
    /// </summary>
    public string PartialUpdateSql(ColumnSet unchanged)
    {
        if (_partialUpdates.TryGetValue(unchanged, out var sql))
            return sql;
        var set = new StringBuilder();
        var number = 0;
        foreach (var column in Columns)
        {
            if (!Includes(column.Source, keysOnly: false, unchanged))
                continue;
            set.Append(number == 0 ? "" : ", ").Append(column.QuotedName).Append(" = ").Append(column.Parameter(++number));
        }
        sql = $"UPDATE {QualifiedName} SET {set} WHERE {KeyMatch(number + 1)}";
        _partialUpdates[unchanged] = sql;
        return sql;
    }

    /// <summary><c>k1 = $n::t AND k2 = $n+1::t</c>, the key columns in column order from parameter <paramref name="first"/>.</summary>
    private string KeyMatch(int first)
    {
        var number = first;
        return string.Join(" AND ", Columns.Where(c => c.Source.IsKey).Select(c => $"{c.QuotedName} = {c.Parameter(number++)}"));
    }

    /// <summary>Reads the target table's columns and checks that it can take the mapping's rows: the table exists, every
    /// mapped column exists and is not generated, and a unique index covers exactly the key (for the upserts).</summary>
    public static async Task<TargetTable> LoadAsync(NpgsqlConnection connection, SyncTableInfo source, string schema, string name, string applier, string target,
        CancellationToken cancellationToken)
    {
        var qualified = $"{SyncTableInfo.QuoteIdentifier(schema)}.{SyncTableInfo.QuoteIdentifier(name)}";
        var display = $"{schema}.{name}";
        var found = new Dictionary<string, (string Type, string BaseType, bool Generated, bool IdentityAlways)>(StringComparer.Ordinal);
        var hasKeyIndex = false;
        var hasWriteRules = false;
        await using (var command = new NpgsqlCommand(ColumnsQuery, connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = qualified });
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. source.KeyColumns.Select(k => k.Name).Order(StringComparer.Ordinal)] });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                found[reader.GetString(0)] = (reader.GetString(1), reader.GetString(2), reader.GetBoolean(3), reader.GetBoolean(6));
                hasKeyIndex = reader.GetBoolean(4);
                hasWriteRules = reader.GetBoolean(5);
            }
        }
        var fix = $"Create it in the target ({target}) with the columns of the source table {source.DisplayName}, or map the entity to another table with MapTable<{source.EntityType.Name}>(\"schema.table\").";
        if (found.Count == 0)
            throw new DBSyncConfigurationException($"Applier \"{applier}\": the target table {display} of {source.DisplayName} does not exist. {fix}");
        var columns = new TargetColumn[source.Columns.Length];
        foreach (var column in source.Columns)
        {
            if (!found.TryGetValue(column.Name, out var type))
                throw new DBSyncConfigurationException($"Applier \"{applier}\": the target table {display} has no column \"{column.Name}\" (mapped by {source.EntityType.Name}.{column.PropertyName}). Add it: ALTER TABLE {qualified} ADD COLUMN {SyncTableInfo.QuoteIdentifier(column.Name)} ...; or mark the property [SyncIgnore].");
            if (type.Generated)
                throw new DBSyncConfigurationException($"Applier \"{applier}\": the column \"{column.Name}\" of the target table {display} is generated and cannot be written. Make it a plain column, or mark {source.EntityType.Name}.{column.PropertyName} [SyncIgnore].");
            if (type.IdentityAlways)
                throw new DBSyncConfigurationException($"Applier \"{applier}\": the column \"{column.Name}\" of the target table {display} is GENERATED ALWAYS AS IDENTITY, which INSERT cannot write. Make it GENERATED BY DEFAULT: ALTER TABLE {qualified} ALTER COLUMN {SyncTableInfo.QuoteIdentifier(column.Name)} SET GENERATED BY DEFAULT; or mark {source.EntityType.Name}.{column.PropertyName} [SyncIgnore].");
            columns[column.Index] = new TargetColumn(column, type.Type, type.BaseType);
        }
        if (!hasKeyIndex)
        {
            var keys = string.Join(", ", source.KeyColumns.Select(k => SyncTableInfo.QuoteIdentifier(k.Name)));
            throw new DBSyncConfigurationException($"Applier \"{applier}\": the target table {display} has no primary key or unique index (not deferrable) on exactly ({keys}), the key of {source.DisplayName}, which its upserts need. Add one: ALTER TABLE {qualified} ADD PRIMARY KEY ({keys});");
        }
        if (hasWriteRules)
        {
            // PostgreSQL refuses INSERT ... ON CONFLICT on such a table, and COPY would pass the rules by.
            throw new DBSyncConfigurationException($"Applier \"{applier}\": the target table {display} has INSERT or UPDATE rules (CREATE RULE), which the generated mapping's upserts (INSERT ... ON CONFLICT) cannot be used with. " +
                $"Replace the rules with triggers, or apply {source.EntityType.Name} with a hand-written Map<{source.EntityType.Name}>.");
        }
        return new TargetTable(source, qualified, display, columns);
    }

    /// <summary>The table's columns: name, type without modifiers (<c>bpchar</c> for <c>char(n)</c>: a bare <c>character</c>
    /// is <c>char(1)</c>), the scalar base type's name (through domains and arrays),
    /// whether it is generated; whether a unique index (not deferrable, no predicate, no expressions) has exactly the key
    /// columns ($2, sorted); whether the table has INSERT or UPDATE rules; and whether the column is GENERATED ALWAYS AS
    /// IDENTITY.</summary>
    private const string ColumnsQuery = """
        SELECT a.attname::text,
               CASE a.atttypid WHEN 'bpchar'::regtype THEN 'bpchar' WHEN '_bpchar'::regtype THEN 'bpchar[]' ELSE format_type(a.atttypid, NULL) END,
               coalesce(eb.typname, b.typname)::text, a.attgenerated <> '',
               EXISTS (SELECT 1 FROM pg_index i
                       WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL
                         AND (SELECT array_agg(ka.attname::text ORDER BY ka.attname::text COLLATE "C")
                              FROM unnest(i.indkey) k JOIN pg_attribute ka ON ka.attrelid = i.indrelid AND ka.attnum = k) = $2),
               EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = a.attrelid AND r.ev_type IN ('2', '3')),
               a.attidentity = 'a'
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
        LEFT JOIN pg_type eb ON eb.oid = CASE WHEN e.typtype = 'd' THEN e.typbasetype ELSE e.oid END
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
        """;
}
