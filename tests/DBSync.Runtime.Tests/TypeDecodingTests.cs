using System.Globalization;
using System.Net;
using DBSync.Protocol;
using static DBSync.Runtime.Tests.Frames;

namespace DBSync.Runtime.Tests;

/// <summary>Decoders of the types beyond the seed's, on hand-built values: both formats must agree, to the bit.</summary>
public sealed class TypeDecodingTests
{
    [Theory]
    [InlineData(0, 0x0000, 2, new short[] { 10, 5000 }, "10.50")]
    [InlineData(0, 0x4000, 0, new short[] { 7 }, "-7")]
    [InlineData(-1, 0x0000, 5, new short[] { 1 }, "0.00010")]
    [InlineData(-10, 0x4000, 40, new short[] { 1 }, "-0.0000000000000000000000000000000000000001")]
    [InlineData(10, 0x0000, 0, new short[] { 1 }, "10000000000000000000000000000000000000000")]
    [InlineData(1, 0x0000, 3, new short[] { 12, 3456, 7800 }, "123456.780")]
    [InlineData(0, 0xC000, 0, new short[0], "NaN")]
    [InlineData(0, 0xD000, 0, new short[0], "Infinity")]
    [InlineData(0, 0xF000, 0, new short[0], "-Infinity")]
    public void BinaryNumeric_AsString_IsPostgresText(short weight, int sign, short scale, short[] digits, string expected)
        => Assert.Equal(expected, Read('b', Numeric(weight, (ushort)sign, scale, digits), PgTypeOids.Numeric, SyncColumnType.String, v => v.ReadString()));

    [Theory]
    [InlineData("0.00000000000000000000000000001")] // 29 places: decimal.Parse would round it to 0
    [InlineData("79228162514264337593543950336")]
    public void TextNumeric_DecimalCannotHoldExactly_IsAnErrorNotARoundedValue(string text)
        => Assert.Contains("outside the range or precision of decimal", Assert.Throws<DecodeException>(() =>
            ReadText(text, PgTypeOids.Numeric, SyncColumnType.Decimal, v => v.ReadDecimal())).Message, StringComparison.Ordinal);

    [Fact]
    public void Floats_NaNInText_HasTheBitsOfPostgresBinaryNaN()
    {
        var binary = Read('b', new Builder('x').Int64(0x7FF8000000000000).ToArray()[1..], PgTypeOids.Float8, SyncColumnType.Double, v => v.ReadDouble());
        var text = ReadText("NaN", PgTypeOids.Float8, SyncColumnType.Double, v => v.ReadDouble());
        Assert.Equal(BitConverter.DoubleToInt64Bits(binary), BitConverter.DoubleToInt64Bits(text));
        Assert.Equal(1.1f, ReadText("1.1", PgTypeOids.Float4, SyncColumnType.Double, v => v.ReadDouble())); // widened from the real, not parsed as a double
    }

    [Theory]
    [InlineData("P1Y2M3DT4H5M6.789S", 14, 3, 14_706_789_000L)]
    [InlineData("P-1Y-2M3DT-4H-5M-6.5S", -14, 3, -14_706_500_000L)]
    [InlineData("PT0S", 0, 0, 0L)]
    [InlineData("PT-0.000001S", 0, 0, -1L)]
    [InlineData("P1M-1D", 1, -1, 0L)]
    [InlineData("PT2562047788H54.775807S", 0, 0, long.MaxValue)]
    public void TextInterval_Iso8601_KeepsMonthsDaysAndMicroseconds(string text, int months, int days, long microseconds)
        => Assert.Equal(new PgInterval(months, days, microseconds), ReadText(text, PgTypeOids.Interval, SyncColumnType.PgInterval, v => v.ReadPgInterval()));

    [Theory]
    [InlineData("0044-03-15 BC", -746117)]
    [InlineData("5874897-12-31", 2145031948)]
    [InlineData("infinity", int.MaxValue)]
    [InlineData("-infinity", int.MinValue)]
    public void TextDate_BeyondDateOnly_IsExactAsPgDate(string text, int days)
        => Assert.Equal(new PgDate(days), ReadText(text, PgTypeOids.Date, SyncColumnType.PgDate, v => v.ReadPgDate()));

    [Fact]
    public void PgDate_FormatsAndParsesBack()
    {
        foreach (var days in new[] { -2451507, -746117, -730485, -1, 0, 2145031948 })
        {
            var date = new PgDate(days);
            Assert.Equal(date, ReadText(date.ToString(), PgTypeOids.Date, SyncColumnType.PgDate, v => v.ReadPgDate()));
        }
    }

    [Theory]
    [InlineData("12:34:56.789+05:30", "12:34:56.789", "05:30:00")]
    [InlineData("00:00:00-15:59:59", "00:00:00", "-15:59:59")]
    [InlineData("24:00:00+00", "1.00:00:00", "00:00:00")]
    public void TimeTz_BothFormats(string text, string time, string offset)
    {
        var expected = new PgTimeTz(TimeSpan.Parse(time, CultureInfo.InvariantCulture), TimeSpan.Parse(offset, CultureInfo.InvariantCulture));
        Assert.Equal(expected, ReadText(text, PgTypeOids.TimeTz, SyncColumnType.PgTimeTz, v => v.ReadPgTimeTz()));
        var binary = new Builder('x').Int64(expected.TimeOfDay.Ticks / 10).Int32(-(int)expected.Offset.TotalSeconds).ToArray()[1..];
        Assert.Equal(expected, Read('b', binary, PgTypeOids.TimeTz, SyncColumnType.PgTimeTz, v => v.ReadPgTimeTz()));
    }

