using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace DBSync.Protocol;

/// <summary>
/// Decodes pgoutput messages (one XLogData payload each, starting with the kind byte). Pure: bytes in, values out.
/// Every malformed or truncated frame becomes a <see cref="ProtocolException"/> naming the message and offset.
/// </summary>
internal static class PgOutputParser
{
    private static readonly DateTime s_postgresEpoch = new(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    // The transaction times a DateTime can hold, in microseconds since PostgreSQL's epoch; a server's clock is far inside.
    private static readonly long s_minMicroseconds = (DateTime.MinValue - s_postgresEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
    private static readonly long s_maxMicroseconds = (DateTime.MaxValue - s_postgresEpoch).Ticks / TimeSpan.TicksPerMicrosecond;

    public static PgOutputMessageKind KindOf(ReadOnlySpan<byte> frame)
    {
        if (frame.IsEmpty)
            throw new ProtocolException("Empty pgoutput message.");
        return (PgOutputMessageKind)frame[0];
    }

    public static BeginMessage ReadBegin(ReadOnlySpan<byte> frame)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Begin);
        var message = new BeginMessage(r.ReadUInt64(), r.ReadTimestamp(), r.ReadUInt32());
        r.End();
        return message;
    }

    public static CommitMessage ReadCommit(ReadOnlySpan<byte> frame)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Commit);
        var message = new CommitMessage(r.ReadByte(), r.ReadUInt64(), r.ReadUInt64(), r.ReadTimestamp());
        r.End();
        return message;
    }

    public static OriginMessage ReadOrigin(ReadOnlySpan<byte> frame)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Origin);
        var message = new OriginMessage(r.ReadUInt64(), r.ReadCString());
        r.End();
        return message;
    }

    // A Relation column: flags, a NUL-terminated name (at least its NUL), type oid, type modifier.
    private const int RelationColumnMinLength = 1 + 1 + 4 + 4;

    public static RelationMessage ReadRelation(ReadOnlySpan<byte> frame, bool inStream)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Relation);
        var xid = inStream ? r.ReadUInt32() : 0;
        var relationId = r.ReadUInt32();
        var ns = r.ReadCString();
        var name = r.ReadCString();
        var identity = (char)r.ReadByte();
        var count = r.ReadInt16();
        if (count < 0)
            r.Fail($"a non-negative column count, got {count}");
        if (count > r.Remaining / RelationColumnMinLength)
            r.Fail($"{count} columns of at least {RelationColumnMinLength} bytes in the {r.Remaining} bytes left");
        var columns = new RelationColumn[count];
        for (var i = 0; i < count; i++)
        {
            var flags = r.ReadByte();
            columns[i] = new RelationColumn((flags & 1) != 0, r.ReadCString(), r.ReadUInt32(), r.ReadInt32());
        }
        r.End();
        return new RelationMessage(xid, relationId, ns.Length == 0 ? "pg_catalog" : ns, name, identity, columns);
    }

    public static TypeMessage ReadType(ReadOnlySpan<byte> frame, bool inStream)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Type);
        var message = new TypeMessage(inStream ? r.ReadUInt32() : 0, r.ReadUInt32(), r.ReadCString(), r.ReadCString());
        r.End();
        return message;
    }

    public static InsertMessage ReadInsert(ReadOnlySpan<byte> frame, bool inStream)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Insert);
        var xid = inStream ? r.ReadUInt32() : 0;
        var relationId = r.ReadUInt32();
        r.Expect((byte)'N');
        var tuple = r.ReadTuple();
        r.End();
        return new InsertMessage(xid, relationId, tuple);
    }

    public static UpdateMessage ReadUpdate(ReadOnlySpan<byte> frame, bool inStream)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Update);
        var xid = inStream ? r.ReadUInt32() : 0;
        var relationId = r.ReadUInt32();
        var marker = r.ReadByte();
        var oldKind = OldTupleKind.None;
        ReadOnlySpan<byte> oldTuple = default;
        if (marker is (byte)'K' or (byte)'O')
        {
            oldKind = (OldTupleKind)marker;
            oldTuple = r.ReadTuple();
            marker = r.ReadByte();
        }
        if (marker != 'N')
            r.Fail($"'K', 'O' or 'N', got 0x{marker:x2}");
        var newTuple = r.ReadTuple();
        r.End();
        return new UpdateMessage(xid, relationId, oldKind, oldTuple, newTuple);
    }

    public static DeleteMessage ReadDelete(ReadOnlySpan<byte> frame, bool inStream)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Delete);
        var xid = inStream ? r.ReadUInt32() : 0;
        var relationId = r.ReadUInt32();
        var marker = r.ReadByte();
        if (marker is not ((byte)'K' or (byte)'O'))
            r.Fail($"'K' or 'O', got 0x{marker:x2}");
        var tuple = r.ReadTuple();
        r.End();
        return new DeleteMessage(xid, relationId, (OldTupleKind)marker, tuple);
    }

    public static TruncateMessage ReadTruncate(ReadOnlySpan<byte> frame, bool inStream)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Truncate);
        var xid = inStream ? r.ReadUInt32() : 0;
        var count = r.ReadInt32();
        if (count < 0)
            r.Fail($"a non-negative relation count, got {count}");
        var options = (TruncateOptions)r.ReadByte();
        if (count > r.Remaining / 4)
            r.Fail($"{count} relation ids in the {r.Remaining} bytes left");
        var ids = new uint[count];
        for (var i = 0; i < count; i++)
            ids[i] = r.ReadUInt32();
        r.End();
        return new TruncateMessage(xid, options, ids);
    }

    public static LogicalDecodingMessage ReadMessage(ReadOnlySpan<byte> frame, bool inStream)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.Message);
        var xid = inStream ? r.ReadUInt32() : 0;
        var transactional = (r.ReadByte() & 1) != 0;
        var lsn = r.ReadUInt64();
        var prefix = r.ReadCStringBytes();
        var length = r.ReadInt32();
        var content = r.ReadBytes(length);
        r.End();
        return new LogicalDecodingMessage(xid, transactional, lsn, prefix, content);
    }

    public static StreamStartMessage ReadStreamStart(ReadOnlySpan<byte> frame)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.StreamStart);
        var message = new StreamStartMessage(r.ReadUInt32(), r.ReadByte() == 1);
        r.End();
        return message;
    }

    public static void ReadStreamStop(ReadOnlySpan<byte> frame) => new FrameReader(frame, PgOutputMessageKind.StreamStop).End();

    public static StreamCommitMessage ReadStreamCommit(ReadOnlySpan<byte> frame)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.StreamCommit);
        var message = new StreamCommitMessage(r.ReadUInt32(), r.ReadByte(), r.ReadUInt64(), r.ReadUInt64(), r.ReadTimestamp());
        r.End();
        return message;
    }

    /// <summary>Stream Abort: xid and subtransaction xid; protocol 4 adds the abort LSN and time. Parsed by length.</summary>
    public static StreamAbortMessage ReadStreamAbort(ReadOnlySpan<byte> frame)
    {
        var r = new FrameReader(frame, PgOutputMessageKind.StreamAbort);
        var xid = r.ReadUInt32();
        var subXid = r.ReadUInt32();
        ulong abortLsn = 0;
        var abortTime = default(DateTime);
        if (r.Remaining > 0)
        {
            abortLsn = r.ReadUInt64();
            abortTime = r.ReadTimestamp();
        }
        r.End();
        return new StreamAbortMessage(xid, subXid, abortLsn, abortTime);
    }

    /// <summary>The byte length of the TupleData section at the start of <paramref name="data"/>.</summary>
    public static int MeasureTuple(ReadOnlySpan<byte> data, PgOutputMessageKind kind = PgOutputMessageKind.Insert)
    {
        if (data.Length < 2)
            ThrowTruncated(kind, 0, "a tuple column count");
        var count = BinaryPrimitives.ReadInt16BigEndian(data);
        var position = 2;
        for (var i = 0; i < count; i++)
        {
            if (position >= data.Length)
                ThrowTruncated(kind, position, $"the kind of tuple column {i}");
            switch (data[position++])
            {
                case (byte)'n' or (byte)'u':
                    break;
                case (byte)'t' or (byte)'b':
                    if (data.Length - position < 4)
                        ThrowTruncated(kind, position, $"the length of tuple column {i}");
                    var length = BinaryPrimitives.ReadInt32BigEndian(data[position..]);
                    position += 4;
                    if (length < 0 || data.Length - position < length)
                        ThrowTruncated(kind, position, $"{length} bytes of tuple column {i}");
                    position += length;
                    break;
                default:
                    throw new ProtocolException($"pgoutput '{(char)kind}' message: unknown tuple column kind 0x{data[position - 1]:x2} at offset {position - 1} (expected 'n', 'u', 't' or 'b').");
            }
        }
        return position;
    }

    internal static DateTime FromPostgresMicroseconds(long microseconds) => s_postgresEpoch.AddTicks(microseconds * TimeSpan.TicksPerMicrosecond);

    [DoesNotReturn]
    private static void ThrowTruncated(PgOutputMessageKind kind, int offset, string expected)
        => throw new ProtocolException($"pgoutput '{(char)kind}' message is truncated at offset {offset}: expected {expected}.");

    /// <summary>A bounds-checked cursor over one message; the kind byte is checked and skipped on construction.</summary>
    private ref struct FrameReader
    {
        private readonly ReadOnlySpan<byte> _frame;
        private readonly PgOutputMessageKind _kind;
        private int _position;

        public FrameReader(ReadOnlySpan<byte> frame, PgOutputMessageKind kind)
        {
            _frame = frame;
            _kind = kind;
            if (frame.IsEmpty || frame[0] != (byte)kind)
                throw new ProtocolException($"Expected a pgoutput '{(char)kind}' message, got {(frame.IsEmpty ? "an empty frame" : $"'{(char)frame[0]}'")}.");
            _position = 1;
        }

        public readonly int Remaining => _frame.Length - _position;

        public byte ReadByte() => Take(1, "a byte")[0];

        public short ReadInt16() => BinaryPrimitives.ReadInt16BigEndian(Take(2, "an Int16"));

        public int ReadInt32() => BinaryPrimitives.ReadInt32BigEndian(Take(4, "an Int32"));

        public uint ReadUInt32() => BinaryPrimitives.ReadUInt32BigEndian(Take(4, "an Int32"));

        public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64BigEndian(Take(8, "an Int64"));

        public DateTime ReadTimestamp()
        {
            var microseconds = BinaryPrimitives.ReadInt64BigEndian(Take(8, "a timestamp"));
            if (microseconds < s_minMicroseconds || microseconds > s_maxMicroseconds)
            {
                _position -= 8;
                Fail($"a transaction time, got {microseconds} microseconds from 2000-01-01, outside years 1 to 9999");
            }
            return FromPostgresMicroseconds(microseconds);
        }

        public ReadOnlySpan<byte> ReadBytes(int length)
        {
            if (length < 0)
                Fail($"a non-negative length, got {length}");
            return Take(length, $"{length} bytes");
        }

        public ReadOnlySpan<byte> ReadCStringBytes()
        {
            var end = _frame[_position..].IndexOf((byte)0);
            if (end < 0)
                ThrowTruncated(_kind, _position, "a NUL-terminated string");
            var value = _frame.Slice(_position, end);
            _position += end + 1;
            return value;
        }

        public string ReadCString() => Encoding.UTF8.GetString(ReadCStringBytes());

        public void Expect(byte marker)
        {
            var actual = ReadByte();
            if (actual != marker)
                Fail($"'{(char)marker}', got 0x{actual:x2}");
        }

        public ReadOnlySpan<byte> ReadTuple()
        {
            var length = MeasureTuple(_frame[_position..], _kind);
            var tuple = _frame.Slice(_position, length);
            _position += length;
            return tuple;
        }

        public readonly void End()
        {
            if (_position != _frame.Length)
                throw new ProtocolException($"pgoutput '{(char)_kind}' message has {_frame.Length - _position} unexpected trailing bytes at offset {_position}.");
        }

        [DoesNotReturn]
        public readonly void Fail(string expected)
            => throw new ProtocolException($"pgoutput '{(char)_kind}' message: expected {expected} at offset {_position}.");

        private ReadOnlySpan<byte> Take(int count, string what)
        {
            if (_frame.Length - _position < count)
                ThrowTruncated(_kind, _position, what);
            var slice = _frame.Slice(_position, count);
            _position += count;
            return slice;
        }
    }
}
