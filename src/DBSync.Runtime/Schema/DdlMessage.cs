using System.Text.Json;

namespace DBSync.Schema;

/// <summary>
/// One DDL statement as the capture's event trigger wrote it into the stream (<see cref="DdlCaptureSql"/>): its commands,
/// and the tables it concerned with their shape before and after. Parsed strictly: what the trigger writes is known, and
/// anything else under its prefix is a <see cref="FormatException"/> that names the field and where it is, never a
/// default put in its place.
/// </summary>
/// <param name="Event">The event trigger's event: <c>ddl_command_end</c> or <c>sql_drop</c>.</param>
/// <param name="Statement">The query string (empty when <paramref name="StatementSame"/>).</param>
/// <param name="Commands">The statement's commands.</param>
/// <param name="Tables">The tables it concerned, before and after.</param>
/// <param name="Enums">The enum types it changed.</param>
/// <param name="StatementSame">The statement is the one of the transaction's previous DDL message (a query string with
/// several statements): the reader takes that one.</param>
internal sealed record DdlMessage(string Event, string Statement, IReadOnlyList<DdlCommand> Commands, IReadOnlyList<DdlTable> Tables, IReadOnlyList<DdlEnum> Enums,
    bool StatementSame = false)
{
    /// <exception cref="FormatException">The content is not a message of this version of the trigger; the message says
    /// what is wrong.</exception>
    public static DdlMessage Parse(ReadOnlySpan<byte> content)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(content.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new FormatException($"not JSON: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"not JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = new Field(document.RootElement, "the message");
            root.RequireKind(JsonValueKind.Object);
            var version = root.Required("v").Int32();
            if (version != DdlCaptureSql.Version)
            {
                throw new FormatException(version > DdlCaptureSql.Version
                    ? $"a message of version {version} of the DDL capture trigger, written by a newer DBSync's trigger; this DBSync reads version {DdlCaptureSql.Version}: upgrade this DBSync"
                    : $"a message of version {version} of the DDL capture trigger, written before it was upgraded; this DBSync reads version {DdlCaptureSql.Version}: " +
                      "run the DBSync that installed that trigger until the stream is past it");
            }
            return new DdlMessage(
                root.Required("event").String(),
                root.Required("statement").NullableString() ?? "", // current_query() is NULL in a background worker
                [.. root.Required("commands").Items().Select(DdlCommand.Read)],
                [.. root.Required("tables").Items().Select(DdlTable.Read)],
                [.. root.Required("enums").Items().Select(DdlEnum.Read)],
                root.Optional("statement_same") is { } same && same.Boolean());
        }
    }
}

/// <summary>A JSON value of a DDL message and where it is, for errors: every read checks the kind and range it expects.</summary>
internal readonly record struct Field(JsonElement Value, string Path)
{
    public Field Required(string name)
    {
        RequireKind(JsonValueKind.Object);
        return Value.TryGetProperty(name, out var value)
            ? new Field(value, $"{Path}.{name}")
            : throw new FormatException($"\"{name}\" is missing in {Path}");
    }

    /// <summary>The field, or null when it is absent (fields the trigger writes only when they apply).</summary>
    public Field? Optional(string name)
    {
        RequireKind(JsonValueKind.Object);
        return Value.TryGetProperty(name, out var value) ? new Field(value, $"{Path}.{name}") : null;
    }

    public bool IsNull => Value.ValueKind == JsonValueKind.Null;

    public void RequireKind(JsonValueKind kind)
    {
        if (Value.ValueKind != kind)
            throw new FormatException($"{Describe()} is {Value.ValueKind}, where {kind} was expected");
    }

    public string String()
    {
        RequireKind(JsonValueKind.String);
        try
        {
            return Value.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new FormatException($"{Describe()} is not valid UTF-8", e);
        }
    }

    public string? NullableString() => IsNull ? null : String();

    public char Char()
    {
        var text = String();
        return text.Length == 1 ? text[0] : throw new FormatException($"{Describe()} is \"{text}\", where one character was expected");
    }

    public int Int32()
    {
        RequireKind(JsonValueKind.Number);
        return Value.TryGetInt32(out var value) ? value : throw new FormatException($"{Describe()} is {Value.GetRawText()}, not a 32-bit integer");
    }

    public uint Oid()
    {
        RequireKind(JsonValueKind.Number);
        return Value.TryGetUInt32(out var value) ? value : throw new FormatException($"{Describe()} is {Value.GetRawText()}, not an oid (0 to 4294967295)");
    }

    public bool Boolean() => Value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new FormatException($"{Describe()} is {Value.ValueKind}, where True or False was expected"),
    };

    public IEnumerable<Field> Items()
    {
        RequireKind(JsonValueKind.Array);
        var path = Path;
        return Value.EnumerateArray().Select((item, i) => new Field(item, $"{path}[{i}]"));
    }

    public string[] Strings() => [.. Items().Select(i => i.String())];

    /// <summary>The field's last name, quoted, and where it is: <c>"oid" (the message.tables[0].oid)</c>.</summary>
    private string Describe()
    {
        var dot = Path.LastIndexOf('.');
        var name = dot < 0 ? Path : Path[(dot + 1)..];
        var bracket = name.IndexOf('[', StringComparison.Ordinal);
        return $"\"{(bracket < 0 ? name : name[..bracket])}\" ({Path})";
    }
}

