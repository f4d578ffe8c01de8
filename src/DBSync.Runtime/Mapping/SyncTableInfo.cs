using System.Collections.Immutable;

namespace DBSync;

/// <summary>Describes one mapped column of a <see cref="SyncTableInfo"/>.</summary>
public sealed class SyncColumnInfo
{
    /// <summary>Creates a column description (called by generated code).</summary>
    public SyncColumnInfo(string name, string propertyName, SyncColumnType type, bool isNullable, int keyOrder)
    {
        Name = name;
        PropertyName = propertyName;
        Type = type;
        IsNullable = isNullable;
        KeyOrder = keyOrder;
    }

    /// <summary>The PostgreSQL column name.</summary>
    public string Name { get; }

    /// <summary>The mapped CLR property.</summary>
    public string PropertyName { get; }

    /// <summary>The property's value shape.</summary>
    public SyncColumnType Type { get; }

    /// <summary>Whether the property accepts NULL (<c>Nullable&lt;T&gt;</c> or a nullable reference type).</summary>
    public bool IsNullable { get; }

    /// <summary>The column's position within the primary key, or -1 when it is not a key column.</summary>
    public int KeyOrder { get; }

    /// <summary>Whether the column is part of the primary key.</summary>
    public bool IsKey => KeyOrder >= 0;

    /// <summary>The position of this column in <see cref="SyncTableInfo.Columns"/>.</summary>
    public int Index { get; internal set; }

    /// <summary>0 for a scalar property; the number of dimensions of an array property (<c>int[]</c> 1, <c>int[,]</c> 2).
    /// <see cref="Type"/> is then the element type and <see cref="IsNullable"/> says whether the array itself may be NULL.</summary>
    public int ArrayRank { get; init; }

    /// <summary>Whether the elements of an array property may be NULL (<c>int?[]</c>, <c>string?[]</c>).</summary>
    public bool ElementIsNullable { get; init; }

    /// <summary>The labels of an enum property's members.</summary>
    public PgEnumLabels? EnumLabels { get; init; }

    /// <summary>The C# spelling of the property type, for messages.</summary>
    public string ClrTypeName
    {
        get => field ?? ScalarName + (ArrayRank > 0 ? (ElementIsNullable && !IsReference ? "?" : "") + "[" + new string(',', ArrayRank - 1) + "]" : "") + (IsNullable ? "?" : "");
        init;
    }

    private bool IsReference => Type is SyncColumnType.String or SyncColumnType.Bytes or SyncColumnType.JsonDocument or SyncColumnType.IPAddress;

    private string ScalarName => Type switch
    {
        SyncColumnType.Boolean => "bool",
        SyncColumnType.Int16 => "short",
        SyncColumnType.Int32 => "int",
        SyncColumnType.Int64 => "long",
        SyncColumnType.Single => "float",
        SyncColumnType.Double => "double",
        SyncColumnType.Decimal => "decimal",
        SyncColumnType.String => "string",
        SyncColumnType.Bytes => "byte[]",
        SyncColumnType.ByteMemory => "ReadOnlyMemory<byte>",
        SyncColumnType.Enum => EnumLabels?.EnumName ?? "enum",
        _ => Type.ToString(),
    } + (ArrayRank > 0 && ElementIsNullable && IsReference ? "?" : "");
}

/// <summary>Identity and columns of a table mapped by a <see cref="SyncTableAttribute"/> type.</summary>
public sealed class SyncTableInfo
{
    /// <summary>Creates a table description (called by generated code).</summary>
    public SyncTableInfo(string schema, string name, Type entityType, ImmutableArray<SyncColumnInfo> columns)
    {
        ArgumentNullException.ThrowIfNull(entityType);
        Schema = schema;
        Name = name;
        EntityType = entityType;
        Columns = columns;
        for (var i = 0; i < columns.Length; i++)
            columns[i].Index = i;
        var keys = columns.Where(c => c.IsKey).OrderBy(c => c.KeyOrder).ToImmutableArray();
        if (keys.IsEmpty)
            throw new ArgumentException($"Table {schema}.{name} mapped by {entityType.FullName} has no primary key column.", nameof(columns));
        KeyColumns = keys;
        QualifiedName = $"{QuoteIdentifier(schema)}.{QuoteIdentifier(name)}";
    }

    /// <summary>The schema (namespace) of the table.</summary>
    public string Schema { get; }

    /// <summary>The table name, unquoted.</summary>
    public string Name { get; }

    /// <summary>The CLR type that maps the table.</summary>
    public Type EntityType { get; }

    /// <summary>The mapped columns, in declaration order. Generated decoders index values by this order.</summary>
    public ImmutableArray<SyncColumnInfo> Columns { get; }

    /// <summary>The primary key columns, ordered by <see cref="PrimaryKeyAttribute.Order"/>.</summary>
    public ImmutableArray<SyncColumnInfo> KeyColumns { get; }

    /// <summary>The schema-qualified, quoted name, safe to splice into SQL: <c>"public"."users"</c>.</summary>
    public string QualifiedName { get; }

    /// <summary>The unquoted <c>schema.table</c> form used in messages.</summary>
    public string DisplayName => $"{Schema}.{Name}";

    /// <inheritdoc />
    public override string ToString() => DisplayName;

    internal static string QuoteIdentifier(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
