namespace DBSync;

/// <summary>
/// Marks a <c>partial</c> class, record or struct as the typed shape of a PostgreSQL table. The DBSync source
/// generator implements <see cref="ISyncTable{TSelf}"/> for it.
/// </summary>
/// <param name="name">The table name, optionally schema-qualified: <c>"users"</c> or <c>"sales.orders"</c>. The schema
/// defaults to <c>public</c>. Names are used as written (PostgreSQL folds unquoted names to lower case, so write them in
/// lower case unless the table was created with a quoted mixed-case name).</param>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false, AllowMultiple = false)]
public sealed class SyncTableAttribute(string name) : Attribute
{
    /// <summary>The table name as written in the attribute.</summary>
    public string Name { get; } = name;
}

/// <summary>Maps a property to a column whose name is not the snake_case form of the property name.</summary>
/// <param name="name">The column name as PostgreSQL stores it.</param>
[AttributeUsage(AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class ColumnAttribute(string name) : Attribute
{
    /// <summary>The column name.</summary>
    public string Name { get; } = name;
}

/// <summary>Marks a property as part of the table's primary key.</summary>
[AttributeUsage(AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class PrimaryKeyAttribute : Attribute
{
    /// <summary>The position of this column within a composite key (0-based, ascending). Defaults to 0.</summary>
    public int Order { get; set; }
}

/// <summary>Excludes a property from the mapping: it is neither decoded nor required to exist as a column.</summary>
[AttributeUsage(AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class SyncIgnoreAttribute : Attribute;

/// <summary>The PostgreSQL enum label of a C# enum member; without it the label is the member name in snake_case
/// (<c>VeryHappy</c> is <c>very_happy</c>). Labels are case-sensitive.</summary>
[AttributeUsage(AttributeTargets.Field, Inherited = false, AllowMultiple = false)]
public sealed class PgLabelAttribute(string label) : Attribute
{
    /// <summary>The enum label.</summary>
    public string Label { get; } = label;
}
