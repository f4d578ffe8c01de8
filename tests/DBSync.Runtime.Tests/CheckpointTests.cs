using DBSync.Checkpoints;
using MessagePack;

namespace DBSync.Runtime.Tests;

public sealed class CheckpointTests
{
    private static Checkpoint Sample() => new()
    {
        Slot = "orders_sync",
        ConfirmedLsn = 0x1_0000_2000,
        SavedAt = new DateTime(2026, 11, 24, 10, 30, 0, DateTimeKind.Utc),
        Paused = true,
        LastSignalLsn = 0x1_0000_1000,
        Jobs =
        [
            new JobState
            {
                Schema = "public", Name = "visit", Started = true, MaxKey = ["120", "r-060"], LastKey = ["7", "r-003"],
                Chunks = 3, RowsRead = 21, RowsEmitted = 19,
            },
            new JobState { Schema = "sales", Name = "orders", Filter = "region = $1 AND note IS NOT DISTINCT FROM $2", FilterParameters = ["eu", null], ChunkKey = "seq" },
        ],
        Finished =
        [
            new FinishedSnapshot("public.users", SnapshotOutcome.Completed, 4, 30_000, 29_998, new DateTime(2026, 11, 24, 10, 0, 0, DateTimeKind.Utc), null),
            new FinishedSnapshot("public.nope", SnapshotOutcome.Skipped, 0, 0, 0, new DateTime(2026, 11, 24, 10, 1, 0, DateTimeKind.Utc), "it does not exist"),
        ],
        Partitions =
        [
            new SavedPartition(16401, "public", "reservation", "reservation_2026_10", "public.reservation_2026_10", 'r', "FOR VALUES FROM ('2026-10-01') TO ('2026-11-01')", 16401),
            new SavedPartition(4_000_000_000, "public", "reservation", "archive", "\"Old\".archive", 'f', null, 0),
        ],
    };

    /// <summary>The sample's record cut to its first <paramref name="fields"/> fields (fewer than 16), as an earlier layout
    /// wrote it.</summary>
    private static byte[] EarlierLayout(int fields)
    {
        var bytes = Sample().Serialize();
        var reader = new MessagePackReader(bytes);
        reader.ReadArrayHeader();
        for (var i = 0; i < fields; i++)
            reader.Skip();
        var earlier = bytes[..(int)reader.Consumed];
        earlier[0] = (byte)(0x90 | fields); // fixarray of that many
        return earlier;
    }

    [Fact]
    public void RoundTrip_KeepsEveryField()
    {
        var original = Sample();
        var copy = Checkpoint.Deserialize(original.Serialize(), "test");

        Assert.Equal(original.Slot, copy.Slot);
        Assert.Equal(original.ConfirmedLsn, copy.ConfirmedLsn);
        Assert.Equal(original.SavedAt, copy.SavedAt);
        Assert.True(copy.Paused);
        Assert.Equal(original.LastSignalLsn, copy.LastSignalLsn);
        Assert.Equal(2, copy.Jobs.Count);
        var visit = copy.Jobs[0];
        Assert.Equal(("public", "visit", true, 3L, 21L, 19L), (visit.Schema, visit.Name, visit.Started, visit.Chunks, visit.RowsRead, visit.RowsEmitted));
        Assert.Equal(["120", "r-060"], visit.MaxKey!);
        Assert.Equal(["7", "r-003"], visit.LastKey!);
        Assert.Null(visit.Filter);
        Assert.Null(visit.ChunkKey);
        var orders = copy.Jobs[1];
        Assert.Equal(original.Jobs[1].Filter, orders.Filter);
        Assert.Equal(["eu", null], orders.FilterParameters);
        Assert.Equal("seq", orders.ChunkKey);
        Assert.Null(orders.MaxKey);
        Assert.Null(orders.LastKey);
        Assert.False(orders.Started);
        Assert.Equal(original.Finished, copy.Finished);
        Assert.Equal(original.Partitions, copy.Partitions!);
    }