    [Fact]
    public void Inet_BothFormats_AndANetworkIsNoAddress()
    {
        Assert.Equal(IPAddress.Parse("192.168.0.1"), ReadText("192.168.0.1", PgTypeOids.Inet, SyncColumnType.IPAddress, v => v.ReadIPAddress()));
        Assert.Equal(IPAddress.Parse("::1"), Read('b', [3, 128, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], PgTypeOids.Inet, SyncColumnType.IPAddress, v => v.ReadIPAddress()));
        Assert.Equal(IPNetwork.Parse("10.0.0.0/8"), Read('b', [2, 8, 1, 4, 10, 0, 0, 0], PgTypeOids.Cidr, SyncColumnType.IPNetwork, v => v.ReadIPNetwork()));
        Assert.Contains("is 10.0.0.0/8, a network, which IPAddress cannot hold. Map the column to System.Net.IPNetwork, or to DBSync.PgInet", Assert.Throws<DecodeException>(() =>
            ReadText("10.0.0.0/8", PgTypeOids.Cidr, SyncColumnType.IPAddress, v => v.ReadIPAddress())).Message, StringComparison.Ordinal);
        Assert.Contains("bits set right of its mask, which IPNetwork cannot hold. Map the column to DBSync.PgInet", Assert.Throws<DecodeException>(() =>
            ReadText("192.168.0.1/24", PgTypeOids.Inet, SyncColumnType.IPNetwork, v => v.ReadIPNetwork())).Message, StringComparison.Ordinal);
        Assert.Equal(new PgInet(IPAddress.Parse("192.168.0.1"), 24), Read('b', [2, 24, 0, 4, 192, 168, 0, 1], PgTypeOids.Inet, SyncColumnType.PgInet, v => v.ReadPgInet()));
    }

    [Theory]
    [InlineData("$0.00", "0.00")]
    [InlineData("-$92,233,720,368,547,758.08", "-92233720368547758.08")]
    [InlineData("$1,234.50", "1234.50")]
    public void TextMoney_CLocale_IsExactDecimal(string text, string expected)
        => Assert.Equal(expected, ReadText(text, PgTypeOids.Money, SyncColumnType.Decimal, v => v.ReadDecimal()).ToString(CultureInfo.InvariantCulture));

    [Fact]
    public void Bytea_HexText_AndMalformedHex()
    {
        Assert.Equal(new byte[] { 0x00, 0xff, 0x7f }, ReadText("\\x00ff7F", PgTypeOids.Bytea, SyncColumnType.Bytes, v => v.ReadBytes()));
        Assert.Empty(ReadText("\\x", PgTypeOids.Bytea, SyncColumnType.Bytes, v => v.ReadBytes()));
        Assert.Contains("not a hex digit", Assert.Throws<DecodeException>(() => ReadText("\\x0g", PgTypeOids.Bytea, SyncColumnType.Bytes, v => v.ReadBytes())).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Enum_FromLabelsOfAnEnumOrText_AndAnUnknownLabelNamesTheFix()
    {
        var labels = new PgEnumLabels<Feeling>(["happy", "sad"], [Feeling.Happy, Feeling.Sad]);
        Assert.Equal(Feeling.Sad, Read('b', "sad"u8.ToArray(), PgTypeOids.AnyEnum, SyncColumnType.Enum, v => v.ReadEnum(labels)));
        Assert.Equal(Feeling.Happy, ReadText("happy", PgTypeOids.Text, SyncColumnType.Enum, v => v.ReadEnum(labels)));
        var error = Assert.Throws<DecodeException>(() => ReadText("Happy", PgTypeOids.Varchar, SyncColumnType.Enum, v => v.ReadEnum(labels)));
        Assert.Contains("'Happy' is not a label of Feeling (labels: happy, sad). Add a member for it, with [PgLabel(\"Happy\")] when its name differs", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MultiDimensionalArrays_BothFormats_RowMajor()
    {
        var text = Read('t', "{{1,NULL,3},{4,5,6}}"u8.ToArray(), 1007, SyncColumnType.Int32, 2, true, v => v.ReadArray<int?[,], int?, NullableInt>(2));
        var binary = new Builder('x').Int32(2).Int32(1).Int32(23).Int32(2).Int32(1).Int32(3).Int32(1);
        foreach (var e in new int?[] { 1, null, 3, 4, 5, 6 })
            _ = e is null ? binary.Int32(-1) : binary.Int32(4).Int32(e.Value);
        var fromBinary = Read('b', binary.ToArray()[1..], 1007, SyncColumnType.Int32, 2, true, v => v.ReadArray<int?[,], int?, NullableInt>(2));
        Assert.Equal(new int?[,] { { 1, null, 3 }, { 4, 5, 6 } }, text);
        Assert.Equal(text, fromBinary);
        Assert.Equal(new int?[0, 0], Read('t', "{}"u8.ToArray(), 1007, SyncColumnType.Int32, 2, true, v => v.ReadArray<int?[,], int?, NullableInt>(2)));
        Assert.Contains("is a 1-dimensional array, which a 2-dimensional property cannot hold", Assert.Throws<DecodeException>(() =>
            Read('t', "{1,2}"u8.ToArray(), 1007, SyncColumnType.Int32, 2, true, v => v.ReadArray<int?[,], int?, NullableInt>(2))).Message, StringComparison.Ordinal);
        Assert.Contains("Element 2 of the array in column \"c\" of public.t is NULL", Assert.Throws<DecodeException>(() =>
            Read('t', "{1,NULL}"u8.ToArray(), 1007, SyncColumnType.Int32, 1, false, v => v.ReadArray<int, Int>())).Message, StringComparison.Ordinal);
    }
}
