using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace DBSync.Nats;

/// <summary>
/// One property's value in a message body. Values with a type of their own in MessagePack and JSON are written as such:
/// booleans, integers, floats, text, bytes (MessagePack bin; base64 in JSON), arrays (nested for several dimensions),
/// NULL. Every other value is written as the text PostgreSQL itself writes for it (ISO dates and timestamps, with
/// <c>+00</c> for a <c>timestamptz</c>, its infinities included (<c>infinity+00</c>); numerics exactly; uuids; JSON as its text; an enum's label; intervals in ISO
/// 8601; addresses), so that any language reads it without DBSync.
/// </summary>
internal static class MessageValues
{
    private const string TimestampFormat = "yyyy-MM-dd HH:mm:ss.FFFFFF";

    public static void Write<T, TBody>(ref TBody body, T value, SyncColumnInfo column) where TBody : IBodyWriter, allows ref struct
    {
        if (value is null)
        {
            body.Nil();
            return;
        }
        // typeof(T) is a constant in the code compiled for each value type: the common types take one branch, unboxed.
        if (typeof(T) == typeof(int))
            body.Integer(Unsafe.As<T, int>(ref value));
        else if (typeof(T) == typeof(long))
            body.Integer(Unsafe.As<T, long>(ref value));
        else if (typeof(T) == typeof(short))
            body.Integer(Unsafe.As<T, short>(ref value));
        else if (typeof(T) == typeof(bool))
            body.Boolean(Unsafe.As<T, bool>(ref value));
        else if (typeof(T) == typeof(double))
            body.Double(Unsafe.As<T, double>(ref value));
        else if (typeof(T) == typeof(float))
            body.Single(Unsafe.As<T, float>(ref value));
        else if (typeof(T) == typeof(string))
            body.String(Unsafe.As<T, string>(ref value));
        else
            WriteObject(ref body, value, column);
    }

    private static void WriteObject<TBody>(ref TBody body, object value, SyncColumnInfo column) where TBody : IBodyWriter, allows ref struct
    {
        switch (value)
        {
            case int i: body.Integer(i); break;
            case long l: body.Integer(l); break;
            case short s: body.Integer(s); break;
            case bool b: body.Boolean(b); break;
            case double d: body.Double(d); break;
            case float f: body.Single(f); break;
            case string text: body.String(text); break;
            case byte[] bytes: body.Bytes(bytes); break;
            case ReadOnlyMemory<byte> memory: body.Bytes(memory.Span); break;
            case Array array: WriteArray(ref body, array, column); break;
            default: body.String(Text(value, column)); break;
        }
    }

    private static void WriteArray<TBody>(ref TBody body, Array array, SyncColumnInfo column) where TBody : IBodyWriter, allows ref struct
    {
        if (array.Rank == 1)
        {
            body.ArrayStart(array.Length);
            foreach (var element in array)
            {
                if (element is null)
                    body.Nil();
                else
                    WriteObject(ref body, element, column);
            }
            body.ArrayEnd();
            return;
        }
        WriteDimension(ref body, array, new int[array.Rank], 0, column);
    }

    private static void WriteDimension<TBody>(ref TBody body, Array array, int[] indices, int dimension, SyncColumnInfo column)
        where TBody : IBodyWriter, allows ref struct
    {
        var length = array.GetLength(dimension);
        body.ArrayStart(length);
        for (var i = 0; i < length; i++)
        {
            indices[dimension] = i;
            if (dimension < array.Rank - 1)
                WriteDimension(ref body, array, indices, dimension + 1, column);
            else if (array.GetValue(indices) is { } element)
                WriteObject(ref body, element, column);
            else
                body.Nil();
        }
        body.ArrayEnd();
    }

    /// <summary>PostgreSQL's text for a value without a MessagePack or JSON type of its own.</summary>
    internal static string Text(object value, SyncColumnInfo column) => value switch
    {
        decimal d => d.ToString(CultureInfo.InvariantCulture),
        DateOnly date => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        TimeOnly time => time.ToString("HH:mm:ss.FFFFFF", CultureInfo.InvariantCulture).TrimEnd('.'),
        DateTime time when time.Kind == DateTimeKind.Utc => time.ToString(TimestampFormat, CultureInfo.InvariantCulture).TrimEnd('.') + "+00",
        DateTime time => time.ToString(TimestampFormat, CultureInfo.InvariantCulture).TrimEnd('.'),
        DateTimeOffset time => time.UtcDateTime.ToString(TimestampFormat, CultureInfo.InvariantCulture).TrimEnd('.') + "+00",
        TimeSpan span => new PgInterval(0, 0, span.Ticks / TimeSpan.TicksPerMicrosecond).ToString(),
        // Every timestamptz value ends with +00, its infinities too (PostgreSQL writes those bare), so that a reader can
        // tell the two kinds of timestamp apart by the value alone.
        PgTimestamp { Kind: DateTimeKind.Utc } time when time.IsPositiveInfinity || time.IsNegativeInfinity => time + "+00",
        Guid guid => guid.ToString("D"),
        JsonDocument document => document.RootElement.GetRawText(),
        JsonElement element => element.GetRawText(),
        Enum => column.EnumLabels?.LabelOf(value) ?? throw new DBSyncException(
            $"The value {value} of {column.ClrTypeName} (column \"{column.Name}\") is no member with a PostgreSQL label, so it cannot be published. " +
            "Write only declared members (a cast integer is none)."),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };
}
