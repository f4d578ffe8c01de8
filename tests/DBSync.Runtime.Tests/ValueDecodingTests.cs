using System.Globalization;
using DBSync.Protocol;
using static DBSync.Runtime.Tests.Frames;

namespace DBSync.Runtime.Tests;

public sealed class ValueDecodingTests
{
    private static decimal BinaryNumeric(byte[] value) => Read('b', value, PgTypeOids.Numeric, SyncColumnType.Decimal, v => v.ReadDecimal());

    [Theory]
    [InlineData(0, 0x0000, 2, new short[] { 10, 5000 }, "10.50")]
    [InlineData(0, 0x4000, 2, new short[] { 1234, 5000 }, "-1234.50")]
    [InlineData(-1, 0x0000, 4, new short[] { 1 }, "0.0001")]
    [InlineData(0, 0x0000, 2, new short[0], "0.00")]
    [InlineData(2, 0x0000, 0, new short[] { 7 }, "700000000")]
    [InlineData(7, 0x0000, 0, new short[] { 7, 9228, 1625, 1426, 4337, 5935, 4395, 335 }, "79228162514264337593543950335")] // decimal.MaxValue
    [InlineData(-7, 0x0000, 28, new short[] { 1 }, "0.0000000000000000000000000001")]
    public void BinaryNumeric_DecodesExactlyWithItsDisplayScale(short weight, int sign, short scale, short[] digits, string expected)
        => Assert.Equal(expected, BinaryNumeric(Numeric(weight, (ushort)sign, scale, digits)).ToString(CultureInfo.InvariantCulture));

