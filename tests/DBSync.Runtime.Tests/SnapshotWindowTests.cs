using DBSync.Sample;
using DBSync.Snapshots;
using NpgsqlTypes;

namespace DBSync.Runtime.Tests;

/// <summary>The DBLog window on its own, driven the way the stream and the coordinator drive it: which rows a high
/// watermark emits, which keys it sends back to be read again, and what it hands the coordinator.</summary>
public sealed class SnapshotWindowTests
{
    // A chunk snapshot that sees every transaction before 100 and none from 100 on.
    private static readonly SnapshotVisibility SeesBefore100 = SnapshotVisibility.Parse("100:100:");

    [Fact]
    public void UpdateThatLeftAToastColumnOut_InTheWindow_DropsTheRow_AndSendsItsKeyBackToBeRead()
    {
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.SetChunk(1, Users(1, 2, 3), SeesBefore100, repairKeys: null);
        window.OnLow(1);
        window.Record(100, Update(2, lacksAddress: true));
        window.Record(101, Update(3, lacksAddress: false));

        var (rows, _, outcome) = window.OnHigh(1);
        Assert.Equal([1], rows.Select(u => u.Id));
        Assert.Equal(ChunkFollowUp.Repair, outcome.FollowUp);
        Assert.Equal([100u], outcome.WaitFor);

        // The chunk read again keeps only that key; with no change in its window, it is emitted.
        window.SetChunk(2, Users(1, 2, 3), SnapshotVisibility.Parse("102:102:"), outcome.RepairKeys);
        window.OnLow(2);
        var (repaired, _, done) = window.OnHigh(2);
        Assert.Equal([2], repaired.Select(u => u.Id));
        Assert.Equal(ChunkFollowUp.None, done.FollowUp);
    }

    [Fact]
    public void ChangesThatCarriedEveryColumn_OrATruncate_NeedNoRepair()
    {
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.SetChunk(1, Users(1, 2), SeesBefore100, repairKeys: null);
        window.OnLow(1);
        window.Record(100, Update(1, lacksAddress: false));
        var (rows, _, outcome) = window.OnHigh(1);
        Assert.Equal([2], rows.Select(u => u.Id));
        Assert.Equal(ChunkFollowUp.None, outcome.FollowUp);

        window.SetChunk(2, Users(3, 4), SeesBefore100, repairKeys: null);
        window.OnLow(2);
        window.Record(101, Update(3, lacksAddress: true));
        window.Record(102, new Change<User>(ChangeKind.Truncate, null, null, OldRowKind.None, ColumnSet.Empty, default, default, default, 102));
        (rows, _, outcome) = window.OnHigh(2);
        Assert.Empty(rows);
        Assert.Equal(ChunkFollowUp.None, outcome.FollowUp);
    }

    [Fact]
    public void RowsThatLeftTheTable_AreHandedBackAsDeletes_AndNeverRepaired()
    {
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.SetChunk(1, Users(1, 2, 3), SeesBefore100, repairKeys: null, asDeletes: true);
        window.OnLow(1);
        window.Record(100, Update(2, lacksAddress: true)); // the key is back in the table: the stream's change wins
        var (rows, asDeletes, outcome) = window.OnHigh(1);
        Assert.Equal([1, 3], rows.Select(u => u.Id));
        Assert.True(asDeletes);
        Assert.Equal(ChunkFollowUp.None, outcome.FollowUp);
    }

    [Fact]
    public void ChangesOlderThanTheChunk_AreIgnored_ButOnesItsSnapshotDoesNotSee_DropTheirRows()
    {
        var window = new SnapshotWindow<User>(maxChanges: 100);
        window.Record(99, Update(1, lacksAddress: true)); // before the low watermark, and visible to the chunk
        window.Record(150, Update(2, lacksAddress: true)); // before the low watermark, but not visible: newer
        window.SetChunk(1, Users(1, 2, 3), SeesBefore100, repairKeys: null);
        window.OnLow(1);
        var (rows, _, outcome) = window.OnHigh(1);
        Assert.Equal([1, 3], rows.Select(u => u.Id));
        Assert.Equal(ChunkFollowUp.Repair, outcome.FollowUp);
        Assert.Equal([150u], outcome.WaitFor);
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
                window.SetChunk(chunk, Users(1), SeesBefore100, repairKeys: null);
                window.SetChunk(chunk + windows, Users(2), SeesBefore100, repairKeys: null); // read ahead ...
                window.Discard(chunk + windows); // ... and given up
                handedIn.Release();
            }
        });

        var xid = 1_000u;
        for (var chunk = 1L; chunk <= windows; chunk++)
        {
            await handedIn.WaitAsync();
            window.OnLow(chunk);
            var first = xid;
            for (var i = 0; i < 10; i++)
                window.Record(xid++, Update(5, lacksAddress: false));
            var (_, _, outcome) = window.OnHigh(chunk);
            Assert.Equal(ChunkFollowUp.ReadAgain, outcome.FollowUp);
            // The first four changes were recorded (and the touches not seen by the chunk are kept for later windows, so
            // from the second window on none is recorded); every other transaction is handed over.
            var expected = Enumerable.Range(0, 10).Select(i => first + (uint)i).Where(x => chunk > 1 || x >= first + 4);
            Assert.Equal(expected.Order(), outcome.WaitFor.Order());
        }
        await coordinator;
    }

    private static SyncTableInfo InfoOf<T>() where T : ISyncTable<T> => T.TableInfo;

    private static List<User> Users(params int[] ids) => [.. ids.Select(id => new User { Id = id })];

    private static Change<User> Update(int id, bool lacksAddress)
    {
        var address = Array.FindIndex(InfoOf<User>().Columns.ToArray(), c => c.Name == "address");
        var unchanged = lacksAddress ? ColumnSet.Empty.Add(address) : ColumnSet.Empty;
        return new Change<User>(ChangeKind.Update, new User { Id = id }, default, OldRowKind.None, unchanged,
            default, default, default, (uint)id);
    }
}
