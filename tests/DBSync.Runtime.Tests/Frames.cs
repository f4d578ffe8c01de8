using System.Buffers.Binary;
using System.Text;
using DBSync.Mapping;
using DBSync.Protocol;

namespace DBSync.Runtime.Tests;

/// <summary>Builds pgoutput frames and single-value tuples by hand, for cases a server will not readily produce.</summary>
internal static class Frames
{
    public static byte[] Hex(string hex) => Convert.FromHexString(hex);

    public static IReadOnlyList<byte[]> Recorded(string file)
        => File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", file))
            .Where(l => l.Length > 0).Select(l => Hex(l.Split(' ')[1])).ToList();

    public sealed class Builder
    {
        private readonly List<byte> _bytes = [];

        public Builder(char kind) => _bytes.Add((byte)kind);

        public Builder Byte(byte value) { _bytes.Add(value); return this; }

        public Builder Int16(short value) { var b = new byte[2]; BinaryPrimitives.WriteInt16BigEndian(b, value); _bytes.AddRange(b); return this; }

        public Builder Int32(int value) { var b = new byte[4]; BinaryPrimitives.WriteInt32BigEndian(b, value); _bytes.AddRange(b); return this; }

        public Builder Int64(long value) { var b = new byte[8]; BinaryPrimitives.WriteInt64BigEndian(b, value); _bytes.AddRange(b); return this; }

        public Builder CString(string value) { _bytes.AddRange(Encoding.UTF8.GetBytes(value)); _bytes.Add(0); return this; }

        public Builder Bytes(byte[] value) { _bytes.AddRange(value); return this; }

        public byte[] ToArray() => [.. _bytes];
    }

    /// <summary>A numeric in numeric_send's format: digit count, weight, sign, display scale, base-10000 digits.</summary>
    public static byte[] Numeric(short weight, ushort sign, short scale, params short[] digits)
    {
        var b = new Builder('x').Int16((short)digits.Length).Int16(weight).Int16(unchecked((short)sign)).Int16(scale);
        foreach (var d in digits)
            b.Int16(d);
        return b.ToArray()[1..];
    }

    /// <summary>A one-column TupleData section: kind 't', 'b', 'n' or 'u' and the value bytes.</summary>
    public static byte[] Tuple(char kind, byte[]? value = null)
    {
        var b = new Builder('x').Int16(1).Byte((byte)kind);
        if (value is not null)
            b.Int32(value.Length).Bytes(value);
        return b.ToArray()[1..];
    }

    public delegate T ValueReader<out T>(TupleValue value);

    /// <summary>Decodes one value of PostgreSQL type <paramref name="oid"/> into a property of <paramref name="type"/>.</summary>
    public static T Read<T>(char format, byte[] value, uint oid, SyncColumnType type, ValueReader<T> read)
    {
        var binding = Binding(oid, type);
        var reader = new TupleReader(Tuple(format, value), binding, keyOnly: false);
        Assert.True(reader.TryReadNext(out var tupleValue));
        return read(tupleValue);
    }

    public static T ReadText<T>(string text, uint oid, SyncColumnType type, ValueReader<T> read)
        => Read('t', Encoding.UTF8.GetBytes(text), oid, type, read);

    public static ColumnBinding Binding(uint oid, SyncColumnType type, bool nullable = false, int rank = 0, bool elementNullable = false)
    {
        var table = new SyncTableInfo("public", "t", typeof(Frames),
            [new SyncColumnInfo("c", "C", type, nullable, 0) { ArrayRank = rank, ElementIsNullable = elementNullable }]);
        return ColumnBinding.Create(table, new RelationMessage(0, 16384, "public", "t", 'd', [new RelationColumn(true, "c", oid, -1)]));
    }

    /// <summary>Decodes one array value of PostgreSQL array type <paramref name="oid"/> into a property of <paramref name="rank"/>
    /// dimensions of <paramref name="type"/> elements.</summary>
    public static T Read<T>(char format, byte[] value, uint oid, SyncColumnType type, int rank, bool elementNullable, ValueReader<T> read)
    {
        var reader = new TupleReader(Tuple(format, value), Binding(oid, type, rank: rank, elementNullable: elementNullable), keyOnly: false);
        Assert.True(reader.TryReadNext(out var tupleValue));
        return read(tupleValue);
    }

    public readonly struct NullableString : IElementReader<string?>
    {
        public static string? Read(in TupleValue element) => element.IsNull ? null : element.ReadString();
    }

    public readonly struct NullableInt : IElementReader<int?>
    {
        public static int? Read(in TupleValue element) => element.IsNull ? null : element.ReadInt32();
    }

    public readonly struct Int : IElementReader<int>
    {
        public static int Read(in TupleValue element) => element.ReadInt32();
    }
}
