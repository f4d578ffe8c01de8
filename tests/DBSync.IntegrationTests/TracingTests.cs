using System.Diagnostics;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

namespace DBSync.IntegrationTests;

/// <summary>
/// DBSync's activity source, observed with an <see cref="ActivityListener"/>: one activity per transaction, carrying the
/// transaction's id, commit and end positions and change count, and the parent of whatever its handlers trace.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Ecosystem")]
public sealed class TracingTests(PostgresFixture fixture)
{
    private static readonly ActivitySource s_handlerSource = new("DBSync.Tests.Handlers");

    /// <summary>A slot no other test uses: the listener hears every client in the process.</summary>
    private const string TracedSlot = "dbsync_traced";

    [Fact]
    public async Task EachTransaction_HasOneActivity_WithItsPositions_AndHandlerActivitiesAreItsChildren()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is DBSyncDiagnostics.ActivitySourceName or "DBSync.Tests.Handlers",
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                lock (stopped)
                    stopped.Add(activity);
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, register: (client, recorder) =>
            client.On<Restaurant>(async (change, cancellationToken) =>
            {
                using var handling = s_handlerSource.StartActivity("handle restaurant");
                handling?.SetTag("restaurant", change.New?.Id ?? change.Old!.Id);
                await Task.Yield(); // a handler that continues elsewhere stays inside its transaction's activity
                recorder.Add(change);
            }), slot: TracedSlot);

        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-1', 'a'), ('r-2', 'b')");
        await db.ExecuteAsync("UPDATE Restaurant SET rating = 1 WHERE id = 'r-1'");
        await db.ExecuteAsync("DELETE FROM Restaurant WHERE id = 'r-2'");
        await run.WaitUntilAsync(r => r.Transactions.Count == 3, "the three transactions");
        await run.StopAsync();

        List<Activity> transactions, handlers;
        lock (stopped)
        {
            // The listener hears every client in the process (other test classes run at the same time): this test's slot only.
            transactions = stopped.Where(a => a.Source.Name == DBSyncDiagnostics.ActivitySourceName && TracedSlot.Equals(a.GetTagItem(DBSyncDiagnostics.Tags.Slot))).ToList();
            handlers = stopped.Where(a => a.Source == s_handlerSource).ToList();
        }
        Assert.Equal(3, transactions.Count);
        foreach (var (tx, activity) in run.Recorder.Transactions.Zip(transactions))
        {
            Assert.Equal(DBSyncDiagnostics.TransactionActivityName, activity.OperationName);
            Assert.Equal(ActivityKind.Consumer, activity.Kind);
            Assert.Null(activity.Parent); // never under the previous transaction's
            Assert.Equal(TracedSlot, activity.GetTagItem(DBSyncDiagnostics.Tags.Slot));
            Assert.Equal((long)tx.Xid, activity.GetTagItem("dbsync.xid"));
            Assert.Equal(tx.CommitLsn.ToString(), activity.GetTagItem("dbsync.commit_lsn"));
            Assert.Equal(tx.EndLsn.ToString(), activity.GetTagItem("dbsync.end_lsn"));
            Assert.Equal(tx.ChangeCount, activity.GetTagItem("dbsync.change_count"));
        }

        // Each change's handler activity is a child of its own transaction's.
        Assert.Equal(4, handlers.Count);
        var parents = handlers.Select(h => (h.GetTagItem("restaurant"), transactions.IndexOf(h.Parent!))).ToList();
        Assert.Equal(new (object?, int)[] { ("r-1", 0), ("r-2", 0), ("r-1", 1), ("r-2", 2) }, parents);
    }
}
