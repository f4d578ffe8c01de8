using DBSync.Protocol;
using DBSync.Replication;
using DBSync.Sample;
using static DBSync.Runtime.Tests.Frames;

namespace DBSync.Runtime.Tests;

/// <summary>
/// The pgoutput transaction state machine without a server: the recorded frames, and streamed transactions built by hand,
/// in; whole transactions out, each change between its transaction's begin and commit.
/// </summary>
public sealed class TransactionAssemblerTests : IDisposable
{
    private const uint RestaurantOid = 16400;
    private const uint VisitOid = 16410;

    private static readonly (string, uint, bool)[] s_restaurantColumns =
        [("id", PgTypeOids.Varchar, true), ("name", PgTypeOids.Varchar, false), ("description", PgTypeOids.Text, false),
         ("address", PgTypeOids.Text, false), ("rating", PgTypeOids.Int4, false), ("tags", PgTypeOids.TextArray, false)];

    private readonly AssemblerHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    /// <summary>What the recordings (Fixtures/record-fixtures.sql) hand on: the all_types insert is of a table no type maps.</summary>
    private static readonly string[] s_recorded =
    [
        "B", "I users #0", "C 1",
        "B", "I restaurant #0", "C 1",
        "B", "I visit #0", "C 1",
        "B", "U users #0", "C 1",
        "B", "U visit #0", "C 1",
        "B", "U restaurant #0", "C 1",
        "B", "D visit #0", "C 1",
        "B", "D restaurant #0", "C 1",
        "B", "C 0",
        "B", "T visit #0", "T restaurant #1", "C 2",
        "B", "W transactional", "C 0 internal",
        "M dbsync not transactional",
        "B", "I restaurant #0", "C 1 from fixture_origin",
    ];

    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void RecordedStream_EveryChangeArrivesInsideItsTransaction_WithItsCommitPositions(string file)
    {
        var frames = RecordedWithPositions(file);
        foreach (var (lsn, frame) in frames)
            _harness.Feed(frame, lsn);

        // Protocol 1 (the text recording) carries no logical decoding messages, so the transaction that held only a
        // message is empty, and PostgreSQL skips empty transactions.
        var expected = file == "text.hex" ? s_recorded.Where(e => !e.StartsWith("M ", StringComparison.Ordinal)).ToList() : [.. s_recorded];
        if (file == "text.hex")
            expected.RemoveRange(expected.IndexOf("W transactional") - 1, 3);
        Assert.Equal(expected, _harness.Shapes);

        // Each Begin and Commit as the parser reads them, against what was handed on between them.
        var begins = frames.Where(f => PgOutputParser.KindOf(f.Frame) == PgOutputMessageKind.Begin).Select(f => PgOutputParser.ReadBegin(f.Frame)).ToList();
        var commits = frames.Where(f => PgOutputParser.KindOf(f.Frame) == PgOutputMessageKind.Commit).Select(f => PgOutputParser.ReadCommit(f.Frame)).ToList();
        var transaction = -1;
        foreach (var delivered in _harness.Events)
        {
            if (delivered.Shape == "B")
                transaction++;
            if (delivered.Shape.StartsWith("M ", StringComparison.Ordinal))
                continue; // not transactional: outside any transaction
            Assert.Equal(begins[transaction].Xid, delivered.Xid);
            Assert.Equal(begins[transaction].FinalLsn, delivered.CommitLsn);
            Assert.Equal(commits[transaction].CommitLsn, delivered.CommitLsn);
            if (delivered.Shape.StartsWith("C ", StringComparison.Ordinal))
                Assert.Equal(commits[transaction].EndLsn, delivered.EndLsn);
        }
        Assert.Equal(begins.Count - 1, transaction);
        Assert.False(_harness.Assembler.InTransaction);
    }

    [Fact]
    public void RecordedStream_RelationNoTypeMaps_IsLookedUpOnceAndItsChangesSkipped()
    {
        foreach (var (lsn, frame) in RecordedWithPositions("binary.hex"))
            _harness.Feed(frame, lsn);

        var allTypes = RecordedWithPositions("binary.hex").Select(f => f.Frame).Where(f => PgOutputParser.KindOf(f) == PgOutputMessageKind.Relation)
            .Select(f => PgOutputParser.ReadRelation(f, inStream: false)).Single(r => r.Name == "all_types");
        Assert.Equal([allTypes.RelationId], _harness.Lookups);
    }