    [Fact]
    public void RecordWithoutPartitions_FromAnEarlierLayout_ReadsWithNone_AndNoneIsWrittenAsNil()
    {
        // The partitions are the ninth field; a record of an earlier DBSync has eight.
        var copy = Checkpoint.Deserialize(EarlierLayout(8), "test");
        Assert.Equal(2, copy.Finished.Count);
        Assert.Null(copy.Partitions);

        var none = new Checkpoint { Slot = "s", Jobs = [] };
        Assert.Null(Checkpoint.Deserialize(none.Serialize(), "test").Partitions);
    }

    [Fact]
    public void RecordWithoutOutcomes_FromTheFirstLayout_ReadsWithNone()
    {
        // The first layout had seven fields; the outcomes are the eighth.
        var copy = Checkpoint.Deserialize(EarlierLayout(7), "test");
        Assert.Equal(2, copy.Jobs.Count);
        Assert.Empty(copy.Finished);
    }

    [Fact]
    public void CheckpointInfo_ShowsTheQueueTheCurrentTableAndTheOutcomes()
    {
        var info = CheckpointInfo.Parse(Sample().Serialize());
        Assert.Equal("orders_sync", info.Slot);
        Assert.Equal("1/2000", info.ConfirmedLsn.ToString());
        Assert.Equal("1/1000", info.LastSignalLsn.ToString());
        Assert.True(info.Paused);
        Assert.Equal(["public.visit", "sales.orders"], info.Queue.Select(q => q.Table));
        var current = info.Current!;
        Assert.Equal(("public.visit", 3L, 21L, 19L), (current.Table, current.Chunks, current.RowsRead, current.RowsEmitted));
        Assert.Equal(["7", "r-003"], current.LastKey!);
        Assert.Equal("seq", info.Queue[1].ChunkKey);
        Assert.Equal([SnapshotOutcome.Completed, SnapshotOutcome.Skipped], info.Finished.Select(f => f.Outcome));
        Assert.Equal("it does not exist", info.Finished[1].Detail);
        Assert.Throws<DBSyncException>(() => CheckpointInfo.Parse(new byte[] { 0xc1 }));
    }

    [Fact]
    public void Record_IsAVersionedMessagePackArray_Version1UnlessAJobDeletesRowsThatLeftItsTable()
    {
        var bytes = Sample().Serialize();
        var reader = new MessagePackReader(bytes);
        Assert.Equal(9, reader.ReadArrayHeader());
        Assert.Equal(1, reader.ReadInt32()); // what an older DBSync reads
        Assert.Equal("orders_sync", reader.ReadString());

        // A job that an older reader would take for a snapshot of the whole table makes the record version 2.
        var sample = Sample();
        var withDeletes = new Checkpoint
        {
            Slot = sample.Slot,
            Jobs = [.. sample.Jobs, new JobState { Schema = "public", Name = "reservation", DeletesFrom = "public.reservation_2026_10" }],
        };
        bytes = withDeletes.Serialize();
        reader = new MessagePackReader(bytes);
        reader.ReadArrayHeader();
        Assert.Equal(2, reader.ReadInt32());
        var read = Checkpoint.Deserialize(bytes, "test");
        Assert.Equal([null, null, "public.reservation_2026_10"], read.Jobs.Select(j => j.DeletesFrom));
    }

