using System.Buffers.Binary;
using System.Text;
using DBSync.Mapping;
using DBSync.Protocol;

namespace DBSync.Runtime.Tests;

/// <summary>Builds pgoutput frames and single-value tuples by hand, for cases a server will not readily produce.</summary>
internal static class Frames
{
    public static byte[] Hex(string hex) => Convert.FromHexString(hex);

    public static IReadOnlyList<byte[]> Recorded(string file) => RecordedWithPositions(file).Select(f => f.Frame).ToList();

    /// <summary>The frames of a recording with the WAL position each was sent at.</summary>
    public static IReadOnlyList<(ulong Lsn, byte[] Frame)> RecordedWithPositions(string file)
        => File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", file))
            .Where(l => l.Length > 0).Select(l => l.Split(' ')).Select(p => ((ulong)NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(p[0]), Hex(p[1]))).ToList();

    // Hand-built transaction messages (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html);
    // a frame of a streamed transaction carries its (sub)transaction id after the kind byte.

    /// <summary>Every hand-built transaction's commit time: 2024-01-02 03:04:05 UTC, in microseconds since 2000-01-01.</summary>
    public const long CommitMicros = 757_479_845_000_000;

    public static byte[] Begin(uint xid, ulong finalLsn) => new Builder('B').Int64((long)finalLsn).Int64(CommitMicros).Int32((int)xid).ToArray();

    public static byte[] Commit(ulong commitLsn, ulong endLsn) => new Builder('C').Byte(0).Int64((long)commitLsn).Int64((long)endLsn).Int64(CommitMicros).ToArray();

    public static byte[] StreamStart(uint xid, bool first) => new Builder('S').Int32((int)xid).Byte(first ? (byte)1 : (byte)0).ToArray();

    public static byte[] StreamStop() => new Builder('E').ToArray();

    public static byte[] StreamCommit(uint xid, ulong commitLsn, ulong endLsn)
        => new Builder('c').Int32((int)xid).Byte(0).Int64((long)commitLsn).Int64((long)endLsn).Int64(CommitMicros).ToArray();

    public static byte[] StreamAbort(uint xid, uint subXid) => new Builder('A').Int32((int)xid).Int32((int)subXid).ToArray();

    /// <summary>A Relation message; <paramref name="xid"/> only inside a streamed transaction.</summary>
    public static byte[] Relation(uint? xid, uint relationId, string schema, string name, params (string Name, uint TypeOid, bool IsKey)[] columns)
    {
        var b = new Builder('R');
        if (xid is { } inStream)
            b.Int32((int)inStream);
        b.Int32((int)relationId).CString(schema).CString(name).Byte((byte)'d').Int16((short)columns.Length);
        foreach (var (column, typeOid, isKey) in columns)
            b.Byte(isKey ? (byte)1 : (byte)0).CString(column).Int32((int)typeOid).Int32(-1);
        return b.ToArray();
    }

    /// <summary>An Insert of text-format values (null for NULL); <paramref name="xid"/> only inside a streamed transaction.</summary>
    public static byte[] Insert(uint? xid, uint relationId, params string?[] values)
    {
        var b = new Builder('I');
        if (xid is { } inStream)
            b.Int32((int)inStream);
        b.Int32((int)relationId).Byte((byte)'N').Int16((short)values.Length);
        foreach (var value in values)
        {
            if (value is null)
            {
                b.Byte((byte)'n');
                continue;
            }
            var bytes = Encoding.UTF8.GetBytes(value);
            b.Byte((byte)'t').Int32(bytes.Length).Bytes(bytes);
        }
        return b.ToArray();
    }

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
