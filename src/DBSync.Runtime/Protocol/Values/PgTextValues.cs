using System.Globalization;
using System.Numerics;
using System.Text;

namespace DBSync.Protocol;

/// <summary>Parsers for PostgreSQL's text output formats (DateStyle ISO, which DBSync sets on its connections).</summary>
internal static class PgTextValues
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static string Utf8(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        try
        {
            return s_strictUtf8.GetString(data);
        }
        catch (DecoderFallbackException e)
        {
            owner.Fail("is not valid UTF-8 (is the database encoding UTF8?)", e);
            return null;
        }
    }

    public static bool ParseBoolean(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.Length == 1 && data[0] is (byte)'t' or (byte)'f')
            return data[0] == (byte)'t';
        owner.Fail($"'{Encoding.UTF8.GetString(data)}' is not a boolean");
        return false;
    }

    public static T ParseInteger<T>(ReadOnlySpan<byte> data, in TupleValue owner) where T : IBinaryInteger<T>
    {
        if (!T.TryParse(data, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            owner.Fail($"'{Encoding.UTF8.GetString(data)}' is not an integer in range");
        return value;
    }

    public static decimal ParseDecimal(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.SequenceEqual("NaN"u8) || data.SequenceEqual("Infinity"u8) || data.SequenceEqual("-Infinity"u8))
            owner.Fail($"is {Encoding.UTF8.GetString(data)}, which decimal cannot hold (map the column to string, or keep it out of the column)");
        try
        {
            return decimal.Parse(data, NumberStyles.Number | NumberStyles.AllowExponent, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            owner.Fail($"'{Encoding.UTF8.GetString(data)}' is not a decimal in range", e);
            return 0;
        }
    }

    public static Guid ParseGuid(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        Span<char> chars = stackalloc char[36];
        if (data.Length != 36 || Encoding.ASCII.GetChars(data, chars) != 36 || !Guid.TryParseExact(chars, "D", out var value))
        {
            owner.Fail($"'{Encoding.UTF8.GetString(data)}' is not a uuid");
            return default;
        }
        return value;
    }

    /// <summary>ISO dates: <c>YYYY-MM-DD</c>; BC dates and infinities are errors.</summary>
    public static DateOnly ParseDate(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        var position = 0;
        if (!TryParseDate(data, ref position, out var date) || position != data.Length)
            FailDate(data, "DateOnly", owner);
        return date;
    }

    /// <summary>ISO timestamps: <c>YYYY-MM-DD HH:MM:SS[.ffffff]</c>, for timestamptz followed by <c>±HH[:MM[:SS]]</c>.</summary>
    public static DateTime ParseTimestamp(ReadOnlySpan<byte> data, DateTimeKind kind, in TupleValue owner)
    {
        var position = 0;
        int hour = 0, minute = 0, second = 0;
        if (!TryParseDate(data, ref position, out var date) || !Expect(data, ref position, (byte)' ')
            || !TryDigits(data, ref position, 2, out hour) || !Expect(data, ref position, (byte)':')
            || !TryDigits(data, ref position, 2, out minute) || !Expect(data, ref position, (byte)':')
            || !TryDigits(data, ref position, 2, out second) || hour > 23 || minute > 59 || second > 59)
        {
            FailDate(data, "DateTime", owner);
        }

        long fractionTicks = 0;
        if (position < data.Length && data[position] == (byte)'.')
        {
            position++;
            var digits = 0;
            while (position < data.Length && IsDigit(data[position]))
            {
                if (digits == 7)
                    FailDate(data, "DateTime", owner);
                fractionTicks = fractionTicks * 10 + (data[position++] - '0');
                digits++;
            }
            for (; digits < 7; digits++)
                fractionTicks *= 10;
        }

        var offset = TimeSpan.Zero;
        if (position < data.Length && data[position] is (byte)'+' or (byte)'-')
        {
            var negative = data[position++] == (byte)'-';
            if (!TryDigits(data, ref position, 2, out var offsetHours))
                FailDate(data, "DateTime", owner);
            int offsetMinutes = 0, offsetSeconds = 0;
            if (position < data.Length && data[position] == (byte)':' && !(++position > 0 && TryDigits(data, ref position, 2, out offsetMinutes)))
                FailDate(data, "DateTime", owner);
            if (position < data.Length && data[position] == (byte)':' && !(++position > 0 && TryDigits(data, ref position, 2, out offsetSeconds)))
                FailDate(data, "DateTime", owner);
            offset = new TimeSpan(offsetHours, offsetMinutes, offsetSeconds);
            if (negative)
                offset = -offset;
        }
        if (position != data.Length)
            FailDate(data, "DateTime", owner);

        var local = date.ToDateTime(new TimeOnly(hour, minute, second)).AddTicks(fractionTicks);
        return kind == DateTimeKind.Utc ? DateTime.SpecifyKind(local - offset, DateTimeKind.Utc) : DateTime.SpecifyKind(local, kind);
    }

    /// <summary>Array literals: <c>{a,"b c",NULL,"q\"x"}</c>, optionally preceded by a <c>[lo:hi]=</c> decoration. Two
    /// passes (count, then decode), so the only allocations are the array and its strings.</summary>
    public static string[] ParseStringArray(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        var start = 0;
        if (start < data.Length && data[start] == (byte)'[')
        {
            var equals = data.IndexOf((byte)'=');
            if (equals < 0)
                FailArray(data, "has a dimension decoration without '='", owner);
            start = equals + 1;
        }
        if (start >= data.Length || data[start] != (byte)'{')
            FailArray(data, "does not start with '{'", owner);
        start++;
        if (start < data.Length && data[start] == (byte)'}' && start + 1 == data.Length)
            return [];

        var count = 0;
        for (var position = start; ; position++)
        {
            NextElement(data, ref position, owner, out _, out _, out _);
            count++;
            if (data[position] == (byte)'}')
                break;
        }

        var result = new string[count];
        for (int i = 0, position = start; i < count; i++, position++)
        {
            NextElement(data, ref position, owner, out var element, out var quoted, out var escaped);
            result[i] = !quoted && element.Length == 4 && Ascii.EqualsIgnoreCase(element, "NULL"u8) ? null!
                : escaped ? Unescape(element)
                : Encoding.UTF8.GetString(element);
        }
        return result;
    }

    /// <summary>One element from <paramref name="position"/>: its bytes (inside the quotes, escapes still in), and leaves
    /// <paramref name="position"/> on the ',' or the final '}' after it.</summary>
    private static void NextElement(ReadOnlySpan<byte> data, ref int position, in TupleValue owner, out ReadOnlySpan<byte> element, out bool quoted, out bool escaped)
    {
        if (position >= data.Length)
            FailArray(data, "ends early", owner);
        if (data[position] == (byte)'{')
            FailArray(data, "is multi-dimensional; string[] holds one dimension", owner);

        escaped = false;
        quoted = data[position] == (byte)'"';
        if (quoted)
        {
            var begin = ++position;
            while (true)
            {
                if (position >= data.Length)
                    FailArray(data, "has an unterminated quoted element", owner);
                var b = data[position];
                if (b == (byte)'"')
                    break;
                if (b == (byte)'\\')
                {
                    escaped = true;
                    if (++position >= data.Length)
                        FailArray(data, "ends in an escape", owner);
                }
                position++;
            }
            element = data[begin..position];
            position++; // the closing quote
        }
        else
        {
            var end = position;
            while (end < data.Length && data[end] is not ((byte)',' or (byte)'}'))
                end++;
            element = data[position..end];
            position = end;
        }

        if (position >= data.Length)
            FailArray(data, "ends early", owner);
        if (data[position] == (byte)'}')
        {
            if (position + 1 != data.Length)
                FailArray(data, "has text after its closing '}'", owner);
        }
        else if (data[position] != (byte)',')
        {
            FailArray(data, $"has '{(char)data[position]}' where ',' or '}}' belongs", owner);
        }
    }

    /// <summary>A quoted element with its backslash escapes removed.</summary>
    private static string Unescape(ReadOnlySpan<byte> element)
    {
        var rented = element.Length > 256 ? System.Buffers.ArrayPool<byte>.Shared.Rent(element.Length) : null;
        Span<byte> buffer = rented ?? stackalloc byte[256];
        var length = 0;
        for (var i = 0; i < element.Length; i++)
        {
            if (element[i] == (byte)'\\')
                i++;
            buffer[length++] = element[i];
        }
        var value = Encoding.UTF8.GetString(buffer[..length]);
        if (rented is not null)
            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        return value;
    }

    private static bool TryParseDate(ReadOnlySpan<byte> data, ref int position, out DateOnly date)
    {
        date = default;
        var start = position;
        var year = 0;
        while (position < data.Length && IsDigit(data[position]) && position - start < 5)
            year = year * 10 + (data[position++] - '0');
        if (position - start < 4 || !Expect(data, ref position, (byte)'-') || !TryDigits(data, ref position, 2, out var month)
            || !Expect(data, ref position, (byte)'-') || !TryDigits(data, ref position, 2, out var day))
        {
            return false;
        }
        if (year is < 1 or > 9999 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month))
            return false;
        date = new DateOnly(year, month, day);
        return true;
    }

    private static bool TryDigits(ReadOnlySpan<byte> data, ref int position, int count, out int value)
    {
        value = 0;
        if (data.Length - position < count)
            return false;
        for (var i = 0; i < count; i++)
        {
            var b = data[position + i];
            if (!IsDigit(b))
                return false;
            value = value * 10 + (b - '0');
        }
        position += count;
        return true;
    }

    private static bool Expect(ReadOnlySpan<byte> data, ref int position, byte expected)
    {
        if (position >= data.Length || data[position] != expected)
            return false;
        position++;
        return true;
    }

    private static bool IsDigit(byte b) => b is >= (byte)'0' and <= (byte)'9';

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void FailDate(ReadOnlySpan<byte> data, string clrType, in TupleValue owner)
        => owner.Fail($"'{Encoding.UTF8.GetString(data)}' is not an ISO date/time {clrType} can hold (BC dates, years past 9999 and infinities cannot be represented)");

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void FailArray(ReadOnlySpan<byte> data, string problem, in TupleValue owner)
        => owner.Fail($"'{Encoding.UTF8.GetString(data)}' {problem}");
}
