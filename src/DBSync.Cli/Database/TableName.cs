namespace DBSync.Cli.Database;

/// <summary>A table as DBSync names it: <c>schema.name</c>, in schema <c>public</c> when none is given.</summary>
internal readonly record struct TableName(string Schema, string Name)
{
    public static TableName Parse(string table)
    {
        var (schema, name) = new SnapshotTable(table).QualifiedName();
        return new TableName(schema, name);
    }

    /// <summary>The quoted name, safe to splice into SQL.</summary>
    public string Quoted => $"{SyncTableInfo.QuoteIdentifier(Schema)}.{SyncTableInfo.QuoteIdentifier(Name)}";

    public override string ToString() => $"{Schema}.{Name}";
}
