using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>
/// A slot that is gone while the pipeline's checkpoint shows it had streamed (dropped while DBSync was down, or a failover
/// to a standby without a copy of it): a new slot would silently miss the deletes in between, so the run refuses, and
/// starts over (new slot, full snapshot, <see cref="SlotStartedOver"/>) only when asked.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Reliability")]
public sealed class SlotLossTests(PostgresFixture fixture)
{
    [Fact]
    public async Task SlotDroppedWhileStopped_NextRunRefuses_StartOverRecreatesItWithAFullSnapshot()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-1', 'one'), ('r-2', 'two')");
        NpgsqlTypes.NpgsqlLogSequenceNumber confirmed;
        await using (var first = await StreamRun.StartAsync(db.ConnectionString))
        {
            await db.ExecuteAsync("UPDATE restaurant SET name = 'two!' WHERE id = 'r-2'");
            await first.WaitUntilAsync(r => r.Transactions.Count == 1, "the update");
            // The pipeline never snapshotted: its checkpoint still records that it streamed, once it is streaming.
            await WaitForCheckpointAsync(db);
            await first.StopAsync();
            confirmed = first.Client.ConfirmedLsn;
        }

        // The slot is dropped while DBSync is down; meanwhile a row is deleted (a change no snapshot can bring back).
        await db.ExecuteAsync("SELECT pg_drop_replication_slot('dbsync_test')");
        await db.ExecuteAsync("DELETE FROM restaurant WHERE id = 'r-1'; INSERT INTO restaurant (id, name) VALUES ('r-3', 'three')");

        var refused = await Assert.ThrowsAsync<SlotLostException>(() => StreamRun.StartAsync(db.ConnectionString));
        Assert.Equal("dbsync_test", refused.Slot);
        Assert.True(NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(refused.ConfirmedLsn) > default(NpgsqlTypes.NpgsqlLogSequenceNumber), refused.Message);
        Assert.True(NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(refused.ConfirmedLsn) <= confirmed, $"{refused.ConfirmedLsn} is past {confirmed}");
        Assert.Contains("no longer exists", refused.Message, StringComparison.Ordinal);
        Assert.Contains("deletes", refused.Message, StringComparison.Ordinal);
        Assert.Contains("WhenSlotLost = SlotLost.StartOver", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbsync_test'"));

        // Asked to start over: a new slot, SlotStartedOver before anything else, then every table's rows as they are now.
        var logs = new LogCapture();
        await using (var over = await StreamRun.StartAsync(db.ConnectionString, configure: o =>
                     {
                         o.WhenSlotLost = SlotLost.StartOver;
                         o.LoggerFactory = logs;
                     }))
        {
            await over.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the full snapshot after starting over");
            var startedOver = Assert.IsType<SlotStartedOver>(over.Recorder.Progress[0]);
            Assert.Equal(refused.ConfirmedLsn, startedOver.LastConfirmedLsn);
            Assert.Equal("dbsync_test", startedOver.Slot);
            Assert.True(logs.Has(2032), "The start-over was not logged as a warning.");
            Assert.Equal(["r-2", "r-3"], over.Recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id).Order());
            Assert.Equal(3, over.Recorder.Progress.OfType<SnapshotTableStarted>().Count()); // every registered table
            await over.StopAsync();
        }

