using NpgsqlTypes;

namespace DBSync.Schema;

/// <summary>
/// Turns a <see cref="DdlMessage"/> into <see cref="SchemaChange"/>s by comparing each table's shape before and after the
/// statement (columns by attnum, so a rename is a rename and not a drop and an add). No I/O: the stream's schema follower
/// calls it, and unit tests drive it with recorded messages.
/// </summary>
internal static class SchemaChangeClassifier
{
    /// <summary>Where the statement is in the stream, stamped on every change it yields.</summary>
    internal readonly record struct Position(uint Xid, NpgsqlLogSequenceNumber Lsn, NpgsqlLogSequenceNumber CommitLsn, DateTimeOffset CommitTime);

    /// <param name="message">The statement.</param>
    /// <param name="position">Where it is.</param>
    /// <param name="entityOf">The entity type that maps a table (<c>schema.name</c>), if any.</param>
    public static List<SchemaChange> Classify(DdlMessage message, Position position, Func<string, Type?> entityOf)
    {
        var changes = new List<SchemaChange>();
        var tag = message.Commands.Count > 0 ? message.Commands[0].Tag : "";
        var identity = message.Commands.Count > 0 ? message.Commands[0].Identity : null;

        void Add(SchemaChangeKind kind, string? table, string? column, string? before, string? after, bool rewritten = false, string? objectName = null)
            => changes.Add(new SchemaChange(kind, table, column, before, after)
            {
                Rewritten = rewritten,
                EntityType = table is null ? null : entityOf(table),
                Object = objectName ?? identity,
                CommandTag = tag,
                Statement = message.Statement,
                Xid = position.Xid,
                Lsn = position.Lsn,
                CommitLsn = position.CommitLsn,
                CommitTime = position.CommitTime,
            });

        foreach (var table in message.Tables)
        {
            var count = changes.Count;
            ClassifyTable(table, message, Add);
            if (changes.Count == count)
                Add(SchemaChangeKind.Other, (table.After ?? table.Before)?.QualifiedName, null, null, null, table.Rewritten);
        }
        foreach (var type in message.Enums)
        {
            var before = type.LabelsBefore is { } labels ? string.Join(", ", labels) : null;
            var after = string.Join(", ", type.Labels);
            if (type.LabelsBefore is null || type.Labels.Length > type.LabelsBefore.Length)
                Add(SchemaChangeKind.EnumValueAdded, null, null, before, after, objectName: type.Name);
            else if (before != after)
                Add(SchemaChangeKind.Other, null, null, before, after, objectName: type.Name);
        }
        if (changes.Count == 0)
        {
            // Commands on nothing the trigger describes (a function, a sequence, a view): one each, as they are.
            foreach (var command in message.Commands.DistinctBy(c => (c.Tag, c.Identity)))
                Add(SchemaChangeKind.Other, null, null, null, null, objectName: command.Identity);
        }
        return changes;
    }

    private delegate void Adder(SchemaChangeKind kind, string? table, string? column, string? before, string? after, bool rewritten = false, string? objectName = null);

    private static void ClassifyTable(DdlTable table, DdlMessage message, Adder add)
    {
        var rewritten = table.Rewritten;
        switch (table.Before, table.After)
        {
            case (null, null):
                return;
            case (null, { } created):
                if (message.Commands.Any(c => c.Tag.StartsWith("CREATE TABLE", StringComparison.Ordinal) || c.Tag == "SELECT INTO"))
                    add(SchemaChangeKind.TableCreated, created.QualifiedName, null, null, string.Join(", ", created.Columns.Select(c => $"{c.Name} {c.Type}")), rewritten);
                if (created.Parent is { } parent)
                    add(SchemaChangeKind.PartitionAttached, created.QualifiedName, null, null, parent, rewritten);
                return;
            case ({ } dropped, null):
                add(SchemaChangeKind.TableDropped, dropped.QualifiedName, null, null, null);
                return;
        }

        var before = table.Before!;
        var after = table.After!;
        var name = after.QualifiedName;
        if (before.QualifiedName != after.QualifiedName)
            add(SchemaChangeKind.TableRenamed, name, null, before.QualifiedName, after.QualifiedName, rewritten);
        if (before.Parent != after.Parent)
        {
            if (before.Parent is { } from)
                add(SchemaChangeKind.PartitionDetached, name, null, from, null, rewritten);
            if (after.Parent is { } to)
                add(SchemaChangeKind.PartitionAttached, name, null, null, to, rewritten);
        }
        foreach (var old in before.Columns)
        {
            if (after.Columns.FirstOrDefault(c => c.Num == old.Num) is not { } now)
            {
                add(SchemaChangeKind.ColumnDropped, name, old.Name, old.Type, null, rewritten);
                continue;
            }
            if (now.Name != old.Name)
                add(SchemaChangeKind.ColumnRenamed, name, now.Name, old.Name, now.Name, rewritten);
            if (now.Type != old.Type || now.TypeOid != old.TypeOid)
                add(SchemaChangeKind.ColumnTypeChanged, name, now.Name, old.Type, now.Type, rewritten);
            if (now.Default != old.Default)
                add(SchemaChangeKind.ColumnDefaultChanged, name, now.Name, old.Default, now.Default, rewritten);
            if (now.NotNull != old.NotNull)
                add(SchemaChangeKind.ColumnNullabilityChanged, name, now.Name, Nullability(old), Nullability(now), rewritten);
        }
        foreach (var added in after.Columns.Where(c => before.Columns.All(o => o.Num != c.Num)))
            add(SchemaChangeKind.ColumnAdded, name, added.Name, null, added.Type, rewritten);
        if (!before.PrimaryKey.AsSpan().SequenceEqual(after.PrimaryKey))
            add(SchemaChangeKind.PrimaryKeyChanged, name, null, KeyList(before.PrimaryKey), KeyList(after.PrimaryKey), rewritten);
        if (before.DescribeIdentity() != after.DescribeIdentity())
            add(SchemaChangeKind.ReplicaIdentityChanged, name, null, before.DescribeIdentity(), after.DescribeIdentity(), rewritten);
    }

    private static string Nullability(ShapeColumn column) => column.NotNull ? "NOT NULL" : "NULL";

    private static string? KeyList(string[] columns) => columns.Length == 0 ? null : string.Join(", ", columns);
}
