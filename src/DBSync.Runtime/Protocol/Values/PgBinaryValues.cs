using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;

namespace DBSync.Protocol;

/// <summary>Decoders for PostgreSQL's binary send formats that take more than a fixed-size read (numeric_send, cash_send,
/// jsonb_send, inet_send); the fixed-size ones are read in <see cref="TupleValue"/>, arrays in <see cref="PgArrays"/>.</summary>
internal static class PgBinaryValues
{
    private const ushort NumericPositive = 0x0000;
    private const ushort NumericNegative = 0x4000;
    private const ushort NumericNaN = 0xC000;
    private const ushort NumericPositiveInfinity = 0xD000;
    private const ushort NumericNegativeInfinity = 0xF000;
    private static readonly UInt128 s_decimalMax = (UInt128.One << 96) - 1;

    /// <summary>The end of the message for a numeric that decimal cannot hold exactly.</summary>
    public const string OutsideDecimal = "outside the range or precision of decimal (about ±7.9e28, at most 28 decimal places). " +
        "Map the column to string, which holds every numeric exactly, or keep such values out of it";

    /// <summary>numeric: the header, then the base-10000 digits. The result keeps the display scale (10.50 stays 10.50);
    /// values decimal cannot hold exactly are an error.</summary>
    public static decimal ReadNumeric(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        var (digitCount, weight, sign, displayScale) = NumericHeader(data, owner);
        if (sign is not (NumericPositive or NumericNegative))
            owner.Fail($"is {NumericText(data, owner)}, which decimal cannot hold. Map the column to string, which holds NaN and infinities, or keep such values out of it");

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
            owner.Fail($"is {NumericText(data, owner)}, {OutsideDecimal}", e);
        }

        if (mantissa > s_decimalMax || scale > 28)
            owner.Fail($"is {NumericText(data, owner)}, {OutsideDecimal}");
        return new decimal((int)(uint)mantissa, (int)(uint)(mantissa >> 32), (int)(uint)(mantissa >> 64), sign == NumericNegative, (byte)scale);
    }

    /// <summary>numeric as PostgreSQL's numeric_out writes it: <c>-1234.50</c>, <c>NaN</c>, <c>Infinity</c>, <c>-Infinity</c>.</summary>
    public static string NumericText(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        var (digitCount, weight, sign, displayScale) = NumericHeader(data, owner);
        switch (sign)
        {
            case NumericNaN:
                return "NaN";
            case NumericPositiveInfinity:
                return "Infinity";
            case NumericNegativeInfinity:
                return "-Infinity";
        }

        static int Digit(ReadOnlySpan<byte> data, int count, int index) => index >= 0 && index < count ? BinaryPrimitives.ReadUInt16BigEndian(data[(8 + 2 * index)..]) : 0;
        var text = new StringBuilder(sign == NumericNegative ? "-" : "");
        if (weight < 0)
        {
            text.Append('0');
        }
        else
        {
            // The first base-10000 digit without leading zeros, the others with all four decimal digits.
            text.Append(Digit(data, digitCount, 0).ToString(CultureInfo.InvariantCulture));
            for (var i = 1; i <= weight; i++)
                text.Append(Digit(data, digitCount, i).ToString("0000", CultureInfo.InvariantCulture));
        }
        if (displayScale > 0)
        {
            text.Append('.');
            var fraction = new StringBuilder();
            for (var i = weight + 1; fraction.Length < displayScale; i++)
                fraction.Append(Digit(data, digitCount, i).ToString("0000", CultureInfo.InvariantCulture));
            text.Append(fraction.ToString(0, displayScale));
        }
        return text.ToString();
    }

    /// <summary>numeric_send's header (Int16 ndigits, Int16 weight of the first base-10000 digit, UInt16 sign, Int16 display
    /// scale), checked: a known sign, and for a number as many digits as the length says.</summary>
    private static (int DigitCount, int Weight, ushort Sign, int DisplayScale) NumericHeader(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.Length < 8)
            owner.Fail($"is a truncated numeric ({data.Length} bytes)");
        int digitCount = BinaryPrimitives.ReadInt16BigEndian(data);
        var sign = BinaryPrimitives.ReadUInt16BigEndian(data[4..]);
        if (sign is not (NumericPositive or NumericNegative or NumericNaN or NumericPositiveInfinity or NumericNegativeInfinity))
            owner.Fail($"has an unknown numeric sign 0x{sign:x4}");
        if (sign is NumericPositive or NumericNegative && data.Length != 8 + 2 * digitCount)
            owner.Fail($"is a numeric of {data.Length} bytes with {digitCount} digits");
        return (digitCount, BinaryPrimitives.ReadInt16BigEndian(data[2..]), sign, BinaryPrimitives.ReadInt16BigEndian(data[6..]));
    }

    /// <summary>money: an Int64 count of cents (DBSync's sessions set lc_monetary = C, which has two decimal places).</summary>
    public static decimal ReadMoney(long cents)
    {
        var magnitude = cents < 0 ? (ulong)-(cents + 1) + 1 : (ulong)cents;
        return new decimal((int)(uint)magnitude, (int)(uint)(magnitude >> 32), 0, cents < 0, 2);
    }

    /// <summary>jsonb_send: a version byte (1), then the JSON text.</summary>
    public static ReadOnlySpan<byte> JsonbText(ReadOnlySpan<byte> data, scoped in TupleValue owner)
    {
        if (data.IsEmpty || data[0] != 1)
            owner.Fail($"is jsonb of an unknown binary version {(data.IsEmpty ? "(empty)" : data[0].ToString(CultureInfo.InvariantCulture))}");
        return data[1..];
    }

    /// <summary>inet_send/cidr_send: family (2 IPv4, 3 IPv6), mask bits, is-cidr flag, address length, address bytes.</summary>
    public static (IPAddress Address, int Bits) ReadInet(ReadOnlySpan<byte> data, in TupleValue owner)
    {
        if (data.Length < 4 || data[0] is not (2 or 3) || data[3] != (data[0] == 2 ? 4 : 16) || data.Length != 4 + data[3] || data[1] > data[3] * 8)
            owner.Fail($"is a malformed inet/cidr ({data.Length} bytes)");
        return (new IPAddress(data[4..]), data[1]);
    }
}