    [Fact]
    public void RelationMessageAgain_RebindsItsColumnsByName()
    {
        (string, uint, bool)[] columns = [("user_id", PgTypeOids.Int4, true), ("restaurant_id", PgTypeOids.Varchar, true), ("amount_spent", PgTypeOids.Numeric, false),
            ("visit_rating", PgTypeOids.Int4, false)];
        _harness.Feed(Begin(700, 0x1000));
        _harness.Feed(Relation(null, VisitOid, "public", "visit", columns));
        _harness.Feed(Insert(null, VisitOid, "1", "r-1", "12.50", null));
        var first = _harness.LastVisit!;
        _harness.Feed(Commit(0x1000, 0x1010));

        // The table changed: other column order, a column DBSync does not map.
        _harness.Feed(Begin(701, 0x2000));
        _harness.Feed(Relation(null, VisitOid, "public", "visit", [columns[3], ("note", PgTypeOids.Text, false), columns[2], columns[1], columns[0]]));
        _harness.Feed(Insert(null, VisitOid, "4", "unmapped", "7.25", "r-2", "2"));
        var second = _harness.LastVisit!;
        _harness.Feed(Commit(0x2000, 0x2010));

        Assert.Equal((1, "r-1", 12.50m, (int?)null), (first.UserId, first.RestaurantId, first.AmountSpent, first.VisitRating));
        Assert.Equal((2, "r-2", 7.25m, (int?)4), (second.UserId, second.RestaurantId, second.AmountSpent, second.VisitRating));
        Assert.Equal(["B", "I visit #0", "C 1", "B", "I visit #0", "C 1"], _harness.Shapes);
    }

    [Fact]
    public void PartitionOfAMappedTable_ChangesAreDeliveredAsTheTables()
    {
        const uint partition = 16500;
        _harness.Owners[partition] = new PartitionOwner(_harness.Restaurants, IsPartition: true);
        _harness.Feed(Begin(700, 0x1000));
        _harness.Feed(Relation(null, partition, "public", "restaurant_2024", s_restaurantColumns));
        _harness.Feed(Insert(null, partition, "p-1", "partitioned", null, null, null, null));
        _harness.Feed(Insert(null, partition, "p-2", "partitioned", null, null, null, null));
        _harness.Feed(Commit(0x1000, 0x1010));

        Assert.Equal(["B", "I restaurant #0", "I restaurant #1", "C 2"], _harness.Shapes);
        Assert.Equal(["p-1", "p-2"], _harness.Rows.Cast<Restaurant>().Select(r => r.Id));
        Assert.Equal([partition], _harness.Lookups); // once per Relation message
    }

    [Fact]
    public void StreamedTransaction_DeliveredWholeAtItsStreamCommit_AfterTransactionsThatCommittedBefore()
    {
        _harness.Feed(StreamStart(900, first: true), 0x100);
        _harness.Feed(Relation(900, RestaurantOid, "public", "restaurant", s_restaurantColumns), 0x110);
        _harness.Feed(Insert(900, RestaurantOid, "s-1", "streamed", null, null, null, null), 0x120);
        _harness.Feed(StreamStop());
        Assert.False(_harness.Assembler.InTransaction);
        Assert.Empty(_harness.Events);

        // A transaction that commits while the large one is still running is delivered at once.
        _harness.Feed(Begin(901, 0x300), 0x200);
        _harness.Feed(Relation(null, RestaurantOid, "public", "restaurant", s_restaurantColumns), 0x210);
        _harness.Feed(Insert(null, RestaurantOid, "r-9", "small", null, null, null, null), 0x220);
        _harness.Feed(Commit(0x300, 0x310), 0x300);

        _harness.Feed(StreamStart(900, first: false), 0x400);
        Assert.True(_harness.Assembler.InTransaction);
        _harness.Feed(Insert(900, RestaurantOid, "s-2", "streamed", null, null, null, null), 0x410);
        _harness.Feed(StreamStop());
        _harness.Feed(StreamCommit(900, 0x500, 0x510), 0x500);

        Assert.Equal(["B", "I restaurant #0", "C 1", "B", "I restaurant #0", "I restaurant #1", "C 2"], _harness.Shapes);
        Assert.Equal(["r-9", "s-1", "s-2"], _harness.Rows.Cast<Restaurant>().Select(r => r.Id));
        Assert.All(_harness.Events.Skip(3), e => Assert.Equal((900u, 0x500UL), (e.Xid, e.CommitLsn)));
        Assert.Equal(0x510UL, _harness.Events[^1].EndLsn);
        Assert.Equal(0, _harness.Streams.Count);
    }

