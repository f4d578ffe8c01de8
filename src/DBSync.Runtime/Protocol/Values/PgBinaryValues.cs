using System.Buffers.Binary;
using System.Text;

namespace DBSync.Protocol;

/// <summary>Decoders for PostgreSQL's binary send formats (numeric_send, date_send, timestamp_send, array_send).</summary>
internal static class PgBinaryValues
{
    private const ushort NumericPositive = 0x0000;
    private const ushort NumericNegative = 0x4000;
    private const ushort NumericNaN = 0xC000;
    private const ushort NumericPositiveInfinity = 0xD000;
    private const ushort NumericNegativeInfinity = 0xF000;
    private const int PostgresEpochDayNumber = 730119; // new DateOnly(2000, 1, 1).DayNumber
    private static readonly UInt128 s_decimalMax = (UInt128.One << 96) - 1;

    /// <summary>
    /// numeric: Int16 ndigits, Int16 weight (of the first base-10000 digit), UInt16 sign, Int16 display scale, then the
    /// digits. The result keeps the display scale (10.50 stays 10.50); values decimal cannot hold exactly are an error.
    /// </summary>
    public static decimal ReadNumeric(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.Length < 8)
            owner.Fail($"is a truncated numeric ({data.Length} bytes)");
        int digitCount = BinaryPrimitives.ReadInt16BigEndian(data);
        int weight = BinaryPrimitives.ReadInt16BigEndian(data[2..]);
        var sign = BinaryPrimitives.ReadUInt16BigEndian(data[4..]);
        int displayScale = BinaryPrimitives.ReadInt16BigEndian(data[6..]);
        switch (sign)
        {
            case NumericNaN:
                owner.Fail("is NaN, which decimal cannot hold (map the column to string, or keep NaN out of it)");
                break;
            case NumericPositiveInfinity or NumericNegativeInfinity:
                owner.Fail($"is {(sign == NumericPositiveInfinity ? "Infinity" : "-Infinity")}, which decimal cannot hold (map the column to string, or keep infinities out of it)");
                break;
            case not (NumericPositive or NumericNegative):
                owner.Fail($"has an unknown numeric sign 0x{sign:x4}");
                break;
        }
        if (data.Length != 8 + 2 * digitCount)
            owner.Fail($"is a numeric of {data.Length} bytes with {digitCount} digits");

        UInt128 mantissa = 0;
        var scale = 0;
        try
        {
            for (var i = 0; i < digitCount; i++)
                mantissa = checked(mantissa * 10000 + BinaryPrimitives.ReadUInt16BigEndian(data[(8 + 2 * i)..]));

            // value = mantissa * 10000^(weight - digitCount + 1)
            var exponent = 4 * (weight - digitCount + 1);
            if (exponent >= 0)
            {
                for (var i = 0; i < exponent; i++)
                    mantissa = checked(mantissa * 10);
            }
            else
            {
                scale = -exponent;
            }

            // Trailing zeros of the last base-10000 digit are not part of the display scale.
            while (scale > displayScale && mantissa % 10 == 0)
            {
                mantissa /= 10;
                scale--;
            }
            while (scale < displayScale)
            {
                mantissa = checked(mantissa * 10);
                scale++;
            }
        }
        catch (OverflowException e)
        {
            owner.Fail("is outside the range of decimal (about ±7.9e28 with up to 28 decimal places)", e);
        }

        if (mantissa > s_decimalMax || scale > 28)
            owner.Fail("is outside the range or precision of decimal (about ±7.9e28 with up to 28 decimal places)");
        return new decimal((int)(uint)mantissa, (int)(uint)(mantissa >> 32), (int)(uint)(mantissa >> 64), sign == NumericNegative, (byte)scale);
    }

    /// <summary>date: days since 2000-01-01; int.MaxValue and int.MinValue are ±infinity.</summary>
    public static DateOnly ReadDate(int days, in TupleValue owner)
    {
        if (days is int.MaxValue or int.MinValue)
            owner.Fail($"is {(days == int.MaxValue ? "infinity" : "-infinity")}, which DateOnly cannot hold");
        var dayNumber = (long)PostgresEpochDayNumber + days;
        if (dayNumber < DateOnly.MinValue.DayNumber || dayNumber > DateOnly.MaxValue.DayNumber)
            owner.Fail("is outside DateOnly's range (0001-01-01 to 9999-12-31)");
        return DateOnly.FromDayNumber((int)dayNumber);
    }

    /// <summary>timestamp/timestamptz: microseconds since 2000-01-01 00:00 (UTC for timestamptz); long extremes are ±infinity.</summary>
    public static DateTime ReadTimestamp(long microseconds, DateTimeKind kind, in TupleValue owner)
    {
        if (microseconds is long.MaxValue or long.MinValue)
            owner.Fail($"is {(microseconds == long.MaxValue ? "infinity" : "-infinity")}, which DateTime cannot hold");
        const long epochTicks = 630822816000000000; // new DateTime(2000, 1, 1).Ticks
        var ticks = (Int128)microseconds * TimeSpan.TicksPerMicrosecond + epochTicks;
        if (ticks < DateTime.MinValue.Ticks || ticks > DateTime.MaxValue.Ticks)
            owner.Fail("is outside DateTime's range (years 1 to 9999)");
        return new DateTime((long)ticks, kind);
    }

    /// <summary>array_send: Int32 ndim, Int32 has-null flag, element oid, (size, lower bound) per dimension, then
    /// each element as Int32 length (-1 for NULL) and bytes.</summary>
    public static string[] ReadStringArray(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.Length < 12)
            owner.Fail($"is a truncated array ({data.Length} bytes)");
        var dimensions = BinaryPrimitives.ReadInt32BigEndian(data);
        if (dimensions == 0)
            return [];
        if (dimensions != 1)
            owner.Fail($"is a {dimensions}-dimensional array; string[] holds one dimension (use a one-dimensional column)");
        if (data.Length < 20)
            owner.Fail($"is a truncated array ({data.Length} bytes)");
        var count = BinaryPrimitives.ReadInt32BigEndian(data[12..]);
        if (count < 0)
            owner.Fail($"declares {count} elements");
        var result = new string[count];
        var position = 20;
        for (var i = 0; i < count; i++)
        {
            if (data.Length - position < 4)
                owner.Fail($"is a truncated array (element {i})");
            var length = BinaryPrimitives.ReadInt32BigEndian(data[position..]);
            position += 4;
            if (length == -1)
            {
                result[i] = null!;
                continue;
            }
            if (length < 0 || data.Length - position < length)
                owner.Fail($"is a truncated array (element {i} of {length} bytes)");
            result[i] = Encoding.UTF8.GetString(data.Slice(position, length));
            position += length;
        }
        return result;
    }
}
