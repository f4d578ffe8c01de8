using DBSync.Protocol;

namespace DBSync.Mapping;

/// <summary>
/// How the columns of one pgoutput Relation message map onto an entity's columns. Built once per Relation message (so a
/// schema change mid-stream rebinds by name) and used by <see cref="TupleReader"/> for every tuple of that relation.
/// </summary>
public sealed class ColumnBinding
{
    private readonly int[] _targets;
    private readonly PgColumnType[] _types;

    private ColumnBinding(SyncTableInfo table, RelationMessage relation, int[] targets, PgColumnType[] types)
    {
        Table = table;
        Relation = relation;
        _targets = targets;
        _types = types;
    }

    /// <summary>The mapped table.</summary>
    public SyncTableInfo Table { get; }

    internal RelationMessage Relation { get; }

    /// <summary>The number of columns in the relation's tuples.</summary>
    internal int ColumnCount => _targets.Length;

    /// <summary>The entity column index that relation column <paramref name="relationColumn"/> fills, or -1 when unmapped.</summary>
    internal int TargetOf(int relationColumn) => _targets[relationColumn];

    /// <summary>How the values of relation column <paramref name="relationColumn"/> decode (mapped columns only).</summary>
    internal PgColumnType TypeOf(int relationColumn) => _types[relationColumn];

    /// <summary>Binds <paramref name="relation"/> to <paramref name="table"/> by column name.</summary>
    /// <param name="table">The entity's table.</param>
    /// <param name="relation">The Relation message.</param>
    /// <param name="typeNames">Names of non-built-in types seen in Type messages, for error messages.</param>
    /// <param name="types">The database's types (enums, domains, citext, arrays of them); built-in types without it.</param>
    /// <exception cref="SchemaMismatchException">A mapped column is missing or has a type the property cannot hold.</exception>
    internal static ColumnBinding Create(SyncTableInfo table, RelationMessage relation, IReadOnlyDictionary<uint, string>? typeNames = null, PgTypeCatalog? types = null)
    {
        types ??= PgTypeCatalog.BuiltIn;
        var targets = new int[relation.Columns.Length];
        var resolved = new PgColumnType[relation.Columns.Length];
        Array.Fill(targets, -1);
        foreach (var column in table.Columns)
        {
            var found = -1;
            for (var i = 0; i < relation.Columns.Length; i++)
            {
                if (string.Equals(relation.Columns[i].Name, column.Name, StringComparison.Ordinal))
                {
                    found = i;
                    break;
                }
            }

            if (found < 0)
            {
                throw new SchemaMismatchException(table, column.Name, pgType: null, column.ClrTypeName,
                    $"Column \"{column.Name}\" of {table.DisplayName} (property {table.EntityType.Name}.{column.PropertyName}, {column.ClrTypeName}) " +
                    $"is not in the replicated relation: it was dropped, renamed, excluded from the publication, or is a generated column " +
                    $"(pgoutput does not send those). " +
                    (column.IsKey
                        ? $"Restore the column (or map the property to the key column with [Column(\"...\")]) and restart; {ColumnTypeCheck.KeyCannotBeIgnored}."
                        : "Restore the column, or mark the property [SyncIgnore] (or map it with [Column(\"...\")]) and restart."));
            }

            var oid = relation.Columns[found].TypeOid;
            resolved[found] = Resolve(table, column, oid, types, typeNames);
            targets[found] = column.Index;
        }

        return new ColumnBinding(table, relation, targets, resolved);
    }

    /// <summary>How values of type <paramref name="oid"/> decode into <paramref name="column"/>; the stream and snapshots
    /// both check a column this way.</summary>
    /// <exception cref="SchemaMismatchException">The property cannot hold values of that type.</exception>
    internal static PgColumnType Resolve(SyncTableInfo table, SyncColumnInfo column, uint oid, PgTypeCatalog types, IReadOnlyDictionary<uint, string>? typeNames = null)
    {
        var type = types.Resolve(oid);
        if (type is { } t && t.IsArray == column.ArrayRank > 0 && PgTypeOids.IsCompatible(column.Type, t.Scalar))
            return t;

        var pgType = type?.Name ?? types.NameOf(oid) ?? (typeNames is not null && typeNames.TryGetValue(oid, out var name) ? name : $"oid {oid}");
        var fits = type is { } known ? FittingTypes(known) : null;
        throw new SchemaMismatchException(table, column.Name, pgType, column.ClrTypeName,
            $"Column \"{column.Name}\" of {table.DisplayName} has PostgreSQL type {pgType}, which property " +
            $"{table.EntityType.Name}.{column.PropertyName} ({column.ClrTypeName}) cannot hold. " +
            (type is null
                ? $"DBSync does not decode {pgType}{(types.IsLoaded(oid) ? "" : " (or the type was created after DBSync started: restart it)")}" +
                  (column.IsKey ? $", so it cannot be a key column: key the entity on columns of types DBSync decodes; {ColumnTypeCheck.KeyCannotBeIgnored}." : "; mark the property [SyncIgnore].")
                : $"Properties that can hold it: {fits}. " +
                  (column.IsKey ? $"Change the property type to one of them; {ColumnTypeCheck.KeyCannotBeIgnored}." : "Change the property type, or mark it [SyncIgnore].")));
    }

    /// <summary>The C# types that can hold values of <paramref name="type"/>, for messages.</summary>
    private static string FittingTypes(PgColumnType type)
    {
        var names = new List<string>();
        foreach (var candidate in Enum.GetValues<SyncColumnType>())
        {
            if (PgTypeOids.IsCompatible(candidate, type.Scalar))
                names.Add(new SyncColumnInfo("", "", candidate, false, -1) { ArrayRank = type.IsArray ? 1 : 0 }.ClrTypeName);
        }
        return string.Join(", ", names);
    }
}
