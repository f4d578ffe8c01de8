using DBSync.Protocol;

namespace DBSync.Mapping;

/// <summary>
/// How the columns of one pgoutput Relation message map onto an entity's columns. Built once per Relation message (so a
/// schema change mid-stream rebinds by name) and used by <see cref="TupleReader"/> for every tuple of that relation.
/// </summary>
public sealed class ColumnBinding
{
    private readonly int[] _targets;

    private ColumnBinding(SyncTableInfo table, RelationMessage relation, int[] targets)
    {
        Table = table;
        Relation = relation;
        _targets = targets;
    }

    /// <summary>The mapped table.</summary>
    public SyncTableInfo Table { get; }

    internal RelationMessage Relation { get; }

    /// <summary>The number of columns in the relation's tuples.</summary>
    internal int ColumnCount => _targets.Length;

    /// <summary>The entity column index that relation column <paramref name="relationColumn"/> fills, or -1 when unmapped.</summary>
    internal int TargetOf(int relationColumn) => _targets[relationColumn];

    /// <summary>The PostgreSQL type of relation column <paramref name="relationColumn"/>.</summary>
    internal uint TypeOidOf(int relationColumn) => Relation.Columns[relationColumn].TypeOid;

    /// <summary>Binds <paramref name="relation"/> to <paramref name="table"/> by column name.</summary>
    /// <param name="table">The entity's table.</param>
    /// <param name="relation">The Relation message.</param>
    /// <param name="typeNames">Names of non-built-in types seen in Type messages, for error messages.</param>
    /// <exception cref="SchemaMismatchException">A mapped column is missing or has a type the property cannot hold.</exception>
    internal static ColumnBinding Create(SyncTableInfo table, RelationMessage relation, IReadOnlyDictionary<uint, string>? typeNames = null)
    {
        var targets = new int[relation.Columns.Length];
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
                    $"is not in the replicated relation: it was dropped, renamed, or excluded from the publication. " +
                    $"Restore the column, or mark the property [SyncIgnore] (or map it with [Column(\"...\")]) and restart.");
            }

            var oid = relation.Columns[found].TypeOid;
            if (!PgTypeOids.IsCompatible(column.Type, oid))
            {
                var pgType = TypeName(oid, typeNames);
                throw new SchemaMismatchException(table, column.Name, pgType, column.ClrTypeName,
                    $"Column \"{column.Name}\" of {table.DisplayName} has PostgreSQL type {pgType}, which property " +
                    $"{table.EntityType.Name}.{column.PropertyName} ({column.ClrTypeName}) cannot hold. " +
                    $"Change the property type to match the column, or mark it [SyncIgnore].");
            }

            targets[found] = column.Index;
        }

        return new ColumnBinding(table, relation, targets);
    }

    internal static string TypeName(uint oid, IReadOnlyDictionary<uint, string>? typeNames)
        => PgTypeOids.NameOf(oid) ?? (typeNames is not null && typeNames.TryGetValue(oid, out var name) ? name : $"oid {oid}");
}
