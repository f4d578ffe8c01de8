using System.Globalization;
using System.Text;
using System.Text.Json;
using DBSync.Protocol;
using MessagePack;
using NpgsqlTypes;

namespace DBSync.Nats;

/// <summary>
/// Reads a change back from a message body (<see cref="ChangeMessages"/>): each value is turned into PostgreSQL's text
/// for it and decoded by the entity's generated reader (<see cref="ISyncTable{TSelf}.ReadValues"/>) with the same text
/// decoders as the stream, so a value reads back exactly as a text-format tuple of the column would. Unknown columns are
/// ignored (a publisher's entity may map more); a mapped column the new row lacks is an error, but for unchanged TOAST
/// values and the old key's other columns, which stay at their defaults as in the stream.
/// </summary>
internal static class ChangeMessageReader
{
    public static Change<T> Read<T>(ReadOnlyMemory<byte> body, BodyFormat format, ChangeKind kind, NpgsqlLogSequenceNumber commitLsn, DateTimeOffset commitTime,
        uint xid, int index) where T : ISyncTable<T>
    {
        var message = format == BodyFormat.Json ? ParseJson<T>(body) : ParseMessagePack<T>(body);
        var table = T.TableInfo;
        var unchanged = ColumnSet.Empty;
        foreach (var name in message.UnchangedToast)
        {
            if (table.Columns.FirstOrDefault(c => c.Name == name) is { } column)
                unchanged = unchanged.Add(table.Columns.IndexOf(column));
        }
        var row = message.Row is { } values ? Build<T>(values, unchanged, keyOnly: false) : default;
        var oldKind = message.Old is null ? OldRowKind.None : message.OldKind == "key" ? OldRowKind.Key : OldRowKind.Full;
        var old = message.Old is { } oldValues ? Build<T>(oldValues, ColumnSet.Empty, keyOnly: oldKind == OldRowKind.Key) : default;
        return new Change<T>(kind, row, old, oldKind, unchanged, commitLsn, commitLsn, commitTime, xid, index);
    }

    private static T Build<T>(List<MessageValue> values, ColumnSet unchanged, bool keyOnly) where T : ISyncTable<T>
    {
        var table = T.TableInfo;
        for (var i = 0; i < table.Columns.Length; i++)
        {
            var column = table.Columns[i];
            if (unchanged.Contains(i) || (keyOnly && !column.IsKey) || values.Any(v => v.Column == i))
                continue;
            throw new DecodeException(
                $"The message's row of {table.DisplayName} has no column \"{column.Name}\", which property {table.EntityType.Name}.{column.PropertyName} maps. " +
                "The publisher's entity does not map it: map the same columns on both sides (extra columns in the message are ignored).");
        }
        values.RemoveAll(v => unchanged.Contains(v.Column));
        var reader = new MessageRowValues(table, values);
        return T.ReadValues(ref reader);
    }

    private static ParsedMessage ParseMessagePack<T>(ReadOnlyMemory<byte> body) where T : ISyncTable<T>
    {
        var table = T.TableInfo;
        var message = new ParsedMessage();
        try
        {
            var reader = new MessagePackReader(body);
            var entries = reader.ReadMapHeader();
            for (var e = 0; e < entries; e++)
            {
                switch (reader.ReadString())
                {
                    case "row":
                        message.Row = reader.TryReadNil() ? null : ReadRow(ref reader, table);
                        break;
                    case "old":
                        message.Old = reader.TryReadNil() ? null : ReadRow(ref reader, table);
                        break;
                    case "old_kind":
                        message.OldKind = reader.ReadString();
                        break;
                    case "unchanged_toast":
                        var count = reader.ReadArrayHeader();
                        for (var i = 0; i < count; i++)
                            message.UnchangedToast.Add(reader.ReadString() ?? "");
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }
        }
        catch (MessagePackSerializationException e)
        {
            throw new DecodeException($"A message of {table.DisplayName} is not a DBSync MessagePack body ({e.Message}).", e);
        }
        return message;
    }

    private static List<MessageValue> ReadRow(ref MessagePackReader reader, SyncTableInfo table)
    {
        var values = new List<MessageValue>();
        var count = reader.ReadMapHeader();
        for (var i = 0; i < count; i++)
        {
            var name = reader.ReadString();
            var index = IndexOf(table, name);
            if (index < 0)
            {
                reader.Skip();
                continue;
            }
            var column = table.Columns[index];
            if (reader.TryReadNil())
            {
                values.Add(new MessageValue(index, (byte)'n', [], Type(column, null)));
                continue;
            }
            var text = column.ArrayRank > 0 ? ArrayText(ref reader, column, table) : ScalarText(ref reader, column, table);
            values.Add(Value(index, column, text));
        }
        return values;
    }

    private static string ScalarText(ref MessagePackReader reader, SyncColumnInfo column, SyncTableInfo table)
    {
        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Boolean:
                return reader.ReadBoolean() ? "t" : "f";
            case MessagePackType.Integer:
                return reader.NextCode == MessagePackCode.UInt64
                    ? reader.ReadUInt64().ToString(CultureInfo.InvariantCulture)
                    : reader.ReadInt64().ToString(CultureInfo.InvariantCulture);
            case MessagePackType.Float:
                return reader.NextCode == MessagePackCode.Float32 ? FloatText(reader.ReadSingle()) : DoubleText(reader.ReadDouble());
            case MessagePackType.String:
                return reader.ReadString() ?? "";
            case MessagePackType.Binary:
                return ByteaText(System.Buffers.BuffersExtensions.ToArray(reader.ReadBytes()!.Value));
            default:
                throw new DecodeException($"Column \"{column.Name}\" of {table.DisplayName} holds a MessagePack {reader.NextMessagePackType} where a {column.Type} value was expected.");
        }
    }

