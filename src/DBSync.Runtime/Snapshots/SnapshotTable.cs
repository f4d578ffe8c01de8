namespace DBSync;

/// <summary>
/// One table to snapshot, with optional restrictions. Build with <see cref="Of{T}"/> or by name (<c>"users"</c> means
/// <c>public.users</c>; <c>"sales.orders"</c>); the table must be mapped by a type registered with
/// <see cref="DBSyncClient.On{T}(Func{Change{T}, CancellationToken, ValueTask})"/>.
/// </summary>
/// <param name="Table">The table, <c>schema.name</c> or <c>name</c>, as PostgreSQL spells it (unquoted).</param>
public sealed record SnapshotTable(string Table)
{
    /// <summary>
    /// A SQL condition that rows must meet, for example <c>created_at &gt;= $1 AND country = $2</c>. Values go in
    /// <see cref="FilterParameters"/> as <c>$1</c>, <c>$2</c>, ... and are sent as parameters (never spliced into the SQL),
    /// as text whose type the server infers from the condition. The chunk query runs in a read-only transaction.
    /// </summary>
    public string? Filter { get; init; }

    /// <summary>The values of <see cref="Filter"/>'s <c>$n</c> placeholders, as text (null for SQL NULL).</summary>
    public IReadOnlyList<string?> FilterParameters { get; init; } = [];

    /// <summary>
    /// A column to page through the table by instead of the primary key: it must be NOT NULL and have a unique index of
    /// its own (for example a <c>bigint</c> sequence column when the primary key is a random UUID). Null: the primary key.
    /// </summary>
    public string? ChunkKey { get; init; }

    /// <summary>The table mapped by <typeparamref name="T"/>.</summary>
    public static SnapshotTable Of<T>() where T : ISyncTable<T> => new(T.TableInfo.DisplayName);

    /// <summary>Splits <see cref="Table"/> into schema and name (schema <c>public</c> when absent).</summary>
    internal (string Schema, string Name) QualifiedName()
    {
        var dot = Table.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? ("public", Table) : (Table[..dot], Table[(dot + 1)..]);
    }
}