    [Fact]
    public void StreamAbort_DropsTheTransaction_OrOnlyTheSubtransactionAborted()
    {
        // 900: a subtransaction (902) rolled back between two that were kept; 910: aborted whole.
        _harness.Feed(StreamStart(900, first: true));
        _harness.Feed(Relation(900, RestaurantOid, "public", "restaurant", s_restaurantColumns));
        _harness.Feed(Insert(900, RestaurantOid, "kept-1", "top", null, null, null, null));
        _harness.Feed(Insert(901, RestaurantOid, "kept-2", "released savepoint", null, null, null, null));
        _harness.Feed(Insert(902, RestaurantOid, "dropped-1", "rolled back savepoint", null, null, null, null));
        _harness.Feed(StreamStop());
        _harness.Feed(StreamStart(910, first: true));
        _harness.Feed(Relation(910, RestaurantOid, "public", "restaurant", s_restaurantColumns));
        _harness.Feed(Insert(910, RestaurantOid, "dropped-2", "aborted", null, null, null, null));
        _harness.Feed(StreamStop());
        _harness.Feed(StreamAbort(900, 902));
        _harness.Feed(StreamAbort(910, 910));
        _harness.Feed(StreamStart(900, first: false));
        _harness.Feed(Insert(900, RestaurantOid, "kept-3", "after the rollback", null, null, null, null));
        _harness.Feed(StreamStop());
        _harness.Feed(StreamCommit(900, 0x500, 0x510));

        Assert.Equal(["kept-1", "kept-2", "kept-3"], _harness.Rows.Cast<Restaurant>().Select(r => r.Id));
        Assert.Equal(["B", "I restaurant #0", "I restaurant #1", "I restaurant #2", "C 3"], _harness.Shapes);
        Assert.Equal(0, _harness.Streams.Count);
        // The aborted transaction is gone: a Stream Commit of it now names a transaction that never streamed.
        Assert.Throws<ProtocolException>(() => _harness.Feed(StreamCommit(910, 0x600, 0x610)));
    }

    [Fact]
    public void ChangeOutsideATransaction_IsAProtocolError()
    {
        _harness.Feed(Relation(null, RestaurantOid, "public", "restaurant", s_restaurantColumns));

        var error = Assert.Throws<ProtocolException>(() => _harness.Feed(Insert(null, RestaurantOid, "r-1", "lost", null, null, null, null), 0x1234));
        Assert.Equal("pgoutput message 'I' at 0/1234 arrived outside a transaction.", error.Message);
        Assert.Empty(_harness.Events);
    }

    [Fact]
    public void BeginInsideATransaction_IsAProtocolError()
    {
        _harness.Feed(Begin(700, 0x1000));

        var error = Assert.Throws<ProtocolException>(() => _harness.Feed(Begin(701, 0x2000), 0x1500));
        Assert.Equal("Begin of transaction 701 at 0/1500 arrived inside transaction 700.", error.Message);
    }

    [Fact]
    public void BeginInsideAStreamBlock_IsAProtocolError()
    {
        _harness.Feed(StreamStart(900, first: true));

        var error = Assert.Throws<ProtocolException>(() => _harness.Feed(Begin(701, 0x2000), 0x1500));
        Assert.Equal("pgoutput message 'B' at 0/1500 arrived inside the stream block of transaction 900.", error.Message);
    }

    [Fact]
    public void StreamCommitOfAnUnknownTransaction_IsAProtocolError()
    {
        var error = Assert.Throws<ProtocolException>(() => _harness.Feed(StreamCommit(999, 0x500, 0x510), 0x500));
        Assert.Equal("Stream Commit of transaction 999 at 0/500, whose changes were never streamed.", error.Message);
        Assert.Empty(_harness.Events);
    }

    [Fact]
    public void CommitOfAnotherTransaction_IsAProtocolError()
    {
        _harness.Feed(Begin(700, 0x1000));

        var error = Assert.Throws<ProtocolException>(() => _harness.Feed(Commit(0x2000, 0x2010)));
        Assert.Equal("Commit at 0/2000 does not match the Begin of transaction 700 (final LSN 0/1000).", error.Message);
        Assert.Equal(["B"], _harness.Shapes);
    }
}