    private static string ArrayText(ref MessagePackReader reader, SyncColumnInfo column, SyncTableInfo table)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
            throw new DecodeException($"Column \"{column.Name}\" of {table.DisplayName} holds a MessagePack {reader.NextMessagePackType} where an array was expected.");
        var text = new StringBuilder();
        AppendArray(ref reader, column, table, text);
        return text.ToString();
    }

    private static void AppendArray(ref MessagePackReader reader, SyncColumnInfo column, SyncTableInfo table, StringBuilder text)
    {
        var count = reader.ReadArrayHeader();
        text.Append('{');
        for (var i = 0; i < count; i++)
        {
            if (i > 0)
                text.Append(',');
            if (reader.TryReadNil())
                text.Append("NULL");
            else if (reader.NextMessagePackType == MessagePackType.Array)
                AppendArray(ref reader, column, table, text);
            else
                AppendQuoted(text, WithoutInfinityZone(ScalarText(ref reader, column, table)));
        }
        text.Append('}');
    }

    private static ParsedMessage ParseJson<T>(ReadOnlyMemory<byte> body) where T : ISyncTable<T>
    {
        var table = T.TableInfo;
        var message = new ParsedMessage();
        try
        {
            using var document = JsonDocument.Parse(body);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                switch (property.Name)
                {
                    case "row":
                        message.Row = property.Value.ValueKind == JsonValueKind.Null ? null : ReadRow(property.Value, table);
                        break;
                    case "old":
                        message.Old = property.Value.ValueKind == JsonValueKind.Null ? null : ReadRow(property.Value, table);
                        break;
                    case "old_kind":
                        message.OldKind = property.Value.GetString();
                        break;
                    case "unchanged_toast":
                        foreach (var name in property.Value.EnumerateArray())
                            message.UnchangedToast.Add(name.GetString() ?? "");
                        break;
                }
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new DecodeException($"A message of {table.DisplayName} is not a DBSync JSON body ({e.Message}).", e);
        }
        return message;
    }

    private static List<MessageValue> ReadRow(JsonElement row, SyncTableInfo table)
    {
        var values = new List<MessageValue>();
        foreach (var property in row.EnumerateObject())
        {
            var index = IndexOf(table, property.Name);
            if (index < 0)
                continue;
            var column = table.Columns[index];
            if (property.Value.ValueKind == JsonValueKind.Null)
            {
                values.Add(new MessageValue(index, (byte)'n', [], Type(column, null)));
                continue;
            }
            string text;
            if (column.ArrayRank > 0)
            {
                var builder = new StringBuilder();
                AppendArray(property.Value, column, table, builder);
                text = builder.ToString();
            }
            else
            {
                text = ScalarText(property.Value, column, table);
            }
            values.Add(Value(index, column, text));
        }
        return values;
    }

    private static MessageValue Value(int index, SyncColumnInfo column, string text)
    {
        var type = Type(column, text);
        // A timestamptz's infinity is written with +00 (ChangeMessages), which PostgreSQL's text has not.
        if (type.Scalar == PgTypeOids.TimestampTz)
            text = WithoutInfinityZone(text);
        return new MessageValue(index, (byte)'t', Encoding.UTF8.GetBytes(text), type);
    }

    private static string ScalarText(JsonElement value, SyncColumnInfo column, SyncTableInfo table) => value.ValueKind switch
    {
        JsonValueKind.True => "t",
        JsonValueKind.False => "f",
        JsonValueKind.Number => value.GetRawText(),
        JsonValueKind.String when column.Type is SyncColumnType.Bytes or SyncColumnType.ByteMemory => ByteaText(value.GetBytesFromBase64()),
        JsonValueKind.String => value.GetString()!,
        _ => throw new DecodeException($"Column \"{column.Name}\" of {table.DisplayName} holds a JSON {value.ValueKind} where a {column.Type} value was expected."),
    };

    private static void AppendArray(JsonElement array, SyncColumnInfo column, SyncTableInfo table, StringBuilder text)
    {
        if (array.ValueKind != JsonValueKind.Array)
            throw new DecodeException($"Column \"{column.Name}\" of {table.DisplayName} holds a JSON {array.ValueKind} where an array was expected.");
        text.Append('{');
        var first = true;
        foreach (var element in array.EnumerateArray())
        {
            if (!first)
                text.Append(',');
            first = false;
            if (element.ValueKind == JsonValueKind.Null)
                text.Append("NULL");
            else if (element.ValueKind == JsonValueKind.Array)
                AppendArray(element, column, table, text);
            else
                AppendQuoted(text, WithoutInfinityZone(ScalarText(element, column, table)));
        }
        text.Append('}');
    }

    private static string WithoutInfinityZone(string text) => text is "infinity+00" or "-infinity+00" ? text[..^3] : text;

    private static void AppendQuoted(StringBuilder text, string value)
    {
        text.Append('"');
        foreach (var c in value)
        {
            if (c is '"' or '\\')
                text.Append('\\');
            text.Append(c);
        }
        text.Append('"');
    }

    private static string FloatText(float value)
        => float.IsNaN(value) ? "NaN" : float.IsPositiveInfinity(value) ? "Infinity" : float.IsNegativeInfinity(value) ? "-Infinity" : value.ToString("R", CultureInfo.InvariantCulture);

    private static string DoubleText(double value)
        => double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "Infinity" : double.IsNegativeInfinity(value) ? "-Infinity" : value.ToString("R", CultureInfo.InvariantCulture);

    private static string ByteaText(byte[] bytes) => "\\x" + Convert.ToHexStringLower(bytes);

    private static int IndexOf(SyncTableInfo table, string? name)
    {
        for (var i = 0; i < table.Columns.Length; i++)
        {
            if (table.Columns[i].Name == name)
                return i;
        }
        return -1;
    }

    /// <summary>The PostgreSQL type whose text decoder reads the value into the property: one per property type, but for
    /// timestamps, whose text says whether they came from a <c>timestamptz</c> (<c>+00</c>).</summary>
    private static PgColumnType Type(SyncColumnInfo column, string? text)
    {
        var oid = column.Type switch
        {
            SyncColumnType.Boolean => PgTypeOids.Bool,
            SyncColumnType.Int16 => PgTypeOids.Int2,
            SyncColumnType.Int32 => PgTypeOids.Int4,
            SyncColumnType.Int64 => PgTypeOids.Int8,
            SyncColumnType.Single => PgTypeOids.Float4,
            SyncColumnType.Double => PgTypeOids.Float8,
            SyncColumnType.Decimal => PgTypeOids.Numeric,
            SyncColumnType.DateOnly or SyncColumnType.PgDate => PgTypeOids.Date,
            SyncColumnType.TimeOnly => PgTypeOids.Time,
            SyncColumnType.PgTimeTz => PgTypeOids.TimeTz,
            SyncColumnType.DateTime or SyncColumnType.PgTimestamp => text is not null && text.Contains("+00", StringComparison.Ordinal) ? PgTypeOids.TimestampTz : PgTypeOids.Timestamp,
            SyncColumnType.DateTimeOffset => PgTypeOids.TimestampTz,
            SyncColumnType.TimeSpan or SyncColumnType.PgInterval => PgTypeOids.Interval,
            SyncColumnType.Guid => PgTypeOids.Uuid,
            SyncColumnType.Bytes or SyncColumnType.ByteMemory => PgTypeOids.Bytea,
            SyncColumnType.JsonDocument or SyncColumnType.JsonElement => PgTypeOids.Json,
            SyncColumnType.Enum => PgTypeOids.AnyEnum,
            SyncColumnType.IPAddress or SyncColumnType.IPNetwork or SyncColumnType.PgInet => PgTypeOids.Inet,
            _ => PgTypeOids.Text,
        };
        var name = PgTypeOids.ScalarName(oid) ?? "text";
        return column.ArrayRank > 0 ? new PgColumnType(oid, true, name + "[]") : new PgColumnType(oid, false, name);
    }

    private sealed class ParsedMessage
    {
        public List<MessageValue>? Row { get; set; }
        public List<MessageValue>? Old { get; set; }
        public string? OldKind { get; set; }
        public List<string> UnchangedToast { get; } = [];
    }
}

/// <summary>One value of a message row: its entity column, 't' (PostgreSQL text) or 'n' (NULL), and how it decodes.</summary>
internal readonly record struct MessageValue(int Column, byte Kind, byte[] Text, PgColumnType Type);

/// <summary>The values of a message row for the generated reader.</summary>
internal ref struct MessageRowValues(SyncTableInfo table, List<MessageValue> values) : IRowValues
{
    private int _next;

    public bool TryReadNext(out TupleValue value)
    {
        if (_next >= values.Count)
        {
            value = default;
            return false;
        }
        var v = values[_next++];
        value = new TupleValue(v.Kind, v.Text, table, v.Column, v.Type);
        return true;
    }
}
