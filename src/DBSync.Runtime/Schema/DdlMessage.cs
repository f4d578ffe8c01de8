using System.Text.Json;

namespace DBSync.Schema;

/// <summary>
/// One DDL statement as the capture's event trigger wrote it into the stream (<see cref="DdlCaptureSql"/>): its commands,
/// and the tables it concerned with their shape before and after. Parsed strictly: what the trigger writes is known, and
/// anything else under its prefix is an error that names the message, never a guess.
/// </summary>
internal sealed record DdlMessage(string Event, string Statement, IReadOnlyList<DdlCommand> Commands, IReadOnlyList<DdlTable> Tables, IReadOnlyList<DdlEnum> Enums)
{
    /// <exception cref="FormatException">The content is not a message of a known version of the trigger.</exception>
    public static DdlMessage Parse(ReadOnlySpan<byte> content)
    {
        try
        {
            using var document = JsonDocument.Parse(content.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
            var root = document.RootElement;
            var version = root.GetProperty("v").GetInt32();
            if (version != DdlCaptureSql.Version)
            {
                throw new FormatException($"a message of version {version} of the DDL capture trigger, where this DBSync reads version {DdlCaptureSql.Version}: " +
                    "install the trigger of this DBSync's version (dbsync ddl install)");
            }
            return new DdlMessage(
                root.GetProperty("event").GetString() ?? throw new FormatException("\"event\" is null"),
                root.GetProperty("statement").GetString() ?? "",
                [.. root.GetProperty("commands").EnumerateArray().Select(DdlCommand.Read)],
                [.. root.GetProperty("tables").EnumerateArray().Select(DdlTable.Read)],
                root.TryGetProperty("enums", out var enums) && enums.ValueKind == JsonValueKind.Array ? [.. enums.EnumerateArray().Select(DdlEnum.Read)] : []);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException(e.Message, e);
        }
    }

    internal static string? OptionalString(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    internal static string[] Strings(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array
            ? [.. value.EnumerateArray().Select(v => v.GetString() ?? throw new FormatException($"a null in \"{name}\""))]
            : [];
}

/// <summary>One command of the statement (<c>pg_event_trigger_ddl_commands()</c>, or the dropped objects).</summary>
internal sealed record DdlCommand(string Tag, string? ObjectType, string? Schema, string? Identity, bool InExtension)
{
    public static DdlCommand Read(JsonElement element) => new(
        element.GetProperty("tag").GetString() ?? "",
        DdlMessage.OptionalString(element, "object_type"),
        DdlMessage.OptionalString(element, "schema"),
        DdlMessage.OptionalString(element, "identity"),
        element.TryGetProperty("in_extension", out var e) && e.ValueKind == JsonValueKind.True);
}

/// <summary>A table the statement concerned: its shape before (null: not known, a new table) and after (null: dropped).</summary>
internal sealed record DdlTable(uint Oid, TableShape? Before, TableShape? After, bool Rewritten)
{
    public static DdlTable Read(JsonElement element) => new(
        element.GetProperty("oid").GetUInt32(),
        TableShape.Read(element.GetProperty("before")),
        TableShape.Read(element.GetProperty("after")),
        element.TryGetProperty("rewritten", out var r) && r.ValueKind == JsonValueKind.True);
}

/// <summary>An enum type the statement changed, with its labels after it (and before, when the trigger knew them).</summary>
internal sealed record DdlEnum(uint Oid, string Name, string[] Labels, string[]? LabelsBefore)
{
    public static DdlEnum Read(JsonElement element) => new(
        element.GetProperty("oid").GetUInt32(),
        element.GetProperty("name").GetString() ?? "",
        DdlMessage.Strings(element, "labels"),
        element.TryGetProperty("labels_before", out var before) && before.ValueKind == JsonValueKind.Array ? DdlMessage.Strings(element, "labels_before") : null);
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

    public static TableShape? Read(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
            return null;
        return new TableShape(
            element.GetProperty("schema").GetString() ?? "",
            element.GetProperty("name").GetString() ?? "",
            (element.GetProperty("kind").GetString() ?? "r") is [var kind] ? kind : 'r',
            [.. element.GetProperty("columns").EnumerateArray().Select(ShapeColumn.Read)],
            DdlMessage.Strings(element, "primary_key"),
            (element.GetProperty("replica_identity").GetString() ?? "d") is [var identity] ? identity : 'd',
            element.TryGetProperty("identity_index", out var index) && index.ValueKind == JsonValueKind.Array ? DdlMessage.Strings(element, "identity_index") : null,
            DdlMessage.OptionalString(element, "parent"));
    }
}

/// <summary>A column of a <see cref="TableShape"/>: <paramref name="Num"/> is its attnum, stable across renames.</summary>
internal sealed record ShapeColumn(int Num, string Name, string Type, uint TypeOid, int Typmod, bool NotNull, string? Default, string? Generated)
{
    public static ShapeColumn Read(JsonElement element) => new(
        element.GetProperty("num").GetInt32(),
        element.GetProperty("name").GetString() ?? "",
        element.GetProperty("type").GetString() ?? "",
        element.GetProperty("type_oid").GetUInt32(),
        element.GetProperty("typmod").GetInt32(),
        element.GetProperty("not_null").GetBoolean(),
        DdlMessage.OptionalString(element, "default"),
        DdlMessage.OptionalString(element, "generated"));
}
