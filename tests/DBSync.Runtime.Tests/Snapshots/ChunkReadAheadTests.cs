using DBSync.Diagnostics;
using DBSync.Mapping;
using DBSync.Sample;
using DBSync.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;

namespace DBSync.Runtime.Tests.Snapshots;

/// <summary>
/// The chunks of one table's snapshot as a state machine, with no server: the real watermark channel and DBLog window,
/// snapshot SQL over an in-memory table, and a stand-in for the stream that the test moves watermark by watermark.
/// </summary>
public sealed class ChunkReadAheadTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly List<Change<User>> _delivered = [];
    private readonly List<DeliveredChunk> _chunks = [];
    private readonly WatermarkChannel _channel = new();
    private readonly SnapshotTarget<User> _target;
    private bool _paused;

    public ChunkReadAheadTests()
    {
        _target = new SnapshotTarget<User>(() => PgTypeCatalog.BuiltIn, new PipelineTelemetry("test").ForTable("public.users"), (change, _) =>
        {
            lock (_delivered)
                _delivered.Add(change);
            return default;
        });
        _channel.StartRun();
    }

    [Fact]
    public async Task Chunks_AreReadInOrder_EachNextOneWhileTheStreamDeliversTheOneBefore()
    {
        var sql = Sql(1, 2, 3, 4, 5);
        var chunks = Chunks(sql, maxKey: "5", chunkSize: 2);
        Assert.Equal(ReadAheadState.NextChunk, chunks.State);

        Assert.Equal(ReadAheadState.Reading, await chunks.StepAsync(default).WaitAsync(Patience));
        Assert.Equal(ReadAheadState.AwaitingHigh, await chunks.StepAsync(default).WaitAsync(Patience));
        // Chunk 2 is read before the stream passed anything; its low watermark comes after chunk 1's high one.
        Assert.Equal(["L1", "read 1", "H1", "L2", "read 2"], sql.Events);

        var step = chunks.StepAsync(default).WaitAsync(Patience);
        await sql.PassAsync("L1");
        Assert.False(step.IsCompleted, "Chunk 1 counted as delivered before the stream passed its high watermark.");
        await sql.PassAsync("H1");
        Assert.Equal(ReadAheadState.NextChunk, await step.WaitAsync(Patience));
        Assert.Equal([1, 2], ReadIds());

        Assert.Equal(ReadAheadState.AwaitingHigh, await chunks.StepAsync(default).WaitAsync(Patience));
        step = chunks.StepAsync(default).WaitAsync(Patience);
        await sql.PassAsync("L2");
        await sql.PassAsync("H2");
        Assert.Equal(ReadAheadState.NextChunk, await step.WaitAsync(Patience));

        // Chunk 3 is short: the last, so nothing is read after it.
        Assert.Equal(ReadAheadState.AwaitingHigh, await chunks.StepAsync(default).WaitAsync(Patience));
        step = chunks.StepAsync(default).WaitAsync(Patience);
        await sql.PassAsync("L3");
        await sql.PassAsync("H3");
        Assert.Equal(ReadAheadState.Done, await step.WaitAsync(Patience));

        Assert.Equal(["L1", "read 1", "H1", "L2", "read 2", "H2", "L3", "read 3", "H3"], sql.Events);
        Assert.Equal([1, 2, 3, 4, 5], ReadIds());
        Assert.Equal([1L, 2, 3], _chunks.Select(c => c.Chunk));
        Assert.Equal([false, false, true], _chunks.Select(c => c.IsLast));
    }

    [Theory]
    [InlineData(new[] { 1, 2, 3, 4, 5 }, "5", 3)]    // the third chunk is short
    [InlineData(new[] { 1, 2, 3, 4, 5, 6 }, "4", 2)] // the second ends at the maximum key (5 and 6 came later, by the stream)
    public async Task LastChunk_IsFoundWithoutAnExtraRound(int[] ids, string maxKey, int chunkCount)
    {
        var sql = Sql(ids);
        sql.StartStream();
        Assert.True(await Chunks(sql, maxKey, chunkSize: 2).RunAsync(default).WaitAsync(Patience));
        await sql.StopStreamAsync();

        Assert.Equal(chunkCount, sql.Events.Count(e => e.StartsWith("read", StringComparison.Ordinal)));
        Assert.Equal(chunkCount, _chunks.Count);
        Assert.True(_chunks[^1].IsLast);
        Assert.Equal(ids.Where(id => id <= int.Parse(maxKey, System.Globalization.CultureInfo.InvariantCulture)), ReadIds());
    }

    [Fact]
    public async Task EmptyTable_HasNoChunk()
    {
        var sql = Sql();
        var chunks = Chunks(sql, maxKey: null, chunkSize: 2);
        Assert.Equal(ReadAheadState.Done, chunks.State);
        Assert.True(await chunks.RunAsync(default).WaitAsync(Patience));
        Assert.Empty(sql.Events);
    }

    [Fact]
    public async Task ChunkReadAgainAfterAnOverflow_GivesUpTheChunkReadAhead_AndWaitsForWhatNeitherWindowRecorded()
    {
        var sql = Sql(1, 2, 3, 4, 5, 6);
        // New snapshots see transaction 500 from the second look on, and 600 from the third.
        var looks = 0;
        sql.CurrentSnapshot = () => SnapshotVisibility.Parse(Interlocked.Increment(ref looks) switch { 1 => "400:400:", 2 => "501:501:", _ => "601:601:" });
        var chunks = Chunks(sql, maxKey: "6", chunkSize: 2, maxChanges: 1);
        await chunks.StepAsync(default).WaitAsync(Patience);
        Assert.Equal(ReadAheadState.AwaitingHigh, await chunks.StepAsync(default).WaitAsync(Patience));
        Assert.Equal(["L1", "read 1", "H1", "L2", "read 2"], sql.Events);

        var step = chunks.StepAsync(default).WaitAsync(Patience);
        // More changes in chunk 1's window than it keeps (one): transaction 500 is not recorded; then the same in the
        // window of chunk 2 (read ahead) with transaction 600.
        await sql.PassAsync("L1");
        _target.Record(500, Update(9));
        _target.Record(500, Update(1));
        await sql.PassAsync("H1");
        await sql.PassAsync("L2");
        _target.Record(600, Update(10));
        _target.Record(600, Update(3));
        await sql.PassAsync("H2"); // the read-ahead chunk given up: its window closes, emitting nothing
        Assert.Equal(ReadAheadState.ReadingAgain, await step.WaitAsync(Patience));
        Assert.Empty(_delivered);

        Assert.Equal(ReadAheadState.Reading, await chunks.StepAsync(default).WaitAsync(Patience));
        Assert.Equal(3, looks); // the second look saw 500 but not 600: not enough
        Assert.Equal(ReadAheadState.AwaitingHigh, await chunks.StepAsync(default).WaitAsync(Patience));
        Assert.Equal(["L1", "read 1", "H1", "L2", "read 2", "H2", "snapshot", "snapshot", "snapshot", "L3", "read 1", "H3", "L4", "read 2"], sql.Events);

        sql.StartStream();
        Assert.True(await chunks.RunAsync(default).WaitAsync(Patience));
        await sql.StopStreamAsync();
        Assert.Equal([1, 2, 3, 4, 5, 6], ReadIds());
        Assert.Equal([2, 1, 1], _chunks.Select(c => c.Attempts));
    }

    [Fact]
    public async Task ShapeChangeInAWindow_ReadsTheChunkAgain_WithNothingToWaitFor()
    {
        var sql = Sql(1, 2, 3);
        var chunks = Chunks(sql, maxKey: "3", chunkSize: 2);
        await chunks.StepAsync(default).WaitAsync(Patience);
        await chunks.StepAsync(default).WaitAsync(Patience);
        var step = chunks.StepAsync(default).WaitAsync(Patience);
        await sql.PassAsync("L1");
        _target.OnShapeChanged();
        await sql.PassAsync("H1");
        await sql.PassAsync("L2");
        await sql.PassAsync("H2");
        Assert.Equal(ReadAheadState.ReadingAgain, await step.WaitAsync(Patience));

        sql.StartStream();
        Assert.True(await chunks.RunAsync(default).WaitAsync(Patience));
        await sql.StopStreamAsync();
        Assert.DoesNotContain("snapshot", sql.Events);
        Assert.Equal(["L1", "read 1", "H1", "L2", "read 2", "H2", "L3", "read 1", "H3", "L4", "read 2", "H4"], sql.Events);
        Assert.Equal([1, 2, 3], ReadIds());
        Assert.Equal([(2, 2), (1, 1)], _chunks.Select(c => (c.Attempts, c.RowsRead)));
    }

    [Fact]
    public async Task Pause_WithAChunkReadAhead_ClosesItsWindowEmpty_AndTheNextRunReadsItAgain()
    {
        var sql = Sql(1, 2, 3, 4, 5);
        var chunks = Chunks(sql, maxKey: "5", chunkSize: 2);
        await chunks.StepAsync(default).WaitAsync(Patience);
        await chunks.StepAsync(default).WaitAsync(Patience);
        var step = chunks.StepAsync(default).WaitAsync(Patience);
        await sql.PassAsync("L1");
        await sql.PassAsync("H1");
        Assert.Equal(ReadAheadState.NextChunk, await step.WaitAsync(Patience));

        _paused = true;
        step = chunks.StepAsync(default).WaitAsync(Patience);
        await sql.PassAsync("L2");
        await sql.PassAsync("H2"); // written by the pause: the window of chunk 2 closes
        Assert.Equal(ReadAheadState.Paused, await step.WaitAsync(Patience));
        Assert.False(await chunks.RunAsync(default).WaitAsync(Patience));
        Assert.Equal(["L1", "read 1", "H1", "L2", "read 2", "H2"], sql.Events);
        Assert.Equal([1, 2], ReadIds());

        // Resumed: the table goes on after its last delivered chunk, reading chunk 2 again in a window of its own.
        _paused = false;
        var last = _chunks[^1];
        var resumed = new ChunkReadAhead(sql, _channel, Throttle, _target, FakeSnapshotSql.Query(["5"]), last.Chunk, last.LastKey, Options(2),
            () => _paused, Record, NullLogger.Instance);
        sql.StartStream();
        Assert.True(await resumed.RunAsync(default).WaitAsync(Patience));
        await sql.StopStreamAsync();
        Assert.Equal(["L3", "read 2", "H3", "L4", "read 3", "H4"], sql.Events.Skip(6));
        Assert.Equal([1, 2, 3, 4, 5], ReadIds());
        Assert.Equal([1L, 2, 3], _chunks.Select(c => c.Chunk));
    }

    [Fact]
    public async Task Cancellation_BetweenChunks_WritesNoMoreWatermarks_AndTheLowWatermarkLeftIsStaleForTheNextSnapshot()
    {
        var sql = Sql(1, 2, 3, 4, 5);
        using var cancel = new CancellationTokenSource();
        var chunks = Chunks(sql, maxKey: "5", chunkSize: 2);
        await chunks.StepAsync(cancel.Token).WaitAsync(Patience);
        await chunks.StepAsync(cancel.Token).WaitAsync(Patience);
        var step = chunks.StepAsync(cancel.Token).WaitAsync(Patience);
        await sql.PassAsync("L1");
        await sql.PassAsync("H1");
        Assert.Equal(ReadAheadState.NextChunk, await step.WaitAsync(Patience));

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => chunks.StepAsync(cancel.Token).WaitAsync(Patience));
        Assert.Equal(["L1", "read 1", "H1", "L2", "read 2"], sql.Events); // chunk 2's window never closes
        Assert.Equal([1, 2], ReadIds());

        // The next snapshot of the table: the stream reaches chunk 2's low watermark only now, and ignores it.
        _target.EndSnapshot();
        _channel.Close();
        sql.StartStream();
        Assert.True(await Chunks(sql, maxKey: "5", chunkSize: 2).RunAsync(default).WaitAsync(Patience));
        await sql.StopStreamAsync(); // would throw had the stale low watermark opened a window
        Assert.Equal([1, 2, 1, 2, 3, 4, 5], ReadIds());
    }

    [Fact]
    public async Task DeletesJob_DeliversTheRowsReadAsDeletes_ExceptThoseTheStreamChangedMeanwhile()
    {
        // Rows 1-3 left the table (a detached partition); while chunk 1 is in its window, row 2 is inserted into the
        // table again: the stream's insert wins, and no delete is delivered for it.
        var sql = Sql(1, 2, 3);
        var chunks = Chunks(sql, maxKey: "3", chunkSize: 10, deletes: true);
        await chunks.StepAsync(default).WaitAsync(Patience);
        Assert.Equal(ReadAheadState.AwaitingHigh, await chunks.StepAsync(default).WaitAsync(Patience));
        var step = chunks.StepAsync(default).WaitAsync(Patience);
        await sql.PassAsync("L1");
        _target.Record(700, new Change<User>(ChangeKind.Insert, FakeSnapshotSql.NewUser(2), default, OldRowKind.None, ColumnSet.Empty, default, default, default, 700));
        await sql.PassAsync("H1");
        Assert.Equal(ReadAheadState.Done, await step.WaitAsync(Patience));

        Assert.All(_delivered, c => Assert.Equal((ChangeKind.Delete, OldRowKind.Full), (c.Kind, c.OldRowKind)));
        Assert.Equal([(1, "address-1"), (3, "address-3")], _delivered.Select(c => (c.Old!.Id, c.Old.Address)));
        var chunk = _chunks.Single();
        Assert.Equal((1L, 3, 2, 1, true), (chunk.Chunk, chunk.RowsRead, chunk.RowsEmitted, chunk.Attempts, chunk.IsLast));
        Assert.Equal(["3"], chunk.LastKey);
    }

    private static SnapshotThrottle Throttle => new(new DBSyncOptions(), NullLogger.Instance);

    private FakeSnapshotSql Sql(params int[] ids) => new(ids, (content, tx) => _channel.OnWatermarkAsync(content.Span, tx, 0, default), _channel.OnTransactionHandled);

    /// <summary>A snapshot of the users table from its start: its window open, its chunks up to <paramref name="maxKey"/>.</summary>
    private ChunkReadAhead Chunks(FakeSnapshotSql sql, string? maxKey, int chunkSize, int maxChanges = 100, bool deletes = false)
    {
        _target.BeginSnapshot(maxChanges, _channel.Open(_target));
        return new ChunkReadAhead(sql, _channel, Throttle, _target, FakeSnapshotSql.Query(maxKey is null ? null : [maxKey], deletes), 0, null,
            Options(chunkSize), () => _paused, Record, NullLogger.Instance);
    }

    private static DBSyncOptions Options(int chunkSize) => new() { SnapshotChunkSize = chunkSize };

    private Task Record(DeliveredChunk chunk, CancellationToken cancellationToken)
    {
        _chunks.Add(chunk);
        return Task.CompletedTask;
    }

    private List<int> ReadIds()
    {
        lock (_delivered)
            return [.. _delivered.Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id)];
    }

    private static Change<User> Update(int id)
        => new(ChangeKind.Update, FakeSnapshotSql.NewUser(id), default, OldRowKind.None, ColumnSet.Empty, default, default, default, 0);
}
