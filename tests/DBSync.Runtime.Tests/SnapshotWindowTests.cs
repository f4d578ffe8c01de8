using DBSync.Sample;
using DBSync.Snapshots;

namespace DBSync.Runtime.Tests;

/// <summary>The DBLog window on its own, driven the way the stream and the coordinator drive it: which rows a high
/// watermark emits, how rows whose updates left TOAST columns out are completed, and what it hands the coordinator.</summary>
public sealed class SnapshotWindowTests
{
    // A chunk snapshot that sees every transaction before 100 and none from 100 on.
    private static readonly SnapshotVisibility SeesBefore100 = SnapshotVisibility.Parse("100:100:");

    [Fact]
    public void UpdateThatLeftAToastColumnOut_InTheWindow_IsDeliveredWhole_FromTheChunksRow()
    {
        var window = Window(Users(1, 2, 3));
        window.Record(100, Update(2, "after", lacksAddress: true));
        window.Record(101, Update(3, "after", lacksAddress: false));

        var (rows, asDeletes, outcome) = window.OnHigh(1);
        Assert.False(asDeletes);
        Assert.Equal(ChunkFollowUp.None, outcome.FollowUp);
        // 1 untouched; 3 dropped (its update carried everything); 2 completed: the update's name, the chunk's address.
        Assert.Equal(["1 before address-1", "2 after address-2"], rows.Select(Describe).Order());
    }

    [Fact]
    public void ChangesUnseenByTheChunk_AreFollowedInOrder_ThroughKeyUpdates_UntilADeleteOrAWholeRow()
    {
        var window = Window(Users(1, 2, 3, 4));
        window.Record(100, Update(1, "first", lacksAddress: true));
        window.Record(101, Update(1, "second", lacksAddress: true));      // 1: both names, the chunk's address
        window.Record(102, Move(2, 20, "moved", lacksAddress: true));     // 2 becomes 20, address and all
        window.Record(103, Update(3, "gone soon", lacksAddress: true));
        window.Record(104, Delete(3));                                    // 3: deleted, nothing to emit
        window.Record(105, Update(4, "half", lacksAddress: true));
        window.Record(106, Update(4, "whole", lacksAddress: false));      // 4: the last update carried everything

        var (rows, _, _) = window.OnHigh(1);
        Assert.Equal(["1 second address-1", "20 moved address-2"], rows.Select(Describe).Order());
    }

    [Fact]
    public void UpdateTheChunkSaw_AfterTheLowWatermark_WithoutItsToastColumns_EmitsTheChunksRow()
    {
        // The update committed between the low watermark and the chunk's snapshot: the chunk's row has it, whole, while
        // the stream delivered it without the address.
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.SetChunk(1, Users(1, 2), SeesBefore100);
        window.OnLow(1);
        window.Record(99, Update(1, "before", lacksAddress: true));
        var (rows, _, _) = window.OnHigh(1);
        Assert.Equal(["1 before address-1", "2 before address-2"], rows.Select(Describe).Order());
    }

    [Fact]
    public void ChangesOlderThanTheChunk_AreIgnored_ButOnesItsSnapshotDoesNotSee_DropTheirRows()
    {
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.Record(99, Update(1, "old", lacksAddress: false)); // before the low watermark, and visible to the chunk
        window.Record(150, Update(2, "new", lacksAddress: false)); // before the low watermark, but not visible: newer
        window.SetChunk(1, Users(1, 2, 3), SeesBefore100);
        window.OnLow(1);
        var (rows, _, outcome) = window.OnHigh(1);
        Assert.Equal([1, 3], rows.Select(u => u.Id));
        Assert.Equal(ChunkFollowUp.None, outcome.FollowUp);
    }

