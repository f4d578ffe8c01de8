using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace DBSync.Applying;

/// <summary>PostgreSQL's text form of the values of the types Npgsql has no exact writer for.</summary>
internal static class ColumnValues
{
    /// <summary>PostgreSQL's text form of a non-null value of a column that <see cref="TargetColumn.AsText"/>: an enum's
    /// label, JSON as written, ISO dates and timestamps, the Pg* structs' and IPNetwork's own text; an array as an array
    /// literal of those.</summary>
    public static string Text(object value, TargetColumn column, string table)
    {
        if (column.Source.ArrayRank == 0)
            return Scalar(value, column, table);
        var array = (Array)value;
        if (array.Length == 0)
            return "{}"; // PostgreSQL has one empty array, of no dimensions
        var text = new StringBuilder();
        AppendDimension(text, array, new int[array.Rank], 0, column, table);
        return text.ToString();
    }

    /// <summary>One dimension of an array literal: <c>{"a",NULL}</c>, nested for the next dimensions, in row-major order.</summary>
    private static void AppendDimension(StringBuilder text, Array array, int[] indices, int dimension, TargetColumn column, string table)
    {
        text.Append('{');
        for (var i = 0; i < array.GetLength(dimension); i++)
        {
            if (i > 0)
                text.Append(',');
            indices[dimension] = i;
            if (dimension < array.Rank - 1)
            {
                AppendDimension(text, array, indices, dimension + 1, column, table);
                continue;
            }
            if (array.GetValue(indices) is not { } element)
            {
                text.Append("NULL");
                continue;
            }
            text.Append('"');
            foreach (var c in Scalar(element, column, table))
                text.Append(c is '"' or '\\' ? "\\" : "").Append(c);
            text.Append('"');
        }
        text.Append('}');
    }

    private const string TimestampFormat = "yyyy-MM-dd HH:mm:ss.ffffff";

    private static string Scalar(object value, TargetColumn column, string table) => value switch
    {
        DateOnly date => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        DateTime time when column.DateTimeUtc => (time.Kind == DateTimeKind.Local ? time.ToUniversalTime() : time).ToString(TimestampFormat, CultureInfo.InvariantCulture) + "+00",
        DateTime time => time.ToString(TimestampFormat, CultureInfo.InvariantCulture),
        DateTimeOffset time => time.UtcDateTime.ToString(TimestampFormat, CultureInfo.InvariantCulture) + "+00",
        JsonDocument document => document.RootElement.GetRawText(),
        JsonElement element => element.GetRawText(),
        Enum => column.Source.EnumLabels?.LabelOf(value) ?? throw new DBSyncException(
            $"The value {value} of {column.Source.ClrTypeName} (column \"{column.Source.Name}\" of {table}) is no member with a PostgreSQL label, so it cannot be written. " +
            "Write only declared members (a cast integer is none)."),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>A value for a message: its text, cut short when long.</summary>
    public static string Describe<T>(T value)
    {
        var text = value switch
        {
            null => "NULL",
            string s => "'" + s + "'",
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        return text.Length > 100 ? text[..100] + "..." : text;
    }
}
