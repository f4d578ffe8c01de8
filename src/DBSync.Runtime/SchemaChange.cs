using NpgsqlTypes;

namespace DBSync;

/// <summary>What a schema change did (<see cref="SchemaChange.Kind"/>). One DDL statement can do several things (an
/// <c>ALTER TABLE</c> with several clauses): each is one <see cref="SchemaChange"/>.</summary>
public enum SchemaChangeKind
{
    /// <summary>A DDL statement that did none of the others (an index, a trigger, a comment, a table DBSync knew nothing of
    /// before): see <see cref="SchemaChange.Statement"/>.</summary>
    Other,

    /// <summary>A table was created. <see cref="SchemaChange.After"/>: its columns, as <c>name type, ...</c>.</summary>
    TableCreated,

    /// <summary>A table was dropped.</summary>
    TableDropped,

    /// <summary>A table was renamed or moved to another schema. <see cref="SchemaChange.Before"/> and
    /// <see cref="SchemaChange.After"/>: its old and new <c>schema.name</c>.</summary>
    TableRenamed,

    /// <summary>A column was added. <see cref="SchemaChange.After"/>: its type.</summary>
    ColumnAdded,

    /// <summary>A column was dropped. <see cref="SchemaChange.Before"/>: its type.</summary>
    ColumnDropped,

    /// <summary>A column was renamed. <see cref="SchemaChange.Before"/> and <see cref="SchemaChange.After"/>: its old and
    /// new name (<see cref="SchemaChange.Column"/> is the new one).</summary>
    ColumnRenamed,

    /// <summary>A column's type changed. <see cref="SchemaChange.Before"/> and <see cref="SchemaChange.After"/>: the types,
    /// as PostgreSQL writes them (<c>character varying(10)</c>).</summary>
    ColumnTypeChanged,

    /// <summary>A column's default changed. <see cref="SchemaChange.Before"/> and <see cref="SchemaChange.After"/>: the
    /// default expressions (null: none).</summary>
    ColumnDefaultChanged,

    /// <summary>A column became <c>NOT NULL</c> or nullable. <see cref="SchemaChange.Before"/> and
    /// <see cref="SchemaChange.After"/>: <c>NULL</c> or <c>NOT NULL</c>.</summary>
    ColumnNullabilityChanged,

    /// <summary>The table's primary key changed. <see cref="SchemaChange.Before"/> and <see cref="SchemaChange.After"/>: its
    /// columns, comma-separated (null: none).</summary>
    PrimaryKeyChanged,

    /// <summary>The table's replica identity changed. <see cref="SchemaChange.Before"/> and
    /// <see cref="SchemaChange.After"/>: <c>default</c>, <c>full</c>, <c>nothing</c> or <c>index (columns)</c>.</summary>
    ReplicaIdentityChanged,

    /// <summary>A table became a partition. <see cref="SchemaChange.Table"/>: the partition; <see cref="SchemaChange.After"/>:
    /// the partitioned table.</summary>
    PartitionAttached,

    /// <summary>A partition was detached. <see cref="SchemaChange.Table"/>: the partition; <see cref="SchemaChange.Before"/>:
    /// the partitioned table.</summary>
    PartitionDetached,

    /// <summary>An enum type got a value. <see cref="SchemaChange.Object"/>: the type; <see cref="SchemaChange.Before"/> and
    /// <see cref="SchemaChange.After"/>: its labels, comma-separated, in order. (A label renamed is <see cref="Other"/>, with
    /// the labels the same way, and the tables with columns of the type are snapshotted again, as after a rewrite; a type
    /// created is <see cref="Other"/> with its labels as <see cref="SchemaChange.After"/>.)</summary>
    EnumValueAdded,
}

/// <summary>
/// One schema change, from the DDL capture's event trigger (<see cref="DBSyncOptions.CaptureSchemaChanges"/>), delivered
/// to <see cref="DBSyncClient.OnSchemaChange(Func{SchemaChange, CancellationToken, ValueTask})"/> handlers at its exact
/// place among the row changes, in commit order, under the same at-least-once and confirmation rules as they are.
/// </summary>
public sealed class SchemaChange
{
    /// <summary>Creates a schema change (DBSync creates them; tests may too).</summary>
    public SchemaChange(SchemaChangeKind kind, string? table, string? column, string? before, string? after)
    {
        Kind = kind;
        Table = table;
        Column = column;
        Before = before;
        After = after;
    }

    /// <summary>What changed.</summary>
    public SchemaChangeKind Kind { get; }

    /// <summary>The table, as <c>schema.name</c> (its new name after a rename, its last one after a drop); null for a
    /// change of something else (an enum type).</summary>
    public string? Table { get; }

    /// <summary>The column, for a column's change.</summary>
    public string? Column { get; }

    /// <summary>What it was, as <see cref="SchemaChangeKind"/> says for each kind.</summary>
    public string? Before { get; }

    /// <summary>What it is now, as <see cref="SchemaChangeKind"/> says for each kind.</summary>
    public string? After { get; }

    /// <summary>Whether the statement changed the table's values without row changes in the stream: it rewrote the rows
    /// (<c>ALTER COLUMN ... TYPE</c>, <c>ADD COLUMN</c> with a volatile default), dropped a column and added it again under
    /// its name, or renamed a label of an enum type the table uses. With <see cref="DBSyncOptions.SnapshotAfterRewrite"/>
    /// a mapped table is then snapshotted again.</summary>
    public bool Rewritten { get; init; }

    /// <summary>The entity type that maps <see cref="Table"/> in this client, if any.</summary>
    public Type? EntityType { get; init; }

    /// <summary>The object the statement named, as PostgreSQL identifies it (<c>public.users</c>, <c>public.mood</c>).</summary>
    public string? Object { get; init; }

    /// <summary>The statement's command tag (<c>ALTER TABLE</c>, <c>CREATE TABLE</c>, <c>DROP TABLE</c>, ...).</summary>
    public string CommandTag { get; init; } = "";

    /// <summary>The statement as the client sent it (the whole query string, which may hold several statements; cut at
    /// 262,144 characters).</summary>
    public string Statement { get; init; } = "";

    /// <summary>The transaction's id.</summary>
    public uint Xid { get; init; }

    /// <summary>Where the statement's message is in the stream.</summary>
    public NpgsqlLogSequenceNumber Lsn { get; init; }

    /// <summary>The transaction's commit position.</summary>
    public NpgsqlLogSequenceNumber CommitLsn { get; init; }

    /// <summary>The transaction's commit time.</summary>
    public DateTimeOffset CommitTime { get; init; }

    /// <inheritdoc/>
    public override string ToString()
        => $"{Kind} {Table ?? Object}{(Column is null ? "" : "." + Column)}{(Before is null && After is null ? "" : $": {Before ?? "-"} -> {After ?? "-"}")}{(Rewritten ? " (rewritten)" : "")}";
}
