using System.Globalization;
using System.Net;
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
        owner.Fail($"'{Printable(data)}' is not a boolean");
        return false;
    }

    public static T ParseInteger<T>(ReadOnlySpan<byte> data, in TupleValue owner) where T : IBinaryInteger<T>
    {
        if (!T.TryParse(data, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            owner.Fail($"'{Printable(data)}' is not an integer in range");
        return value;
    }

    /// <summary>numeric as numeric_out writes it. decimal.Parse rounds what it cannot hold, so the value must format back to
    /// the same text: anything decimal does not hold exactly (more than 28 decimal places, too large) is an error.</summary>
    public static decimal ParseDecimal(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.SequenceEqual("NaN"u8) || data.SequenceEqual("Infinity"u8) || data.SequenceEqual("-Infinity"u8))
            owner.Fail($"is {Printable(data)}, which decimal cannot hold. Map the column to string, which holds NaN and infinities, or keep such values out of it");
        Span<byte> formatted = stackalloc byte[64];
        if (!decimal.TryParse(data, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
            || !value.TryFormat(formatted, out var length, default, CultureInfo.InvariantCulture) || !formatted[..length].SequenceEqual(data))
        {
            owner.Fail($"is {Printable(data)}, {PgBinaryValues.OutsideDecimal}");
        }
        return value;
    }

    public static Guid ParseGuid(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        Span<char> chars = stackalloc char[36];
        if (data.Length != 36 || Encoding.ASCII.GetChars(data, chars) != 36 || !Guid.TryParseExact(chars, "D", out var value))
        {
            owner.Fail($"'{Printable(data)}' is not a uuid");
            return default;
        }
        return value;
    }

    /// <summary>Floating point as float4out/float8out write it: shortest round-trip digits, <c>NaN</c>, <c>Infinity</c>,
    /// <c>-Infinity</c>. NaN is PostgreSQL's own (a positive quiet NaN, as its binary format sends it), not .NET's.</summary>
    public static T ParseFloat<T>(ReadOnlySpan<byte> data, in TupleValue owner) where T : IFloatingPointIeee754<T>
    {
        if (data.SequenceEqual("NaN"u8))
            return T.CopySign(T.NaN, T.One);
        if (data.SequenceEqual("Infinity"u8))
            return T.PositiveInfinity;
        if (data.SequenceEqual("-Infinity"u8))
            return T.NegativeInfinity;
        if (!T.TryParse(data, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            owner.Fail($"'{Printable(data)}' is not a floating-point number");
        return value;
    }

    /// <summary>money as cash_out writes it under lc_monetary = C: <c>$1,234.56</c>, <c>-$0.50</c>.</summary>
    public static decimal ParseMoney(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        Span<byte> digits = stackalloc byte[32];
        var length = 0;
        foreach (var b in data)
        {
            if (b is (byte)'$' or (byte)',')
                continue;
            if (length == digits.Length || !(IsDigit(b) || b is (byte)'.' or (byte)'-'))
            {
                owner.Fail($"'{Printable(data)}' is not money as lc_monetary = C writes it");
                break;
            }
            digits[length++] = b;
        }
        if (!decimal.TryParse(digits[..length], NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            owner.Fail($"'{Printable(data)}' is not money as lc_monetary = C writes it");
        return value;
    }

    /// <summary>ISO dates: <c>YYYY-MM-DD</c> (more year digits past 9999), <c> BC</c> after the year 1 BC and before, <c>infinity</c>.</summary>
    public static PgDate ParseDate(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.SequenceEqual("infinity"u8))
            return PgDate.PositiveInfinity;
        if (data.SequenceEqual("-infinity"u8))
            return PgDate.NegativeInfinity;
        var position = 0;
        if (!TryParseDate(data, ref position, out var days) || !TryParseEra(data, ref position, ref days) || position != data.Length
            || days is <= int.MinValue or >= int.MaxValue)
        {
            FailDate(data, owner);
        }
        return new PgDate((int)days);
    }

    /// <summary>ISO timestamps: <c>YYYY-MM-DD HH:MM:SS[.ffffff]</c>, for timestamptz followed by <c>±HH[:MM[:SS]]</c>, then
    /// <c> BC</c> for the years before 1; <c>infinity</c> and <c>-infinity</c>.</summary>
    public static PgTimestamp ParseTimestamp(ReadOnlySpan<byte> data, DateTimeKind kind, in TupleValue owner)
    {
        if (data.SequenceEqual("infinity"u8))
            return new PgTimestamp(long.MaxValue, kind);
        if (data.SequenceEqual("-infinity"u8))
            return new PgTimestamp(long.MinValue, kind);
        var position = 0;
        long days = 0, time = 0;
        var offsetSeconds = 0;
        if (!TryParseDate(data, ref position, out days) || !Expect(data, ref position, (byte)' ')
            || !TryParseTime(data, ref position, out time) || !TryParseOffset(data, ref position, out offsetSeconds)
            || !TryParseEra(data, ref position, ref days) || position != data.Length)
        {
            FailDate(data, owner);
        }
        var microseconds = (Int128)days * PgCalendar.MicrosecondsPerDay + time - (Int128)offsetSeconds * 1_000_000;
        if (microseconds <= long.MinValue || microseconds >= long.MaxValue)
            FailDate(data, owner);
        return new PgTimestamp((long)microseconds, kind);
    }

    /// <summary>Times of day: <c>HH:MM:SS[.ffffff]</c>, up to <c>24:00:00</c>; microseconds since midnight.</summary>
    public static long ParseTime(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        var position = 0;
        if (!TryParseTime(data, ref position, out var time) || position != data.Length)
            FailDate(data, owner);
        return time;
    }

    /// <summary>timetz: a time of day and <c>±HH[:MM[:SS]]</c>.</summary>
    public static PgTimeTz ParseTimeTz(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        var position = 0;
        long time = 0;
        var offsetSeconds = 0;
        if (!TryParseTime(data, ref position, out time) || position == data.Length || !TryParseOffset(data, ref position, out offsetSeconds)
            || position != data.Length)
        {
            FailDate(data, owner);
        }
        return new PgTimeTz(TimeSpan.FromMicroseconds(time), TimeSpan.FromSeconds(offsetSeconds));
    }

    /// <summary>Intervals as IntervalStyle = iso_8601 writes them (DBSync sets it): <c>P1Y2M3DT4H5M6.5S</c>, each part
    /// with its own sign, <c>PT0S</c>; PostgreSQL 17's <c>infinity</c> and <c>-infinity</c>.</summary>
    public static PgInterval ParseInterval(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.SequenceEqual("infinity"u8))
            return new PgInterval(int.MaxValue, int.MaxValue, long.MaxValue);
        if (data.SequenceEqual("-infinity"u8))
            return new PgInterval(int.MinValue, int.MinValue, long.MinValue);
        if (data.IsEmpty || data[0] != (byte)'P')
            FailInterval(data, owner);
        Int128 months = 0, days = 0, microseconds = 0;
        var inTime = false;
        for (var position = 1; position < data.Length;)
        {
            if (data[position] == (byte)'T' && !inTime)
            {
                inTime = true;
                position++;
                continue;
            }
            var negative = data[position] == (byte)'-';
            if (negative)
                position++;
            var start = position;
            Int128 whole = 0;
            while (position < data.Length && IsDigit(data[position]) && position - start < 20)
                whole = whole * 10 + (data[position++] - '0');
            if (position == start || position >= data.Length)
                FailInterval(data, owner);
            long fraction = 0; // microseconds, for seconds only
            if (data[position] == (byte)'.')
            {
                position++;
                var scale = 100_000;
                for (; position < data.Length && IsDigit(data[position]); position++, scale /= 10)
                {
                    if (scale == 0)
                        FailInterval(data, owner);
                    fraction += (data[position] - '0') * scale;
                }
                if (position >= data.Length || data[position] != (byte)'S' || !inTime)
                    FailInterval(data, owner);
            }
            var sign = negative ? -1 : 1;
            switch ((inTime, (char)data[position++]))
            {
                case (false, 'Y'): months += sign * whole * 12; break;
                case (false, 'M'): months += sign * whole; break;
                case (false, 'D'): days += sign * whole; break;
                case (true, 'H'): microseconds += sign * whole * 3_600_000_000; break;
                case (true, 'M'): microseconds += sign * whole * 60_000_000; break;
                case (true, 'S'): microseconds += sign * (whole * 1_000_000 + fraction); break;
                default: FailInterval(data, owner); break;
            }
        }
        if (months < int.MinValue || months > int.MaxValue || days < int.MinValue || days > int.MaxValue || microseconds < long.MinValue || microseconds > long.MaxValue)
            FailInterval(data, owner);
        return new PgInterval((int)months, (int)days, (long)microseconds);
    }

    /// <summary>bytea as bytea_output = hex writes it (DBSync sets it): <c>\x</c> and two hex digits per byte.</summary>
    public static byte[] ParseBytea(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.Length < 2 || data[0] != (byte)'\\' || data[1] != (byte)'x' || data.Length % 2 != 0)
            owner.Fail($"is not bytea in hex format ({data.Length} characters)");
        var result = new byte[(data.Length - 2) / 2];
        for (var i = 0; i < result.Length; i++)
        {
            var high = HexValue(data[2 + 2 * i]);
            var low = HexValue(data[3 + 2 * i]);
            if ((high | low) < 0)
                owner.Fail($"has a character that is not a hex digit at position {2 + 2 * i}");
            result[i] = (byte)(high << 4 | low);
        }
        return result;

        static int HexValue(byte b) => b switch
        {
            >= (byte)'0' and <= (byte)'9' => b - '0',
            >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
            >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
            _ => -1,
        };
    }

    /// <summary>inet and cidr: an address, and <c>/bits</c> unless the mask is the full length (always for cidr).</summary>
    public static (IPAddress Address, int Bits) ParseInet(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        var slash = data.IndexOf((byte)'/');
        var addressText = slash < 0 ? data : data[..slash];
        Span<char> chars = stackalloc char[64];
        IPAddress? address = null;
        if (addressText.Length > chars.Length || !Ascii.IsValid(addressText)
            || !IPAddress.TryParse(chars[..Encoding.ASCII.GetChars(addressText, chars)], out address))
        {
            owner.Fail($"'{Printable(data)}' is not an inet or cidr");
        }
        var maxBits = address!.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        var bits = maxBits;
        if (slash >= 0 && (!int.TryParse(data[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out bits) || bits > maxBits))
            owner.Fail($"'{Printable(data)}' is not an inet or cidr");
        return (address, bits);
    }

    /// <summary>The text of a value for a message: UTF-8, invalid bytes replaced, cut after 200 characters.</summary>
    public static string Printable(ReadOnlySpan<byte> data)
    {
        var text = Encoding.UTF8.GetString(data.Length > 800 ? data[..800] : data);
        return text.Length > 200 ? text[..200] + "..." : text;
    }

    /// <summary>A date's year, month and day as days since 2000-01-01 (the year as written: the era comes after).</summary>
    private static bool TryParseDate(ReadOnlySpan<byte> data, ref int position, out long days)
    {
        days = 0;
        var start = position;
        long year = 0;
        while (position < data.Length && IsDigit(data[position]) && position - start < 8)
            year = year * 10 + (data[position++] - '0');
        if (position - start < 4 || !Expect(data, ref position, (byte)'-') || !TryDigits(data, ref position, 2, out var month)
            || !Expect(data, ref position, (byte)'-') || !TryDigits(data, ref position, 2, out var day) || !PgCalendar.IsValid(year, month, day))
        {
            return false;
        }
        days = PgCalendar.DaysFromCivil(year, month, day);
        return true;
    }

    /// <summary>A trailing <c> BC</c>: the year written N is the astronomical year 1 - N, so the date moves back.</summary>
    private static bool TryParseEra(ReadOnlySpan<byte> data, ref int position, ref long days)
    {
        if (!data[position..].SequenceEqual(" BC"u8))
            return true;
        position += 3;
        var (year, month, day) = PgCalendar.CivilFromDays(days);
        var astronomical = 1 - year;
        if (year < 1 || !PgCalendar.IsValid(astronomical, month, day))
            return false;
        days = PgCalendar.DaysFromCivil(astronomical, month, day);
        return true;
    }

    /// <summary><c>HH:MM:SS[.ffffff]</c>, up to 24:00:00, as microseconds.</summary>
    private static bool TryParseTime(ReadOnlySpan<byte> data, ref int position, out long microseconds)
    {
        microseconds = 0;
        if (!TryDigits(data, ref position, 2, out var hour) || !Expect(data, ref position, (byte)':')
            || !TryDigits(data, ref position, 2, out var minute) || !Expect(data, ref position, (byte)':')
            || !TryDigits(data, ref position, 2, out var second) || hour > 24 || minute > 59 || second > 59)
        {
            return false;
        }
        long fraction = 0;
        if (position < data.Length && data[position] == (byte)'.')
        {
            position++;
            var scale = 100_000;
            for (; position < data.Length && IsDigit(data[position]); position++, scale /= 10)
            {
                if (scale == 0)
                    return false;
                fraction += (data[position] - '0') * scale;
            }
        }
        microseconds = ((hour * 60L + minute) * 60 + second) * 1_000_000 + fraction;
        return microseconds <= PgCalendar.MicrosecondsPerDay;
    }

    /// <summary>An optional UTC offset <c>±HH[:MM[:SS]]</c>, in seconds east of Greenwich.</summary>
    private static bool TryParseOffset(ReadOnlySpan<byte> data, ref int position, out int seconds)
    {
        seconds = 0;
        if (position >= data.Length || data[position] is not ((byte)'+' or (byte)'-'))
            return true;
        var negative = data[position++] == (byte)'-';
        if (!TryDigits(data, ref position, 2, out var hours))
            return false;
        int minutes = 0, rest = 0;
        if (position < data.Length && data[position] == (byte)':' && !(++position > 0 && TryDigits(data, ref position, 2, out minutes)))
            return false;
        if (position < data.Length && data[position] == (byte)':' && !(++position > 0 && TryDigits(data, ref position, 2, out rest)))
            return false;
        seconds = (hours * 60 + minutes) * 60 + rest;
        if (negative)
            seconds = -seconds;
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
    private static void FailDate(ReadOnlySpan<byte> data, in TupleValue owner)
        => owner.Fail($"'{Printable(data)}' is not an ISO date/time PostgreSQL writes");

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void FailInterval(ReadOnlySpan<byte> data, in TupleValue owner)
        => owner.Fail($"'{Printable(data)}' is not an ISO 8601 interval (IntervalStyle = iso_8601)");
}
