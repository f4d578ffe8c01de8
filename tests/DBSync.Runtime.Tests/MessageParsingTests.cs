using DBSync.Protocol;
using static DBSync.Runtime.Tests.Frames;

namespace DBSync.Runtime.Tests;

/// <summary>Messages the recordings do not contain (streamed transactions), and malformed frames.</summary>
public sealed class MessageParsingTests
{
    private static readonly DateTime s_time = new(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc);
    private static readonly long TimeMicros = (long)(s_time - new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalMicroseconds;

    [Fact]
    public void StreamStartStopCommit_AreDecoded()
    {
        Assert.Equal(new StreamStartMessage(777, true), PgOutputParser.ReadStreamStart(new Builder('S').Int32(777).Byte(1).ToArray()));
        PgOutputParser.ReadStreamStop(new Builder('E').ToArray());
        Assert.Equal(new StreamCommitMessage(777, 0, 0x1000, 0x1050, s_time),
            PgOutputParser.ReadStreamCommit(new Builder('c').Int32(777).Byte(0).Int64(0x1000).Int64(0x1050).Int64(TimeMicros).ToArray()));
    }

    [Fact]
    public void StreamAbort_IsParsedByLength_WithAndWithoutProtocol4Fields()
    {
        Assert.Equal(new StreamAbortMessage(777, 778, 0, default), PgOutputParser.ReadStreamAbort(new Builder('A').Int32(777).Int32(778).ToArray()));
        Assert.Equal(new StreamAbortMessage(777, 778, 0x2000, s_time),
            PgOutputParser.ReadStreamAbort(new Builder('A').Int32(777).Int32(778).Int64(0x2000).Int64(TimeMicros).ToArray()));
    }

    [Fact]
    public void InStreamMessages_CarryTheirTransactionId()
    {
        var relation = PgOutputParser.ReadRelation(new Builder('R').Int32(777).Int32(16384).CString("public").CString("t").Byte((byte)'d').Int16(1)
            .Byte(1).CString("id").Int32(23).Int32(-1).ToArray(), inStream: true);
        Assert.Equal((777u, 16384u, "t", 'd'), (relation.Xid, relation.RelationId, relation.Name, relation.ReplicaIdentity));
        Assert.Equal(new RelationColumn(true, "id", 23, -1), Assert.Single(relation.Columns));

        var insert = PgOutputParser.ReadInsert(new Builder('I').Int32(777).Int32(16384).Byte((byte)'N').Bytes(Tuple('t', "42"u8.ToArray())).ToArray(), inStream: true);
        Assert.Equal((777u, 16384u), (insert.Xid, insert.RelationId));
        Assert.Equal(Tuple('t', "42"u8.ToArray()), insert.NewTuple.ToArray());

        var message = PgOutputParser.ReadMessage(new Builder('M').Int32(777).Byte(1).Int64(0x3000).CString("p").Int32(2).Bytes([1, 2]).ToArray(), inStream: true);
        Assert.Equal((777u, true, 0x3000ul), (message.Xid, message.Transactional, message.Lsn));
        Assert.Equal("p"u8.ToArray(), message.Prefix.ToArray());
        Assert.Equal(new byte[] { 1, 2 }, message.Content.ToArray());
    }

    [Fact]
    public void UpdateWithOldTuple_SplitsOldAndNewExactly()
    {
        var old = Tuple('t', "1"u8.ToArray());
        var @new = Tuple('u');
        var update = PgOutputParser.ReadUpdate(new Builder('U').Int32(5).Byte((byte)'O').Bytes(old).Byte((byte)'N').Bytes(@new).ToArray(), inStream: false);
        Assert.Equal(OldTupleKind.Full, update.OldKind);
        Assert.Equal(old, update.OldTuple.ToArray());
        Assert.Equal(@new, update.NewTuple.ToArray());
    }

    [Theory]
    [InlineData("42", "'B' message is truncated at offset 1: expected an Int64")]
    [InlineData("4300", "'C' message is truncated at offset 2: expected an Int64")]
    [InlineData("49000040064e00010b", "'I' message: unknown tuple column kind 0x0b at offset 2")]
    [InlineData("49000040064e0001740000000a4142", "'I' message is truncated at offset 7: expected 10 bytes of tuple column 0")]
    [InlineData("4400004006580001", "'D' message: expected 'K' or 'O', got 0x58 at offset 6")]
    [InlineData("45ff", "'E' message has 1 unexpected trailing bytes at offset 1")]
    [InlineData("52000040067075626c6963", "'R' message is truncated at offset 5: expected a NUL-terminated string")]
    public void MalformedFrame_ThrowsProtocolExceptionNamingMessageAndOffset(string hex, string expected)
    {
        var frame = Hex(hex);
        var error = Assert.Throws<ProtocolException>(() =>
        {
            switch (PgOutputParser.KindOf(frame))
            {
                case PgOutputMessageKind.Begin: PgOutputParser.ReadBegin(frame); break;
                case PgOutputMessageKind.Commit: PgOutputParser.ReadCommit(frame); break;
                case PgOutputMessageKind.Insert: PgOutputParser.ReadInsert(frame, false); break;
                case PgOutputMessageKind.Delete: PgOutputParser.ReadDelete(frame, false); break;
                case PgOutputMessageKind.StreamStop: PgOutputParser.ReadStreamStop(frame); break;
                case PgOutputMessageKind.Relation: PgOutputParser.ReadRelation(frame, false); break;
            }
        });
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EmptyFrame_ThrowsProtocolException()
        => Assert.Throws<ProtocolException>(() => PgOutputParser.KindOf([]));

    [Fact]
    public void TupleWithOtherColumnCountThanItsRelation_ThrowsNamingTheTable()
    {
        var binding = Binding(PgTypeOids.Int4, SyncColumnType.Int32);
        var twoColumns = new Builder('x').Int16(2).Byte((byte)'n').Byte((byte)'n').ToArray()[1..];
        var error = Assert.Throws<ProtocolException>(() => new TupleReader(twoColumns, binding, keyOnly: false));
        Assert.Contains("public.t has 2 columns but its Relation message described 1", error.Message, StringComparison.Ordinal);
    }
}