    [Fact]
    public void JobReadInSegments_MakesTheRecordVersion3_AndKeepsEachSegmentsProgress()
    {
        // An older DBSync would resume such a job from its LastKey and skip the rows of segments not done: it must refuse
        // the record instead.
        var sample = Sample();
        var segmented = new Checkpoint
        {
            Slot = sample.Slot,
            Jobs = [.. sample.Jobs, new JobState
            {
                Schema = "public", Name = "users", Started = true, MaxKey = ["900"], LastKey = ["450"], Chunks = 3,
                Segments = [new SegmentState(["300"], ["300"], true), new SegmentState(["600"], ["450"], false), new SegmentState(["900"], null, false)],
            }],
        };
        var bytes = segmented.Serialize();
        var reader = new MessagePackReader(bytes);
        reader.ReadArrayHeader();
        Assert.Equal(3, reader.ReadInt32());
        Assert.Equal(3, Checkpoint.CurrentVersion);

        var read = Checkpoint.Deserialize(bytes, "test").Jobs[^1];
        Assert.Null(read.DeletesFrom);
        Assert.Equal([(["300"], ["300"], true), (["600"], ["450"], false), (["900"], (string[]?)null, false)],
            read.Segments!.Select(s => (s.Upper.ToArray(), s.LastKey?.ToArray(), s.Done)));
        Assert.All(Checkpoint.Deserialize(sample.Serialize(), "test").Jobs, j => Assert.Null(j.Segments));
    }

    [Fact]
    public void NewerVersion_IsRefusedWithAMessageThatSaysWhatToDo()
    {
        var bytes = Sample().Serialize();
        bytes[1] = (byte)(Checkpoint.CurrentVersion + 1); // the version is a positive fixint right after the array header
        var error = Assert.Throws<DBSyncException>(() => Checkpoint.Deserialize(bytes, "of slot \"orders_sync\""));
        Assert.Contains($"has version {Checkpoint.CurrentVersion + 1}", error.Message, StringComparison.Ordinal);
        Assert.Contains("upgrade, or delete the checkpoint", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LaterFieldsOfTheSameVersion_AreSkipped()
    {
        var bytes = Sample().Serialize();
        // Append one field to the top-level array: fixarray 9 (0x99) becomes 10 (0x9a), plus a trailing string.
        Assert.Equal(0x99, bytes[0]);
        var extended = bytes.Concat(new byte[] { 0xa3, (byte)'n', (byte)'e', (byte)'w' }).ToArray();
        extended[0] = 0x9a;
        Assert.Equal("orders_sync", Checkpoint.Deserialize(extended, "test").Slot);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0x97, 0x01 })]
    [InlineData(new byte[] { 0xc1, 0xc1, 0xc1 })]
    public void DamagedOrTruncatedBytes_AreRefused(byte[] bytes)
    {
        var error = Assert.Throws<DBSyncException>(() => Checkpoint.Deserialize(bytes, "in file x"));
        Assert.Contains("Checkpoint in file x is", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FileStore_SavesLoadsAndReplaces_PerSlot()
    {
        var directory = Path.Combine(Path.GetTempPath(), "dbsync-checkpoints-" + Guid.NewGuid().ToString("N"));
        try
        {
            var store = new FileCheckpointStore(directory);
            Assert.Null(await store.LoadAsync("a", CancellationToken.None));
            await store.SaveAsync("a", new byte[] { 1, 2, 3 }, CancellationToken.None);
            await store.SaveAsync("b", new byte[] { 9 }, CancellationToken.None);
            await store.SaveAsync("a", new byte[] { 4, 5 }, CancellationToken.None);
            Assert.Equal([4, 5], await store.LoadAsync("a", CancellationToken.None));
            Assert.Equal([9], await store.LoadAsync("b", CancellationToken.None));
            Assert.Equal(["a.dbsync-checkpoint", "b.dbsync-checkpoint"], Directory.GetFiles(directory).Select(Path.GetFileName).Order());
            Assert.True(await store.DeleteAsync("a"));
            Assert.False(await store.DeleteAsync("a"));
            Assert.Null(await store.LoadAsync("a", CancellationToken.None));
            Assert.Equal([9], await store.LoadAsync("b", CancellationToken.None));
        }
        finally
        {
            if (Directory.Exists(directory))
                Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("Bad Name")]
    [InlineData("a.b.c")]
    [InlineData("x\"; DROP TABLE y; --")]
    public void PostgresStore_RefusesATableNameThatIsNotPlain(string table)
    {
        var error = Assert.Throws<ArgumentException>(() => new PostgresCheckpointStore("Host=unused", table));
        Assert.Contains("lower-case letters, digits and underscores", error.Message, StringComparison.Ordinal);
    }
}
