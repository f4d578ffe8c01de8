using DBSync.Checkpoints;
using DBSync.Replication;
using DBSync.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;

namespace DBSync.Runtime.Tests.Snapshots;

/// <summary>The snapshot queue alone: what runs next, what signals do to it, and what its checkpoint holds.</summary>
public sealed class SnapshotQueueTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly SnapshotQueue _queue = new(new Dictionary<(string Schema, string Name), TableRegistration>(), NullLogger.Instance);

    [Fact]
    public void RequestNamingATableTwice_QueuesItOnce_AndSkipsTheSecond()
    {
        _ = _queue.RequestAsync([new SnapshotTable("users"), new SnapshotTable("public.users")], default);

        var (settled, next, paused) = _queue.TakeTurn();
        Assert.Equal("public.users", next!.State.DisplayName);
        Assert.Equal("listed more than once in one request; it is snapshotted once", Assert.Single(settled).SkipReason);
        Assert.False(paused);
        Assert.Equal(1, _queue.Count);
    }

    [Fact]
    public async Task RequestOfATableQueuedWithTheSameSettings_WaitsForTheQueuedJob()
    {
        var first = _queue.RequestAsync([new SnapshotTable("users")], default);
        var second = _queue.RequestAsync([new SnapshotTable("users")], default);
        var third = _queue.RequestAsync([new SnapshotTable("users") { Filter = "id > 10" }], default);

        Assert.Equal(2, _queue.Count);
        var job = _queue.TakeTurn().Next!;
        _queue.Finish(job, SnapshotOutcome.Completed, null);
        job.Complete(null);
        await Task.WhenAll(first, second).WaitAsync(Patience);
        Assert.False(third.IsCompleted);
    }

    [Fact]
    public void Signals_ActOnce_ATransactionReplayedAfterARestartIsIgnored()
    {
        Assert.True(_queue.ApplySignals([Signal(1, "snapshot", "orders"), Signal(2, "pause")], commitLsn: 100));
        Assert.True(_queue.Paused);
        Assert.Equal(1, _queue.Count);

        _queue.SetPaused(false);
        Assert.False(_queue.ApplySignals([Signal(1, "snapshot", "orders"), Signal(2, "pause")], commitLsn: 100));
        Assert.False(_queue.Paused);
        Assert.Equal(1, _queue.Count);

        Assert.True(_queue.ApplySignals([Signal(3, "no-such-kind"), Signal(4, "cancel", "orders")], commitLsn: 200));
        var (settled, next, _) = _queue.TakeTurn();
        Assert.Null(next);
        Assert.True(Assert.Single(settled).Cancel.IsCancellationRequested);
    }

    [Fact]
    public void DeletesJob_GoesRightAfterTheRunningTable_AndCancellingEverySnapshotLeavesItBe()
    {
        _ = _queue.RequestAsync([new SnapshotTable("users"), new SnapshotTable("orders")], default);
        var running = _queue.TakeTurn().Next!;
        _queue.BeginRunning(running, estimate: 10);
        _queue.RequestDeletesOfRowsThatLeft(Table("orders"), "public.orders_2019");
        _queue.RequestDeletesOfRowsThatLeft(Table("orders"), "public.orders_2019"); // the same job: queued once

        _queue.Cancel([]);
        _queue.EndRunning();
        var (settled, next, _) = _queue.TakeTurn();
        Assert.Equal(["public.users", "public.orders"], settled.Select(j => j.State.DisplayName));
        Assert.Equal("public.orders_2019", next!.State.DeletesFrom);
        Assert.Equal(1, _queue.Count);
    }

    [Fact]
    public void RunningProgress_IsTheShareOfTheEstimateRead_AtMostOne()
    {
        _ = _queue.RequestAsync([new SnapshotTable("users")], default);
        var job = _queue.TakeTurn().Next!;
        Assert.Null(_queue.RunningProgress);

        _queue.BeginRunning(job, estimate: 200);
        _queue.SetState(job, job.State with { RowsRead = 50 });
        Assert.Equal(("public.users", 0.25), _queue.RunningProgress!.Value);
        _queue.SetState(job, job.State with { RowsRead = 500 });
        Assert.Equal(("public.users", 1.0), _queue.RunningProgress!.Value);

        _queue.BeginRunning(job, estimate: -1); // never analyzed: no estimate
        Assert.Null(_queue.RunningProgress);
    }

    [Fact]
    public void Checkpoint_IsTakenOnlyWhenTheQueueChanged_AndLeavesSettledJobsOut()
    {
        Assert.Null(_queue.TakeUnsaved("slot", () => 7, out _));

        _ = _queue.RequestAsync([new SnapshotTable("users"), new SnapshotTable("orders")], default);
        _queue.Cancel(["orders"]);
        var checkpoint = _queue.TakeUnsaved("slot", () => 7, out var saved);
        Assert.Equal(["public.users"], checkpoint!.Jobs.Select(j => j.DisplayName));
        Assert.Equal(("slot", 7UL), (checkpoint.Slot, checkpoint.ConfirmedLsn));
        Assert.Null(_queue.TakeUnsaved("slot", () => 7, out _));

        Assert.False(saved.Single().Saved);
        _queue.MarkSaved(saved);
        Assert.True(saved.Single().Saved);
    }

    [Fact]
    public async Task Restore_PutsTheCheckpointsJobsFirst_AndARequestOfOneOfThemWaitsForIt()
    {
        var request = _queue.RequestAsync([new SnapshotTable("orders"), new SnapshotTable("users")], default);
        var inProgress = new JobState { Schema = "public", Name = "users", Started = true, Chunks = 3, LastKey = ["30"] };
        _queue.Restore(new Checkpoint { Slot = "slot", Paused = true, LastSignalLsn = 100, Jobs = [inProgress] });

        Assert.True(_queue.Paused);
        Assert.False(_queue.ApplySignals([Signal(1, "resume")], commitLsn: 100)); // replayed
        _queue.SetPaused(false);
        var users = _queue.TakeTurn().Next!;
        Assert.Equal((3L, true), (users.State.Chunks, users.State.Started));
        Assert.Equal(["30"], users.State.LastKey!);
        Assert.Single(users.Waiters);
        Assert.Equal(2, _queue.Count);

        _queue.Finish(users, SnapshotOutcome.Completed, null);
        users.Complete(null);
        var orders = _queue.TakeTurn().Next!;
        Assert.Equal("public.orders", orders.State.DisplayName);
        _queue.Finish(orders, SnapshotOutcome.Completed, null);
        Assert.False(request.IsCompleted); // orders is not complete yet
        orders.Complete(null);
        await request.WaitAsync(Patience);
    }

    private static Signal Signal(long id, string kind, params string[] tables) => new(id, kind, tables, null, [], null);

    private static SyncTableInfo Table(string name)
        => new("public", name, typeof(object), [new SyncColumnInfo("id", "Id", SyncColumnType.Int64, isNullable: false, keyOrder: 0)]);
}
