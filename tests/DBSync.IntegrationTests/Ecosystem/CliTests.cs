using System.Text.RegularExpressions;
using DBSync.Cli;
using DBSync.Cli.Output;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

namespace DBSync.IntegrationTests.Ecosystem;

/// <summary>
/// The <c>dbsync</c> CLI run in-process through its entry point against the test server: each command's output and exit
/// code, the failures (unknown slot, slot in use, bad connection strings, no client acting on a signal), and the
/// snapshot commands driving a running <see cref="DBSyncClient"/> through its signal table.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Ecosystem")]
public sealed partial class CliTests(PostgresFixture fixture)
{
    private const string Slot = "dbsync_test";
    private const string Password = "Secret-Pa55word";
    private const string HundredRestaurants = SnapshotControlTests.HundredRestaurants;

    internal sealed record CliRun(int ExitCode, string Out, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Out}\nstderr:\n{Error}";
    }

    internal static async Task<CliRun> RunAsync(string? connection, string[] args, string input = "", Func<string, string?>? environment = null)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var all = connection is null ? args : [.. args, "--connection", connection];
        var code = await DBSyncCli.RunAsync(all, new CliConsole(output, error, new StringReader(input), IsInteractive: false), environment ?? (_ => null));
        return new CliRun(code, output.ToString(), error.ToString());
    }

    internal static async Task<CliRun> ExpectAsync(int exitCode, string? connection, params string[] args)
    {
        var run = await RunAsync(connection, args);
        Assert.True(run.ExitCode == exitCode, $"dbsync {string.Join(' ', args)}: expected exit {exitCode}, got {run}");
        return run;
    }

    private static List<string> ReadIds(ChangeRecorder recorder)
        => recorder.Of<Restaurant>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id).ToList();

    [Fact]
    public async Task Help_ListsTheCommandsAndTheExitCodes_AndUsageErrorsExitWith2()
    {
        var help = await ExpectAsync(ExitCodes.Success, null, "--help");
        foreach (var command in new[] { "slots", "publications", "lag", "checkpoint", "snapshot", "slot" })
            Assert.Contains($"  {command} ", help.Out, StringComparison.Ordinal);
        Assert.Contains("Exit codes:", help.Out, StringComparison.Ordinal);
        Assert.Contains("5    refused: the slot is in use, or the drop was not confirmed", help.Out, StringComparison.Ordinal);

        var snapshotHelp = await ExpectAsync(ExitCodes.Success, null, "snapshot", "--help");
        foreach (var command in new[] { "start", "pause", "resume", "cancel", "progress" })
            Assert.Contains($"  {command} ", snapshotHelp.Out, StringComparison.Ordinal);

        Assert.Contains("Required command was not provided", (await ExpectAsync(ExitCodes.Usage, null)).Error, StringComparison.Ordinal);
        Assert.Contains("'nope'", (await ExpectAsync(ExitCodes.Usage, null, "nope")).Error, StringComparison.Ordinal);
        var noTables = await ExpectAsync(ExitCodes.Usage, null, "snapshot", "start");
        Assert.Contains("See 'dbsync snapshot start --help'.", noTables.Error, StringComparison.Ordinal);
        Assert.Contains("--slot", (await ExpectAsync(ExitCodes.Usage, null, "slot", "drop")).Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConnectionProblems_AreUsageOrConnectionErrors_AndNeverShowThePassword()
    {
        var missing = await ExpectAsync(ExitCodes.Usage, null, "slots");
        Assert.Contains("No connection string: pass --connection", missing.Error, StringComparison.Ordinal);
        Assert.Contains("DBSYNC_CONNECTION", missing.Error, StringComparison.Ordinal);

        var malformed = await ExpectAsync(ExitCodes.Usage, $"Host=127.0.0.1;Passwrd={Password}", "slots");
        Assert.Contains("The connection string is not valid", malformed.Error, StringComparison.Ordinal);

        var unreachable = await ExpectAsync(ExitCodes.Connection, $"Host=127.0.0.1;Port=1;Username=cdc;Password={Password};Database=app;Timeout=5", "slots");
        Assert.Contains("Cannot connect to 127.0.0.1:1 (database app, user cdc)", unreachable.Error, StringComparison.Ordinal);

        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString) { Database = "no_such_database", Password = Password };
        var noDatabase = await ExpectAsync(ExitCodes.Connection, builder.ConnectionString, "publications");
        Assert.Contains("no_such_database", noDatabase.Error, StringComparison.Ordinal);

        // The environment variable serves when --connection is absent.
        builder.Database = db.Name;
        var fromEnvironment = await RunAsync(null, ["publications"], environment: name => name == "DBSYNC_CONNECTION" ? builder.ConnectionString : null);
        Assert.True(fromEnvironment.ExitCode == ExitCodes.Success, fromEnvironment.ToString());
        Assert.Equal($"No publications in database {db.Name}.", fromEnvironment.Out.Trim());

        foreach (var run in new[] { missing, malformed, unreachable, noDatabase, fromEnvironment })
            Assert.DoesNotContain(Password, run.Out + run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlotsPublicationsAndLag_ShowARunningPipeline_AndAnUnknownSlotIsNotFound()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using (var run = await StreamRun.StartAsync(db.ConnectionString))
        {
            var slots = await ExpectAsync(ExitCodes.Success, db.ConnectionString, "slots");
            Assert.StartsWith("SLOT", slots.Out, StringComparison.Ordinal);
            // Held by the running client's replication connection: its application name and address.
            Assert.True(System.Text.RegularExpressions.Regex.IsMatch(slots.Out,
                $@"(?m)^{Slot}\s+pgoutput\s+{db.Name}\s+yes\s+\d+\s+[0-9A-F]+/[0-9A-F]+\s+\d+\s+(reserved|extended)\s+'DBSync' from (127\.0\.0\.1:\d+|a Unix socket)$"), slots.Out);

            var publications = await ExpectAsync(ExitCodes.Success, db.ConnectionString, "publications");
            Assert.Contains($"{Slot}  (insert, update, delete, truncate)\n  public.restaurant\n  public.users\n  public.visit\n",
                publications.Out.ReplaceLineEndings("\n"), StringComparison.Ordinal);
            await run.StopAsync();
        }

        // With the consumer gone, WAL written since is lag.
        await db.ExecuteAsync(HundredRestaurants);
        var expected = await db.ScalarAsync<long>($"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = '{Slot}'");
        var lag = await ExpectAsync(ExitCodes.Success, db.ConnectionString, "lag", "--slot", Slot);
        var row = LagRow().Match(lag.Out);
        Assert.True(row.Success, lag.ToString());
        Assert.Equal("no", row.Groups["active"].Value);
        Assert.InRange(long.Parse(row.Groups["bytes"].Value, System.Globalization.CultureInfo.InvariantCulture), expected, expected + 1024 * 1024);

        var unknown = await ExpectAsync(ExitCodes.NotFound, db.ConnectionString, "lag", "--slot", "no_such_slot");
        Assert.Contains("No replication slot \"no_such_slot\". Slots on this server:", unknown.Error, StringComparison.Ordinal);
        Assert.Contains(Slot, unknown.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SnapshotCommands_PauseStartResumeFollowAndCancel_ARunningClient_ThroughItsSignalTable()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync(HundredRestaurants);
        var cs = db.ConnectionString;
        await using var run = await StreamRun.StartAsync(cs, configure: o =>
        {
            o.SignalTable = "dbsync_signal";
            o.SnapshotChunkSize = 10;
            o.SnapshotParallelism = 1; // the followed progress in key order
            o.SnapshotChunkDelay = TimeSpan.FromMilliseconds(150);
        });

        // Paused, a requested snapshot stays queued.
        var pause = await ExpectAsync(ExitCodes.Success, cs, "snapshot", "pause", "--slot", Slot);
        Assert.Matches(@"^Signal \d+ sent through public\.dbsync_signal: pause\.", pause.Out);
        Assert.Contains($"Snapshots of slot \"{Slot}\" are paused", pause.Out, StringComparison.Ordinal);
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsPaused>().Any(), "the pause");
        var start = await ExpectAsync(ExitCodes.Success, cs, "snapshot", "start", "restaurant", "--slot", Slot);
        Assert.Contains("snapshot public.restaurant.", start.Out, StringComparison.Ordinal);
        Assert.Contains($"DBSync (slot \"{Slot}\"): public.restaurant is queued (position 1).", start.Out, StringComparison.Ordinal);
        var paused = await ExpectAsync(ExitCodes.Success, cs, "checkpoint", "show", "--slot", Slot);
        Assert.Contains($"Checkpoint of slot \"{Slot}\" (public.dbsync_checkpoint)", paused.Out, StringComparison.Ordinal);
        Assert.Contains("  paused                      yes", paused.Out, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^  public\.restaurant\s+queued\s+0\s+0\s+0\s+-\s+-\s+-\s+-$", paused.Out);
        await Task.Delay(300);
        Assert.Empty(ReadIds(run.Recorder));

        // Resumed, the progress bar follows it to the end.
        Assert.Contains("are resumed", (await ExpectAsync(ExitCodes.Success, cs, "snapshot", "resume", "--slot", Slot)).Out, StringComparison.Ordinal);
        var progress = await ExpectAsync(ExitCodes.Success, cs, "snapshot", "progress", "--slot", Slot);
        var lines = progress.Out.ReplaceLineEndings("\n").Trim().Split('\n');
        Assert.Equal("public.restaurant  [##############################] 100%  100 rows  10 chunks  completed", lines[^1]);
        Assert.All(lines[..^1], l => Assert.Matches(@"^public\.restaurant  (queued|\[[#.]{30}\]\s+\d+%  \d+ of ~100 rows  \d+ chunks?)$", l));
        Assert.Equal(100, ReadIds(run.Recorder).Count);
        var done = await ExpectAsync(ExitCodes.Success, cs, "checkpoint", "show", "--slot", Slot);
        Assert.Contains("Snapshot queue: empty", done.Out, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^  public\.restaurant\s+completed\s+10\s+100\s+100\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+-$", done.Out);

        // --follow: a bar per poll until the snapshot completes; a filtered one shows rows without a percentage.
        var follow = await ExpectAsync(ExitCodes.Success, cs, "snapshot", "start", "restaurant", "--slot", Slot, "--follow");
        var followed = follow.Out.ReplaceLineEndings("\n").Trim().Split('\n');
        Assert.Contains(followed, l => Regex.IsMatch(l, @"^public\.restaurant  \[#*\.+\]\s+\d{1,2}%  \d+ of ~100 rows  \d+ chunks?$"));
        Assert.Equal("public.restaurant  [##############################] 100%  100 rows  10 chunks  completed", followed[^1]);
        var filtered = await ExpectAsync(ExitCodes.Success, cs, "snapshot", "start", "restaurant", "--filter", "rating = $1", "--param", "0", "--slot", Slot, "-f");
        Assert.Matches(@"public\.restaurant  \[#{30}\] 100%  20 rows  \d chunks  completed$", filtered.Out.Trim());
        Assert.DoesNotContain(" of ~", filtered.Out, StringComparison.Ordinal);
        Assert.Equal(220, ReadIds(run.Recorder).Count);

        // Cancel in the middle: the client reports it, and progress says how it ended, with exit code 1.
        var chunksBefore = run.Recorder.Progress.OfType<SnapshotChunkCompleted>().Count();
        await ExpectAsync(ExitCodes.Success, cs, "snapshot", "start", "public.restaurant", "--slot", Slot);
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotChunkCompleted>().Count() > chunksBefore, "a chunk of the third snapshot");
        var cancel = await ExpectAsync(ExitCodes.Success, cs, "snapshot", "cancel", "restaurant", "--slot", Slot);
        Assert.Matches(@"(?m)^public\.restaurant: cancelled after \d+ rows in \d+ chunk\(s\)\.$", cancel.Out);
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotTableCancelled>().Any(), "the cancellation");
        var cancelled = await ExpectAsync(ExitCodes.Failed, cs, "snapshot", "progress", "restaurant", "--slot", Slot);
        Assert.Matches(@"^public\.restaurant  cancelled after \d+ rows  \d+ chunks?", cancelled.Out);
        Assert.InRange(ReadIds(run.Recorder).Count, 230, 310);

        // What is not there is not found; a bad signal table name is a usage error.
        Assert.Contains("Table public.no_such_table does not exist", (await ExpectAsync(ExitCodes.NotFound, cs, "snapshot", "start", "no_such_table", "--slot", Slot)).Error, StringComparison.Ordinal);
        Assert.Contains("No replication slot \"other\"", (await ExpectAsync(ExitCodes.NotFound, cs, "snapshot", "pause", "--slot", "other")).Error, StringComparison.Ordinal);
        Assert.Contains("Signal table public.other_signal does not exist", (await ExpectAsync(ExitCodes.NotFound, cs, "snapshot", "pause", "--slot", Slot, "--signal-table", "other_signal")).Error, StringComparison.Ordinal);
        Assert.Contains("--signal-table: DBSyncOptions.SignalTable 'Bad Name' is not valid", (await ExpectAsync(ExitCodes.Usage, cs, "snapshot", "pause", "--signal-table", "Bad Name")).Error, StringComparison.Ordinal);
        Assert.Contains("No checkpoint for slot \"other\"", (await ExpectAsync(ExitCodes.NotFound, cs, "checkpoint", "show", "--slot", "other")).Error, StringComparison.Ordinal);

        // With no client reading the slot, nobody acts on a signal: a timeout that says what to check. --no-wait only sends it.
        await run.StopAsync();
        var timeout = await ExpectAsync(ExitCodes.Timeout, cs, "snapshot", "resume", "--slot", Slot, "--timeout", "1");
        Assert.Contains($"Is a DBSync client running on slot \"{Slot}\" with SignalTable = \"public.dbsync_signal\"", timeout.Error, StringComparison.Ordinal);
        Assert.Matches(@"^Signal \d+ sent through public\.dbsync_signal: resume\.\s*$", (await ExpectAsync(ExitCodes.Success, cs, "snapshot", "resume", "--no-wait")).Out);
    }

    [Fact]
    public async Task CheckpointShow_LabelsThePositionSavedWithTheCheckpoint_AndShowsTheSlotsOwn_AndKeysAsValues()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("INSERT INTO restaurant (id, name) SELECT 'r-' || g, 'R' || g FROM generate_series(1, 5) g");
        var cs = db.ConnectionString;
        var pausedOnce = 0;
        await using var run = await StreamRun.StartAsync(cs, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnSnapshotProgress(p =>
            {
                if (p is SnapshotChunkCompleted && Interlocked.Exchange(ref pausedOnce, 1) == 0)
                    client.PauseSnapshots();
            });
        }, configure: o =>
        {
            o.SnapshotChunkSize = 2;
            o.StatusInterval = TimeSpan.FromSeconds(1);
        });

        // Paused in the middle: the queue shows the last and the maximum key as values.
        var snapshot = run.Client.SnapshotAsync<Restaurant>();
        await run.WaitUntilAsync(r => r.Progress.OfType<SnapshotsPaused>().Any(), "the pause after the first chunk");
        var paused = await ExpectAsync(ExitCodes.Success, cs, "checkpoint", "show", "--slot", Slot);
        Assert.Matches(@"(?m)^  public\.restaurant\s+paused\s+\d+\s+\d+\s+\d+\s+'r-\d'\s+'r-5'\s+-\s+-$", paused.Out);
        run.Client.ResumeSnapshots();
        await snapshot.WaitAsync(TimeSpan.FromSeconds(60));

        // The slot confirms later transactions; the checkpoint keeps the position of its last save.
        var saved = (await CheckpointInfo.LoadAsync(new PostgresCheckpointStore(cs), Slot))!.ConfirmedLsn;
        await db.ExecuteAsync("INSERT INTO users (id, first_name, user_name, email) VALUES (1, 'u', 'u', 'u')");
        await run.WaitUntilAsync(r => r.Of<User>().Count == 1, "the insert");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        NpgsqlTypes.NpgsqlLogSequenceNumber confirmed;
        while ((confirmed = await db.SlotConfirmedAsync(Slot)) <= saved)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the slot's confirmed position stayed at {confirmed}, the checkpoint's {saved}");
            await Task.Delay(50);
        }

        var shown = await ExpectAsync(ExitCodes.Success, cs, "checkpoint", "show", "--slot", Slot);
        var shownSaved = ShownLsn(shown.Out, "confirmed LSN when saved");
        var shownSlot = ShownLsn(shown.Out, "slot's confirmed LSN now");
        Assert.Equal((await CheckpointInfo.LoadAsync(new PostgresCheckpointStore(cs), Slot))!.ConfirmedLsn, shownSaved);
        Assert.True(shownSlot > shownSaved, $"the slot's position {shownSlot} is not past the checkpoint's {shownSaved}:\n{shown.Out}");
        var now = await db.SlotConfirmedAsync(Slot);
        Assert.True(shownSlot >= confirmed && shownSlot <= now, $"the slot's position shown, {shownSlot}, is not between {confirmed} and {now}");

        // A checkpoint whose slot is gone says so.
        await run.StopAsync();
        await db.ExecuteAsync($"SELECT pg_drop_replication_slot('{Slot}')");
        var orphan = await ExpectAsync(ExitCodes.Success, cs, "checkpoint", "show", "--slot", Slot);
        Assert.Contains("  slot's confirmed LSN now    (no such slot on this server)", orphan.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlotDrop_RefusesASlotInUse_AsksForConfirmation_AndCanDeleteTheCheckpoint()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var cs = db.ConnectionString;
        await using (var run = await StreamRun.StartAsync(cs))
        {
            await run.Client.SnapshotAsync<Restaurant>(); // leaves a checkpoint
            var pid = await db.ScalarAsync<int>($"SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{Slot}'");
            var refused = await ExpectAsync(ExitCodes.Refused, cs, "slot", "drop", "--slot", Slot, "--yes");
            Assert.Contains($"Slot \"{Slot}\" is in use by server process {pid}, application name ", refused.Error, StringComparison.Ordinal);
            Assert.Contains("refusing to drop it. Stop that consumer first", refused.Error, StringComparison.Ordinal);
            await run.StopAsync();
        }

        var declined = await RunAsync(cs, ["slot", "drop", "--slot", Slot], input: "n\n");
        Assert.True(declined.ExitCode == ExitCodes.Refused, declined.ToString());
        Assert.StartsWith($"Drop slot \"{Slot}\" of database {db.Name}? ", declined.Out, StringComparison.Ordinal);
        Assert.Contains("not confirmed (answer y, or pass --yes)", declined.Error, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Refused, (await RunAsync(cs, ["slot", "drop", "--slot", Slot], input: "")).ExitCode);
        Assert.Equal(1L, await db.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{Slot}'"));

        var dropped = await RunAsync(cs, ["slot", "drop", "--slot", Slot, "--delete-checkpoint"], input: "y\n");
        Assert.True(dropped.ExitCode == ExitCodes.Success, dropped.ToString());
        Assert.Contains($"Slot \"{Slot}\" dropped.", dropped.Out, StringComparison.Ordinal);
        Assert.Contains($"Checkpoint of slot \"{Slot}\" deleted from public.dbsync_checkpoint.", dropped.Out, StringComparison.Ordinal);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{Slot}'"));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM dbsync_checkpoint"));

        Assert.Contains($"No replication slot \"{Slot}\"", (await ExpectAsync(ExitCodes.NotFound, cs, "slot", "drop", "--slot", Slot, "--yes")).Error, StringComparison.Ordinal);
        await ExpectAsync(ExitCodes.NotFound, cs, "checkpoint", "show", "--slot", Slot);
    }

    [Fact]
    public void ProgressBar_OnATerminal_IsRedrawnInPlace()
    {
        using var output = new StringWriter();
        var view = new ProgressView(output, interactive: true);
        view.Running("public.users", 2_500, 3, 10_000, paused: false);
        view.Running("public.users", 2_500, 3, 10_000, paused: false); // unchanged: not drawn again
        view.Running("public.users", 5_000, 6, 10_000, paused: true);
        view.Finished(new FinishedSnapshot("public.users", SnapshotOutcome.Completed, 12, 10_003, 10_003, DateTime.UtcNow, null));
        var drawn = output.ToString();
        Assert.EndsWith(Environment.NewLine, drawn, StringComparison.Ordinal);
        var frames = drawn[..^Environment.NewLine.Length].Split('\r');
        Assert.Equal(
        [
            $"public.users  [{new string('#', 8)}{new string('.', 22)}]  25%  2,500 of ~10,000 rows  3 chunks",
            $"public.users  [{new string('#', 15)}{new string('.', 15)}]  50%  5,000 of ~10,000 rows  6 chunks  paused",
            $"public.users  [{new string('#', 30)}] 100%  10,003 rows  12 chunks  completed",
        ], frames.Select(f => f.TrimEnd()));
        Assert.Equal(frames[1].Length, frames[2].Length); // the shorter last frame covers the one before
    }

    private static NpgsqlTypes.NpgsqlLogSequenceNumber ShownLsn(string output, string label)
        => NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(Regex.Match(output, $@"(?m)^  {Regex.Escape(label)}\s+([0-9A-F]+/[0-9A-F]+)\s*$").Groups[1].Value);

    [GeneratedRegex(@$"(?m)^{Slot}\s+\S+\s+(?<active>yes|no)\s+[0-9A-F]+/[0-9A-F]+\s+[0-9A-F]+/[0-9A-F]+\s+(?<bytes>\d+)\s+")]
    private static partial Regex LagRow();
}