    [Fact]
    public void Truncate_EmitsNothing_AndRowsThatLeftTheTableAreDeletes_NeverCompleted()
    {
        var window = Window(Users(1, 2));
        window.Record(100, Update(1, "after", lacksAddress: true));
        window.Record(101, new Change<User>(ChangeKind.Truncate, null, null, OldRowKind.None, ColumnSet.Empty, default, default, default, 101));
        Assert.Empty(window.OnHigh(1).Rows);

        window.SetChunk(2, Users(3, 4, 5), SnapshotVisibility.Parse("102:102:"), asDeletes: true); // sees the truncate
        window.OnLow(2);
        window.Record(102, Update(4, "back in the table", lacksAddress: true)); // the stream's change wins
        var (rows, asDeletes, _) = window.OnHigh(2);
        Assert.Equal([3, 5], rows.Select(u => u.Id));
        Assert.True(asDeletes);
    }

    [Fact]
    public void WatermarksOfWindowsBeforeTheSnapshotBegan_AreStale_AndIgnored()
    {
        // A low watermark the stream checked just before the snapshot of the same table began again must not open a
        // window in the new one (the next low watermark would then find it open and stop the stream).
        var window = new SnapshotWindow<User>(maxChanges: 100, firstWindow: 5);
        window.OnLow(3);
        Assert.Empty(window.OnHigh(3).Rows);
        window.SetChunk(5, Users(1), SeesBefore100);
        window.OnLow(5);
        Assert.Equal([1], window.OnHigh(5).Rows.Select(u => u.Id));
    }

    [Fact]
    public async Task WindowOverflow_HandsEveryUnrecordedTransactionToTheCoordinator_WhileChunksArriveFromAnotherThread()
    {
        // The stream's thread records and closes windows while the coordinator's thread hands in chunks read ahead and
        // gives them up: the transactions a full window could not record arrive whole in the high watermark's outcome,
        // the only thing the coordinator reads.
        var window = new SnapshotWindow<User>(maxChanges: 4);
        const int windows = 2_000;
        var handedIn = new SemaphoreSlim(0);
        var coordinator = Task.Run(() =>
        {
            for (var chunk = 1L; chunk <= windows; chunk++)
            {
                window.SetChunk(chunk, Users(1), SeesBefore100);
                window.SetChunk(chunk + windows, Users(2), SeesBefore100); // read ahead ...
                window.Discard(chunk + windows); // ... and given up
                handedIn.Release();
            }
        });

        var xid = 1_000u;
        for (var chunk = 1L; chunk <= windows; chunk++)
        {
            await handedIn.WaitAsync();
            window.OnLow(chunk);
            for (var i = 0; i < 10; i++)
                window.Record(xid++, Update(5, "x", lacksAddress: false));
            var (_, _, outcome) = window.OnHigh(chunk);
            Assert.Equal(ChunkFollowUp.ReadAgain, outcome.FollowUp);
            // The first four changes were recorded (and the touches not seen by the chunk are kept for later windows, so
            // from the second window on none is recorded); every other transaction is handed over, and so are those of
            // earlier windows: this chunk's snapshot does not see them either.
            var expected = Enumerable.Range(1_004, (int)(xid - 1_004)).Select(x => (uint)x);
            Assert.Equal(expected.Order(), outcome.WaitFor.Order());
        }
        await coordinator;
    }

    [Fact]
    public void OverlappingWindows_EachChunkIsReconciled_AgainstTheChangesBetweenItsOwnWatermarks()
    {
        // Chunks 1 (rows 1, 2) and 2 (rows 3, 4) read in parallel: L1 L2 H1 H2 in the stream.
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.SetChunk(1, Users(1, 2), SeesBefore100);
        window.SetChunk(2, Users(3, 4), SeesBefore100);
        window.OnLow(1);
        window.Record(50, Update(3, "old", lacksAddress: false)); // before chunk 2's window, seen by its snapshot: keeps row 3
        window.Record(51, Update(2, "new", lacksAddress: false)); // inside chunk 1's window: drops row 2
        window.OnLow(2);
        window.Record(52, Update(4, "new", lacksAddress: false)); // inside both windows: drops row 4 of chunk 2
        var (first, _, firstOutcome) = window.OnHigh(1);
        window.Record(53, Update(1, "late", lacksAddress: false)); // after chunk 1's window: not chunk 1's business
        var (second, _, secondOutcome) = window.OnHigh(2);

        Assert.Equal((ChunkFollowUp.None, ChunkFollowUp.None), (firstOutcome.FollowUp, secondOutcome.FollowUp));
        Assert.Equal(["1 before address-1"], first.Select(Describe));
        Assert.Equal(["3 before address-3"], second.Select(Describe));
    }

