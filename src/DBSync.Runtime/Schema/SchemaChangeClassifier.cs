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
        var first = message.Commands.Count > 0 ? message.Commands[0] : null;
        var command = first;
        // Tables renamed by the statement, old name to new: their partitions still have them as parent.
        var renamed = message.Tables.Where(t => t is { Before: not null, After: not null } && t.Before.QualifiedName != t.After.QualifiedName)
            .ToDictionary(t => t.Before!.QualifiedName, t => t.After!.QualifiedName, StringComparer.Ordinal);

        void Add(SchemaChangeKind kind, string? table, string? column, string? before, string? after, bool rewritten = false, string? objectName = null)
            => changes.Add(new SchemaChange(kind, table, column, before, after)
            {
                Rewritten = rewritten,
                EntityType = table is null ? null : entityOf(table),
                Object = objectName ?? command?.Identity,
                CommandTag = command?.Tag ?? "",
                Statement = message.Statement,
                Xid = position.Xid,
                Lsn = position.Lsn,
                CommitLsn = position.CommitLsn,
                CommitTime = position.CommitTime,
            });

        foreach (var table in message.Tables)
        {
            // The command that concerns this table (a CREATE TABLE comes after the CREATE SEQUENCE of its serial column;
            // DROP TABLE a, b has a command per table), else the one that names it, else the statement's first.
            var name = (table.After ?? table.Before)?.QualifiedName;
            command = message.Commands.FirstOrDefault(c => c.Relid == table.Oid)
                      ?? message.Commands.FirstOrDefault(c => c.ObjectType == "table" && c.Identity == name)
                      ?? first;
            var count = changes.Count;
            ClassifyTable(table, message, renamed, Add);
            if (changes.Count == count)
                Add(SchemaChangeKind.Other, (table.After ?? table.Before)?.QualifiedName, null, null, null, table.Rewritten);
        }
        foreach (var type in message.Enums)
        {
            command = message.Commands.FirstOrDefault(c => c.Identity == type.Name) ?? first;
            var before = type.LabelsBefore is { } labels ? string.Join(", ", labels) : null;
            var after = string.Join(", ", type.Labels);
            if (type.LabelsBefore is null)
                Add(SchemaChangeKind.Other, null, null, null, after, objectName: type.Name); // a new type (CREATE TYPE ... AS ENUM)
            else if (type.Labels.Length > type.LabelsBefore.Length)
                Add(SchemaChangeKind.EnumValueAdded, null, null, before, after, objectName: type.Name);
            else if (before != after)
                Add(SchemaChangeKind.Other, null, null, before, after, objectName: type.Name); // a label renamed
        }
        if (changes.Count == 0)
        {
            command = first;
            // Commands on nothing the trigger describes (a function, a sequence, a view): one each, as they are.
            foreach (var each in message.Commands.DistinctBy(c => (c.Tag, c.Identity)))
            {
                command = each;
                Add(SchemaChangeKind.Other, null, null, null, null, objectName: each.Identity);
            }
        }
        return changes;
    }

    private delegate void Adder(SchemaChangeKind kind, string? table, string? column, string? before, string? after, bool rewritten = false, string? objectName = null);

    private static void ClassifyTable(DdlTable table, DdlMessage message, Dictionary<string, string> renamed, Adder add)
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
        // A partition of a table the statement renamed keeps its parent: only the parent's name changed.
        var parentRenamed = before.Parent is { } oldParent && renamed.TryGetValue(oldParent, out var newParent) && newParent == after.Parent;
        if (before.Parent != after.Parent && !parentRenamed)
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
                add(SchemaChangeKind.ColumnDropped, name, old.Name, old.Type, null, rewritten || table.Replaced(old.Name));
                continue;
            }
            if (now.Name != old.Name)
                add(SchemaChangeKind.ColumnRenamed, name, now.Name, old.Name, now.Name, rewritten);
            // By oid and modifier: a renamed type (ALTER TYPE ... RENAME) writes another name for the same type.
            if (now.TypeOid != old.TypeOid || now.Typmod != old.Typmod)
                add(SchemaChangeKind.ColumnTypeChanged, name, now.Name, old.Type, now.Type, rewritten);
            if (now.Default != old.Default)
                add(SchemaChangeKind.ColumnDefaultChanged, name, now.Name, old.Default, now.Default, rewritten);
            if (now.NotNull != old.NotNull)
                add(SchemaChangeKind.ColumnNullabilityChanged, name, now.Name, Nullability(old), Nullability(now), rewritten);
        }
        foreach (var added in after.Columns.Where(c => before.Columns.All(o => o.Num != c.Num)))
            add(SchemaChangeKind.ColumnAdded, name, added.Name, null, added.Type, rewritten || table.Replaced(added.Name));
        if (!before.PrimaryKey.AsSpan().SequenceEqual(after.PrimaryKey))
            add(SchemaChangeKind.PrimaryKeyChanged, name, null, KeyList(before.PrimaryKey), KeyList(after.PrimaryKey), rewritten);
        if (before.DescribeIdentity() != after.DescribeIdentity())
            add(SchemaChangeKind.ReplicaIdentityChanged, name, null, before.DescribeIdentity(), after.DescribeIdentity(), rewritten);
    }

    private static string Nullability(ShapeColumn column) => column.NotNull ? "NOT NULL" : "NULL";

    private static string? KeyList(string[] columns) => columns.Length == 0 ? null : string.Join(", ", columns);
}