/// <summary>One command of the statement (<c>pg_event_trigger_ddl_commands()</c>, or the dropped objects), with the
/// table it concerns when there is one (<paramref name="Relid"/>).</summary>
internal sealed record DdlCommand(string Tag, string? ObjectType, string? Schema, string? Identity, bool InExtension, uint? Relid)
{
    public static DdlCommand Read(Field field) => new(
        field.Required("tag").String(),
        field.Required("object_type").NullableString(),
        field.Required("schema").NullableString(),
        field.Required("identity").NullableString(),
        field.Required("in_extension").Boolean(),
        field.Optional("relid") is { IsNull: false } relid ? relid.Oid() : null);
}

/// <summary>A table the statement concerned: its shape before (null: not known, a new table) and after (null: dropped).</summary>
internal sealed record DdlTable(uint Oid, TableShape? Before, TableShape? After, bool Rewritten)
{
    /// <summary>Whether the statement dropped <paramref name="column"/> and added it again under its name (a new attnum):
    /// every row's value of it was replaced, as a rewrite does, without a row change.</summary>
    public bool Replaced(string column)
        => Before?.Column(column) is { } was && After?.Column(column) is { } now && was.Num != now.Num;

    public static DdlTable Read(Field field) => new(
        field.Required("oid").Oid(),
        TableShape.Read(field.Required("before")),
        TableShape.Read(field.Required("after")),
        field.Required("rewritten").Boolean());
}

/// <summary>An enum type the statement changed, with its labels after it (and before, when the trigger knew them).</summary>
internal sealed record DdlEnum(uint Oid, string Name, string[] Labels, string[]? LabelsBefore)
{
    public static DdlEnum Read(Field field) => new(
        field.Required("oid").Oid(),
        field.Required("name").String(),
        field.Required("labels").Strings(),
        field.Optional("labels_before") is { IsNull: false } before ? before.Strings() : null);
}

/// <summary>A table's shape as the trigger records it.</summary>
internal sealed record TableShape(string Schema, string Name, char Kind, IReadOnlyList<ShapeColumn> Columns, string[] PrimaryKey, char ReplicaIdentity,
    string[]? IdentityIndex, string? Parent)
{
    public string QualifiedName => $"{Schema}.{Name}";

    public ShapeColumn? Column(string name) => Columns.FirstOrDefault(c => c.Name == name);

    /// <summary>The replica identity as <see cref="SchemaChangeKind.ReplicaIdentityChanged"/> describes it.</summary>
    public string DescribeIdentity() => ReplicaIdentity switch
    {
        'd' => "default",
        'f' => "full",
        'n' => "nothing",
        'i' => $"index ({string.Join(", ", IdentityIndex ?? [])})",
        var other => other.ToString(),
    };

    public static TableShape? Read(Field field)
    {
        if (field.IsNull)
            return null;
        return new TableShape(
            field.Required("schema").String(),
            field.Required("name").String(),
            field.Required("kind").Char(),
            [.. field.Required("columns").Items().Select(ShapeColumn.Read)],
            field.Required("primary_key").Strings(),
            field.Required("replica_identity").Char(),
            field.Required("identity_index") is { IsNull: false } index ? index.Strings() : null,
            field.Required("parent").NullableString());
    }
}

/// <summary>A column of a <see cref="TableShape"/>: <paramref name="Num"/> is its attnum, stable across renames.</summary>
internal sealed record ShapeColumn(int Num, string Name, string Type, uint TypeOid, int Typmod, bool NotNull, string? Default, string? Generated)
{
    public static ShapeColumn Read(Field field) => new(
        field.Required("num").Int32(),
        field.Required("name").String(),
        field.Required("type").String(),
        field.Required("type_oid").Oid(),
        field.Required("typmod").Int32(),
        field.Required("not_null").Boolean(),
        field.Required("default").NullableString(),
        field.Optional("generated") is { IsNull: false } generated ? generated.String() : null);
}