    [Theory]
    [InlineData(0xC000, "is NaN")]
    [InlineData(0xD000, "is Infinity")]
    [InlineData(0xF000, "is -Infinity")]
    public void BinaryNumeric_NaNAndInfinity_AreClearErrors(int sign, string expected)
    {
        var error = Assert.Throws<DecodeException>(() => BinaryNumeric(Numeric(0, (ushort)sign, 0)));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("Value of column \"c\" of public.t (numeric, binary format)", error.Message, StringComparison.Ordinal);
        Assert.Contains("property Frames.C is decimal", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(7, new short[] { 100 })]                 // 1e30
    [InlineData(-8, new short[] { 1 })]                  // 1e-32: more than 28 decimal places
    [InlineData(7, new short[] { 7, 9228, 1625, 1426, 4337, 5935, 4395, 336 })] // decimal.MaxValue + 1
    public void BinaryNumeric_OutsideDecimal_IsAnErrorNotARoundedValue(short weight, short[] digits)
    {
        var error = Assert.Throws<DecodeException>(() => BinaryNumeric(Numeric(weight, 0, weight < 0 ? (short)(-4 * weight) : (short)0, digits)));
        Assert.Contains("outside the range", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("10.50", "10.50")]
    [InlineData("-0.001", "-0.001")]
    [InlineData("123456789012345678.000000001", "123456789012345678.000000001")]
    public void TextNumeric_KeepsScale(string text, string expected)
        => Assert.Equal(expected, ReadText(text, PgTypeOids.Numeric, SyncColumnType.Decimal, v => v.ReadDecimal()).ToString(CultureInfo.InvariantCulture));

    [Theory]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("-Infinity")]
    [InlineData("1e40")]
    public void TextNumeric_NaNInfinityAndOverflow_AreClearErrors(string text)
        => Assert.Throws<DecodeException>(() => ReadText(text, PgTypeOids.Numeric, SyncColumnType.Decimal, v => v.ReadDecimal()));

    [Fact]
    public void Integers_WidenFromNarrowerColumns()
    {
        Assert.Equal(-5L, Read('b', new Builder('x').Int16(-5).ToArray()[1..], PgTypeOids.Int2, SyncColumnType.Int64, v => v.ReadInt64()));
        Assert.Equal(70000L, Read('b', new Builder('x').Int32(70000).ToArray()[1..], PgTypeOids.Int4, SyncColumnType.Int64, v => v.ReadInt64()));
        Assert.Equal(-5, Read('b', new Builder('x').Int16(-5).ToArray()[1..], PgTypeOids.Int2, SyncColumnType.Int32, v => v.ReadInt32()));
        Assert.Equal(70000m, Read('b', new Builder('x').Int32(70000).ToArray()[1..], PgTypeOids.Int4, SyncColumnType.Decimal, v => v.ReadDecimal()));
        Assert.Equal(long.MinValue, ReadText("-9223372036854775808", PgTypeOids.Int8, SyncColumnType.Int64, v => v.ReadInt64()));
        Assert.Throws<DecodeException>(() => ReadText("70000", PgTypeOids.Int2, SyncColumnType.Int16, v => v.ReadInt16()));
    }

    [Fact]
    public void BinaryValue_OfTheWrongSize_IsAnError()
        => Assert.Contains("has 2 bytes where the binary format has 4",
            Assert.Throws<DecodeException>(() => Read('b', [0, 1], PgTypeOids.Int4, SyncColumnType.Int32, v => v.ReadInt32())).Message, StringComparison.Ordinal);

    [Theory]
    [InlineData(int.MaxValue, "is infinity, which DateOnly cannot hold")]
    [InlineData(int.MinValue, "is -infinity, which DateOnly cannot hold")]
    [InlineData(3_000_000, "which DateOnly cannot hold")]
    public void BinaryDate_InfinityAndOutOfRange_AreClearErrors(int days, string expected)
        => Assert.Contains(expected, Assert.Throws<DecodeException>(() =>
            Read('b', new Builder('x').Int32(days).ToArray()[1..], PgTypeOids.Date, SyncColumnType.DateOnly, v => v.ReadDateOnly())).Message, StringComparison.Ordinal);

    [Fact]
    public void BinaryDateAndTimestamps_DecodeToTheMicrosecond()
    {
        Assert.Equal(new DateOnly(1999, 12, 31), Read('b', new Builder('x').Int32(-1).ToArray()[1..], PgTypeOids.Date, SyncColumnType.DateOnly, v => v.ReadDateOnly()));
        var stamp = Read('b', new Builder('x').Int64(1).ToArray()[1..], PgTypeOids.Timestamp, SyncColumnType.DateTime, v => v.ReadDateTime());
        Assert.Equal((new DateTime(2000, 1, 1).AddTicks(10), DateTimeKind.Unspecified), (stamp, stamp.Kind));
        var utc = Read('b', new Builder('x').Int64(-1).ToArray()[1..], PgTypeOids.TimestampTz, SyncColumnType.DateTime, v => v.ReadDateTime());
        Assert.Equal((new DateTime(1999, 12, 31, 23, 59, 59, DateTimeKind.Utc).AddTicks(9_999_990), DateTimeKind.Utc), (utc, utc.Kind));
        Assert.Throws<DecodeException>(() => Read('b', new Builder('x').Int64(long.MaxValue).ToArray()[1..], PgTypeOids.Timestamp, SyncColumnType.DateTime, v => v.ReadDateTime()));
    }

    [Theory]
    [InlineData("2024-06-01 12:34:56.789012+02", "2024-06-01T10:34:56.7890120+00:00")]
    [InlineData("2024-06-01 12:34:56+05:30", "2024-06-01T07:04:56.0000000+00:00")]
    [InlineData("1970-01-01 00:00:00-08", "1970-01-01T08:00:00.0000000+00:00")]
    [InlineData("2024-06-01 12:34:56.5+00:00:30", "2024-06-01T12:34:26.5000000+00:00")]
    public void TextTimestampTz_AppliesTheOffset(string text, string expected)
        => Assert.Equal(expected, ReadText(text, PgTypeOids.TimestampTz, SyncColumnType.DateTimeOffset, v => v.ReadDateTimeOffset()).ToString("o", CultureInfo.InvariantCulture));

    [Theory]
    [InlineData("0044-03-15 BC")]
    [InlineData("infinity")]
    [InlineData("10000-01-01")]
    [InlineData("2023-02-29")]
    public void TextDate_Unrepresentable_IsAnError(string text)
        => Assert.Throws<DecodeException>(() => ReadText(text, PgTypeOids.Date, SyncColumnType.DateOnly, v => v.ReadDateOnly()));

    [Fact]
    public void Uuid_DecodesInBothFormats()
    {
        var guid = Guid.Parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        Assert.Equal(guid, Read('b', guid.ToByteArray(bigEndian: true), PgTypeOids.Uuid, SyncColumnType.Guid, v => v.ReadGuid()));
        Assert.Equal(guid, ReadText("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", PgTypeOids.Uuid, SyncColumnType.Guid, v => v.ReadGuid()));
    }

    [Fact]
    public void Strings_DecodeUtf8BeyondTheBasicPlane_AndRejectInvalidUtf8()
    {
        Assert.Equal("𝄞 héllo", ReadText("𝄞 héllo", PgTypeOids.Text, SyncColumnType.String, v => v.ReadString()));
        Assert.Contains("not valid UTF-8", Assert.Throws<DecodeException>(() =>
            Read('t', [0xff, 0xfe], PgTypeOids.Text, SyncColumnType.String, v => v.ReadString())).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{}", new string[0])]
    [InlineData("{a,b}", new[] { "a", "b" })]
    [InlineData("{\"c d\",NULL,null,\"NULL\",\"\"}", new[] { "c d", null, null, "NULL", "" })]
    [InlineData("{\"q\\\"x\",\"back\\\\slash\",\"a,b\",\"{}\"}", new[] { "q\"x", "back\\slash", "a,b", "{}" })]
    [InlineData("[0:1]={x,y}", new[] { "x", "y" })]
    public void TextArray_ParsesQuotingEscapesAndNulls(string text, string?[] expected)
        => Assert.Equal(expected, TextArray(text));

    private static string?[] TextArray(string text)
        => Read('t', System.Text.Encoding.UTF8.GetBytes(text), PgTypeOids.TextArray, SyncColumnType.String, 1, true, v => v.ReadArray<string?, NullableString>());

    [Theory]
    [InlineData("{{a,b},{c,d}}", "2-dimensional array")]
    [InlineData("{a,b", "ends early")]
    [InlineData("{\"a}", "ends early")]
    [InlineData("a,b", "does not start with '{'")]
    [InlineData("{{a,b},{c}}", "not rectangular")]
    [InlineData("{{a,b},c}", "not rectangular")]
    [InlineData("{a}x", "after its closing")]
    public void TextArray_Malformed_IsAnError(string text, string expected)
        => Assert.Contains(expected, Assert.Throws<DecodeException>(() => TextArray(text)).Message, StringComparison.Ordinal);

    [Fact]
    public void BinaryArray_WithNullsEmptyAndTwoDimensions()
    {
        var oneDim = new Builder('x').Int32(1).Int32(1).Int32((int)PgTypeOids.Text).Int32(3).Int32(1)
            .Int32(1).Bytes("a"u8.ToArray()).Int32(-1).Int32(0).ToArray()[1..];
        Assert.Equal(new string?[] { "a", null, "" }, BinaryArray(oneDim));

        var empty = new Builder('x').Int32(0).Int32(0).Int32((int)PgTypeOids.Text).ToArray()[1..];
        Assert.Empty(BinaryArray(empty));

        var twoDim = new Builder('x').Int32(2).Int32(0).Int32((int)PgTypeOids.Text).Int32(1).Int32(1).Int32(1).Int32(1).Int32(1).Bytes("a"u8.ToArray()).ToArray()[1..];
        Assert.Contains("2-dimensional array", Assert.Throws<DecodeException>(() => BinaryArray(twoDim)).Message, StringComparison.Ordinal);

        static string?[] BinaryArray(byte[] value)
            => Read('b', value, PgTypeOids.TextArray, SyncColumnType.String, 1, true, v => v.ReadArray<string?, NullableString>());
    }

    [Fact]
    public void Booleans_DecodeInBothFormats()
    {
        Assert.True(Read('b', [1], PgTypeOids.Bool, SyncColumnType.Boolean, v => v.ReadBoolean()));
        Assert.False(ReadText("f", PgTypeOids.Bool, SyncColumnType.Boolean, v => v.ReadBoolean()));
        Assert.Throws<DecodeException>(() => ReadText("yes", PgTypeOids.Bool, SyncColumnType.Boolean, v => v.ReadBoolean()));
    }
}