    [Fact]
    public void OverlappingWindows_AChangeOneChunkSaw_IsKeptForAnOpenChunkWhoseOlderSnapshotDidNot()
    {
        // Chunk 2's snapshot is older than chunk 1's (its reader was slower to start): transaction 150 committed before
        // either low watermark, chunk 1 saw it and chunk 2 did not (the commit-visibility race). Closing chunk 1 must not
        // forget it, or chunk 2 would emit its stale row 3 after the stream's newer one.
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.Record(150, Update(3, "newer", lacksAddress: false));
        window.OnLow(1);
        window.OnLow(2);
        window.SetChunk(1, Users(1, 2), SnapshotVisibility.Parse("200:200:"));
        var (first, _, _) = window.OnHigh(1);
        window.SetChunk(2, Users(3, 4), SeesBefore100);
        var (second, _, _) = window.OnHigh(2);

        Assert.Equal(["1 before address-1", "2 before address-2"], first.Select(Describe));
        Assert.Equal(["4 before address-4"], second.Select(Describe));
    }

    [Fact]
    public void OverlappingWindows_ShapeChange_ReadsAgainEveryChunkOpenAtTheTime_Only()
    {
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.SetChunk(1, Users(1), SeesBefore100);
        window.SetChunk(2, Users(2), SeesBefore100);
        window.SetChunk(3, Users(3), SeesBefore100);
        window.OnLow(1);
        window.OnLow(2);
        window.OnShapeChanged();
        window.OnLow(3); // read after the change: its rows have the new shape
        Assert.Equal(ChunkFollowUp.ReadAgain, window.OnHigh(2).Outcome.FollowUp);
        Assert.Equal(ChunkFollowUp.ReadAgain, window.OnHigh(1).Outcome.FollowUp);
        var (rows, _, outcome) = window.OnHigh(3);
        Assert.Equal(ChunkFollowUp.None, outcome.FollowUp);
        Assert.Equal(["3 before address-3"], rows.Select(Describe));
    }

    private static SnapshotWindow<User> Window(List<User> rows)
    {
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.SetChunk(1, rows, SeesBefore100);
        window.OnLow(1);
        return window;
    }

    private static SyncTableInfo InfoOf<T>() where T : ISyncTable<T> => T.TableInfo;

    private static List<User> Users(params int[] ids) => [.. ids.Select(id => new User { Id = id, FirstName = "before", Address = $"address-{id}" })];

    private static string Describe(User user) => $"{user.Id} {user.FirstName} {user.Address}";

    private static ColumnSet Unchanged(bool lacksAddress)
        => lacksAddress ? ColumnSet.Empty.Add(Array.FindIndex(InfoOf<User>().Columns.ToArray(), c => c.Name == "address")) : ColumnSet.Empty;

    // An update that leaves the address out, as PostgreSQL sends an unchanged TOASTed value: the property holds a default.
    private static Change<User> Update(int id, string name, bool lacksAddress)
        => new(ChangeKind.Update, new User { Id = id, FirstName = name, Address = lacksAddress ? null : $"address-{id}" }, default, OldRowKind.None,
            Unchanged(lacksAddress), default, default, default, 0);

    private static Change<User> Move(int from, int to, string name, bool lacksAddress)
        => new(ChangeKind.Update, new User { Id = to, FirstName = name }, new User { Id = from }, OldRowKind.Key, Unchanged(lacksAddress), default, default, default, 0);

    private static Change<User> Delete(int id)
        => new(ChangeKind.Delete, default, new User { Id = id }, OldRowKind.Key, ColumnSet.Empty, default, default, default, 0);
}