        // The new slot streamed: a later run with the default (Fail) continues from it, with no new snapshot.
        await using var later = await StreamRun.StartAsync(db.ConnectionString);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-4', 'four')");
        await later.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "r-4"), "the insert after starting over");
        Assert.Empty(later.Recorder.Progress.OfType<SlotStartedOver>());
        Assert.DoesNotContain(later.Recorder.Of<Restaurant>(), c => c.Kind == ChangeKind.Read);
        await later.StopAsync();
    }

    [Fact]
    public async Task SlotDroppedWhileStreaming_WithStartOver_TheRunGoesOnOnANewSlotWithAFullSnapshot()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-1', 'one')");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o =>
        {
            o.WhenSlotLost = SlotLost.StartOver;
            o.ReconnectDelay = TimeSpan.FromMilliseconds(200);
        });
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-2', 'two')");
        await run.WaitUntilAsync(r => r.Transactions.Count == 1, "the first insert");
        await WaitForCheckpointAsync(db);

        // Somebody drops the slot under the running client (its walsender has to go first; the client may reconnect
        // in between, so terminate and retry as an operator would).
        for (var attempt = 0; ; attempt++)
        {
            await db.ExecuteAsync(ReliabilityTests.TerminateWalSender);
            try
            {
                await db.ExecuteAsync("SELECT pg_drop_replication_slot('dbsync_test')");
                break;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 50)
            {
                await Task.Delay(20);
            }
        }
        await db.ExecuteAsync("DELETE FROM restaurant WHERE id = 'r-1'");

        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsCompleted>().Any(), "the full snapshot after the slot was replaced");
        Assert.False(run.Run.IsCompleted);
        var startedOver = Assert.Single(run.Recorder.Progress.OfType<SlotStartedOver>());
        Assert.Contains("no longer exists", startedOver.Reason, StringComparison.Ordinal);
        Assert.Equal(["r-2"], run.Recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id));
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-3', 'three')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "r-3"), "an insert on the new slot");
        await run.StopAsync();
    }

    [Fact]
    public async Task FailoverSlot_OnAServerBefore17_IsRefusedBeforeAnythingIsCreated()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        if (await db.ScalarAsync<int>("SELECT current_setting('server_version_num')::int") >= 170000)
            return; // the PostgreSQL 17 tests create failover slots; this server has them
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => StreamRun.StartAsync(db.ConnectionString, configure: o => o.FailoverSlot = true));
        Assert.Contains("FailoverSlot needs PostgreSQL 17", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbsync_test'"));
    }

    [Fact]
    public async Task ARoleThatCannotCreateTheCheckpointTable_StillStreams_TheMissingRecordIsLogged()
    {
        var role = $"limited_{Guid.NewGuid():N}"[..20];
        var db = await TestDatabase.CreateAsync(fixture.Server);
        try
        {
            // LOGIN REPLICATION, SELECT on the tables, a publication made for it; no CREATE on schema public (15's default).
            await db.ExecuteAsync($"CREATE ROLE {role} LOGIN REPLICATION; GRANT SELECT ON users, restaurant, visit TO {role}; " +
                                  "CREATE PUBLICATION dbsync_test FOR TABLE users, restaurant, visit; REVOKE CREATE ON SCHEMA public FROM PUBLIC");
            var logs = new LogCapture();
            await using var run = await StreamRun.StartAsync(fixture.Server.ConnectionStringFor(db.Name, username: role), configure: o => o.LoggerFactory = logs);
            Assert.True(logs.Has(4003), "The checkpoint the new slot could not record was not logged.");
            await db.ExecuteAsync("INSERT INTO restaurant (id, name) VALUES ('r-1', 'one')");
            await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New?.Id == "r-1"), "the insert");
            await run.StopAsync();
        }
        finally
        {
            await db.DisposeAsync();
            await fixture.Server.ExecuteAsync($"DROP ROLE IF EXISTS {role}");
        }
    }

    /// <summary>Waits until the pipeline's checkpoint is saved (its slot's start, recorded when DBSync created it).</summary>
    private static async Task WaitForCheckpointAsync(TestDatabase db)
    {
        for (var attempt = 0; attempt < 300; attempt++)
        {
            if (await db.ScalarAsync<bool>("SELECT to_regclass('dbsync_checkpoint') IS NOT NULL") &&
                await db.ScalarAsync<long>("SELECT count(*) FROM dbsync_checkpoint WHERE slot_name = 'dbsync_test'") == 1)
                return;
            await Task.Delay(100);
        }
        Assert.Fail("The pipeline's checkpoint was not written while it streamed.");
    }
}
