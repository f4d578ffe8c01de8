using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using DBSync.IntegrationTests.Infrastructure;
using Npgsql;
using NpgsqlTypes;
using Xunit.Abstractions;

namespace DBSync.IntegrationTests;

/// <summary>
/// A consumer process (tests/DBSync.CrashConsumer) is killed with SIGKILL at random moments while writers run and its
/// initial snapshot is in progress, and restarted each time; at the end its replica database must equal the source,
/// and the effectively-once applier it uses must have applied every change once, though the stream delivered some
/// transactions more than once.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Reliability")]
public sealed class CrashTests(PostgresFixture fixture, ITestOutputHelper output)
{
    /// <summary>The consumer's replica tables (tests/DBSync.CrashConsumer/replica-schema.sql).</summary>
    private static string ReplicaSchema => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "replica-schema.sql"));

    [Fact]
    public async Task ConsumerKilledTenTimes_ReplicaEqualsSource_EveryTransactionDelivered_RepeatsOnlyAfterTheConfirmedPosition()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var replica = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await replica.ExecuteAsync(ReplicaSchema);
        await source.ExecuteAsync("""
            INSERT INTO users (first_name, user_name, email, date_of_birth, interests)
                SELECT 'f' || i, 'u' || i, 'e' || i, DATE '1980-01-01' + i, ARRAY['a', 'b' || i] FROM generate_series(1, 200) i;
            INSERT INTO restaurant (id, name, rating, tags) SELECT 'r-' || i, 'n' || i, i % 5, ARRAY['t'] FROM generate_series(1, 60) i;
            INSERT INTO visit (user_id, restaurant_id, amount_spent) SELECT (i % 200) + 1, 'r-' || ((i % 60) + 1), i * 1.25 FROM generate_series(1, 300) i
                ON CONFLICT DO NOTHING;
            """);

        var log = Path.Combine(Path.GetTempPath(), $"dbsync-crash-{Guid.NewGuid():N}.log");
        // Transactions that begin once the slot is consistent must each be delivered; earlier ones reach the replica
        // through the initial snapshot only.
        var committed = new ConcurrentBag<uint>();
        using var stopWriters = new CancellationTokenSource();
        var writers = StartWriters(source, committed, stopWriters.Token);
        var random = new Random(20261124);
        var confirmedAtKill = new List<NpgsqlLogSequenceNumber?>();
        try
        {
            for (var run = 0; run < 10; run++)
            {
                using var consumer = Consumer.Start(source, replica, log, run);
                // Every other run is killed at a random moment of its start-up or first seconds; the others only once they
                // deliver, so that kills land between deliveries and their confirmations however slowly a loaded
                // machine starts a process.
                if (run % 2 == 1)
                    await WaitForFirstDeliveryAsync(log, run, consumer);
                await Task.Delay(random.Next(300, 2500));
                consumer.AssertRunning();
                await consumer.KillAsync();
                confirmedAtKill.Add(await ConfirmedAfterReleaseAsync(source));
            }

            await stopWriters.CancelAsync();
            await Task.WhenAll(writers);

            // The last run catches up with everything and finishes the snapshot.
            using (var last = Consumer.Start(source, replica, log, 10))
            {
                var deadline = DateTime.UtcNow.AddSeconds(120);
                while (!await SameRowsAsync(source, replica))
                {
                    last.AssertRunning();
                    Assert.True(DateTime.UtcNow < deadline, "The replica did not converge to the source within 120 s of the last start.");
                    await Task.Delay(250);
                }
                await last.KillAsync();
            }

            var delivered = (await File.ReadAllLinesAsync(log)).Select(line => line.Split(' '))
                .Select(f => (Run: int.Parse(f[0], CultureInfo.InvariantCulture), Xid: uint.Parse(f[1], CultureInfo.InvariantCulture), Commit: NpgsqlLogSequenceNumber.Parse(f[2])))
                .ToList();
            var missing = committed.Except(delivered.Select(d => d.Xid)).Order().ToList();
            Assert.True(missing.Count == 0, $"{missing.Count} committed transaction(s) never delivered, e.g. xid {string.Join(", ", missing.Take(5))}.");
            // Effectively once: every committed transaction reached the replica through the applier, and no change twice
            // (applied_change's key is the change's WAL position; a second apply would have failed the consumer).
            var applied = (await replica.RowsAsync("SELECT DISTINCT xid::text FROM applied_change")).Select(x => uint.Parse(x, CultureInfo.InvariantCulture)).ToHashSet();
            var notApplied = committed.Where(x => !applied.Contains(x)).Order().ToList();
            Assert.True(notApplied.Count == 0, $"{notApplied.Count} committed transaction(s) never applied, e.g. xid {string.Join(", ", notApplied.Take(5))}.");
            var redelivered = delivered.GroupBy(d => d.Xid).Count(g => g.Count() > 1);
            Assert.True(redelivered > 0, "No transaction was delivered twice: the kills never fell between a delivery and its confirmation.");
            Assert.True(committed.Count > 100, $"The writers committed only {committed.Count} transactions after the slot was created.");
            for (var run = 1; run <= 10; run++)
            {
                if (confirmedAtKill[run - 1] is not { } confirmed)
                    continue; // killed before its slot existed
                var early = delivered.Where(d => d.Run == run && d.Commit < confirmed).ToList();
                Assert.True(early.Count == 0, $"Run {run} delivered {early.Count} transaction(s) the slot had confirmed before (at {confirmed}).");
            }
            Assert.True(delivered.Select(d => d.Run).Distinct().Count() >= 5, "Fewer than 5 runs got as far as delivering a transaction.");
        }
        finally
        {
            await stopWriters.CancelAsync();
            await Task.WhenAll(writers);
            File.Delete(log);
            await source.ExecuteAsync("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'dbsync_crash' AND NOT active");
        }
    }

    /// <summary>
    /// Issue 19's acceptance: three instances standing by for one slot (<see cref="SlotInUse.Wait"/>, separate processes)
    /// while writers run and the initial snapshot is in progress. Twenty times, the active one (the process that delivered
    /// last) is killed with SIGKILL, another must take over, and a new process is started so that three are alive again.
    /// At the end the replica equals the source; every committed transaction was applied, none twice (applied_change's key
    /// is the change's WAL position); the snapshot went on across take-overs (resumed, never started over) and completed;
    /// and the processes' delivery intervals, [first, last] by the clock they all read, never overlap: no two delivered
    /// at the same time.
    /// </summary>
    [Fact]
    [Trait("Category", "Standby")]
    public async Task ThreeInstances_ActiveKilledTwentyTimes_DuringTheSnapshot_ReplicaEqualsSource_EachChangeAppliedOnce_NeverTwoDelivering()
    {
        const int Kills = 20;
        const int Restaurants = 2500; // with 10-row chunks 50 ms apart, the snapshot spans several kills
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var replica = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await replica.ExecuteAsync(ReplicaSchema);
        await source.ExecuteAsync($"INSERT INTO restaurant (id, name, rating, tags) SELECT 'r-' || i, 'n' || i, i % 5, ARRAY['t'] FROM generate_series(1, {Restaurants}) i");
        var log = Path.Combine(Path.GetTempPath(), $"dbsync-standby-{Guid.NewGuid():N}.log");
        var events = Path.Combine(Path.GetTempPath(), $"dbsync-standby-{Guid.NewGuid():N}.events");
        var committed = new ConcurrentBag<uint>();
        using var stopWriters = new CancellationTokenSource();
        var writers = StartWriters(source, committed, stopWriters.Token);
        var alive = new List<Consumer>();
        var killed = new HashSet<int>();
        var takeovers = new List<double>();
        var random = new Random(20261203);
        var clock = Stopwatch.StartNew();
        try
        {
            for (var run = 0; run < 3; run++)
                alive.Add(Consumer.Start(source, replica, log, run, standBy: true, events));
            var nextRun = 3;
            // The kills begin once one instance delivers and the snapshot has started.
            await WaitUntilAsync(async () => (await ReadDeliveriesAsync(log)).Count > 0
                && (await ReadEventsAsync(events)).Any(e => e.Text.StartsWith("snapshot SnapshotChunkCompleted", StringComparison.Ordinal)),
                alive, "a delivery and a snapshot chunk", TimeSpan.FromSeconds(60));
            var snapshotDoneAtKill = 0;
            for (var kill = 1; kill <= Kills; kill++)
            {
                await Task.Delay(random.Next(200, 1200)); // the kills land at random points of the stream and the snapshot
                alive.ForEach(c => c.AssertRunning());
                Assert.Equal(3, alive.Count);
                var deliveries = await ReadDeliveriesAsync(log);
                var active = alive.SingleOrDefault(c => c.ProcessId == deliveries[^1].Pid);
                Assert.True(active is not null, $"The last delivery came from process {deliveries[^1].Pid}, not one of the three alive.");
                if (snapshotDoneAtKill == 0 && (await ReadEventsAsync(events)).Any(e => e.Text.StartsWith("snapshot SnapshotsCompleted", StringComparison.Ordinal)))
                    snapshotDoneAtKill = kill;
                var killedAt = DateTime.UtcNow.Ticks;
                await active.KillAsync();
                killed.Add(active.ProcessId);
                alive.Remove(active);
                active.Dispose();

                // The next active one: the first delivery of a process not killed (only the active one delivers).
                var next = default(Delivery);
                await WaitUntilAsync(async () =>
                {
                    next = (await ReadDeliveriesAsync(log)).FirstOrDefault(d => !killed.Contains(d.Pid));
                    return next is not null;
                }, alive, $"a take-over after kill {kill}", TimeSpan.FromSeconds(30));
                takeovers.Add((next!.Ticks - killedAt) / (double)TimeSpan.TicksPerSecond);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"kill {kill,2} at {clock.Elapsed.TotalSeconds,6:F1} s: run {active.Run} (pid {active.ProcessId}) killed; run {alive.Single(c => c.ProcessId == next.Pid).Run} (pid {next.Pid}) delivered {takeovers[^1]:F2} s later"));

                var replacement = Consumer.Start(source, replica, log, nextRun++, standBy: true, events);
                alive.Add(replacement);
                await WaitUntilAsync(async () => (await ReadEventsAsync(events)).Any(e => e.Pid == replacement.ProcessId && e.Text == "role Standby"),
                    alive, $"run {replacement.Run} standing by", TimeSpan.FromSeconds(60));
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"take-over seconds (kill to the next instance's first delivery): {string.Join(", ", takeovers.Select(s => s.ToString("0.00", CultureInfo.InvariantCulture)))}; median {takeovers.Order().ElementAt(takeovers.Count / 2):F2}, max {takeovers.Max():F2}"));

            await stopWriters.CancelAsync();
            await Task.WhenAll(writers);
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (!await SameRowsAsync(source, replica))
            {
                alive.ForEach(c => c.AssertRunning());
                Assert.True(DateTime.UtcNow < deadline, "The replica did not converge to the source within 120 s of the writers' end.");
                await Task.Delay(250);
            }
            alive.ForEach(c => c.AssertRunning());
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"converged at {clock.Elapsed.TotalSeconds:F1} s; {committed.Count} transactions committed after the slot was consistent"));

            // Every committed transaction applied; none twice (a second insert into applied_change would have failed
            // its consumer, which AssertRunning reports).
            var applied = (await replica.RowsAsync("SELECT DISTINCT xid::text FROM applied_change")).Select(x => uint.Parse(x, CultureInfo.InvariantCulture)).ToHashSet();
            var notApplied = committed.Where(x => !applied.Contains(x)).Order().ToList();
            Assert.True(notApplied.Count == 0, $"{notApplied.Count} committed transaction(s) never applied, e.g. xid {string.Join(", ", notApplied.Take(5))}.");
            Assert.True(committed.Count > 200, $"The writers committed only {committed.Count} transactions after the slot was created.");
            Assert.Equal(await replica.ScalarAsync<long>("SELECT count(*) FROM applied_change"), await replica.ScalarAsync<long>("SELECT count(DISTINCT lsn) FROM applied_change"));

            // No overlap: ordered by their first delivery, each process's last delivery comes before the next one's first.
            var all = await ReadDeliveriesAsync(log);
            var intervals = all.GroupBy(d => d.Pid).Select(g => (Pid: g.Key, First: g.Min(d => d.Ticks), Last: g.Max(d => d.Ticks), Count: g.Count()))
                .OrderBy(i => i.First).ToList();
            Assert.Equal(Kills + 1, intervals.Count); // each killed process delivered, then the last one
            foreach (var (earlier, later) in intervals.Zip(intervals.Skip(1)))
                Assert.True(earlier.Last < later.First,
                    $"Process {later.Pid} delivered at {new DateTime(later.First):HH:mm:ss.fffffff}, before process {earlier.Pid}'s last delivery at {new DateTime(earlier.Last):HH:mm:ss.fffffff}: two instances delivered at once.");

            // The snapshot: started from its beginning only until a chunk of it was saved, resumed by the instances that
            // took over after that, completed.
            var progress = (await ReadEventsAsync(events)).Where(e => e.Text.StartsWith("snapshot ", StringComparison.Ordinal)).ToList();
            var fresh = progress.Where(e => e.Text.StartsWith("snapshot SnapshotTableStarted public.restaurant False", StringComparison.Ordinal)).ToList();
            Assert.True(fresh.Count >= 1, "restaurant's snapshot was never reported started from its beginning.");
            // Chunk 2's report comes after chunk 1 was saved: from then on every instance continues, none starts over.
            var chunks = progress.Where(e => e.Text.StartsWith("snapshot SnapshotChunkCompleted public.restaurant ", StringComparison.Ordinal))
                .Select(e => (Event: e, Number: long.Parse(e.Text.Split(' ')[^1], CultureInfo.InvariantCulture))).ToList();
            var secondChunk = chunks.First(c => c.Number >= 2).Event;
            Assert.True(fresh.All(f => f.Ticks < secondChunk.Ticks),
                $"restaurant's snapshot started from its beginning (process {fresh[^1].Pid}) after its chunks were saved (process {secondChunk.Pid} reported chunk 2).");
            // Each instance's start says what it then reads: from its beginning, chunk 1; resumed, after the last saved chunk.
            foreach (var start in progress.Where(e => e.Text.StartsWith("snapshot SnapshotTableStarted public.restaurant ", StringComparison.Ordinal)))
            {
                var firstChunk = chunks.Where(c => c.Event.Pid == start.Pid && c.Event.Ticks >= start.Ticks).Select(c => c.Number).FirstOrDefault();
                if (firstChunk == 0)
                    continue; // killed before it delivered a chunk
                var resumed = start.Text.EndsWith(" True", StringComparison.Ordinal);
                Assert.True(resumed == firstChunk > 1, $"Process {start.Pid} reported \"{start.Text}\", then chunk {firstChunk} first.");
            }
            var resumedBy = progress.Where(e => e.Text.StartsWith("snapshot SnapshotTableStarted public.restaurant True", StringComparison.Ordinal)).Select(e => e.Pid).Distinct().Count();
            var chunkProcesses = progress.Where(e => e.Text.StartsWith("snapshot SnapshotChunkCompleted public.restaurant", StringComparison.Ordinal)).Select(e => e.Pid).Distinct().Count();
            Assert.True(chunkProcesses >= 3, $"restaurant's snapshot chunks were read by {chunkProcesses} process(es): the snapshot did not span two take-overs.");
            Assert.True(resumedBy >= chunkProcesses - 1, $"{chunkProcesses} processes read restaurant's chunks, but only {resumedBy} resumed its snapshot.");
            Assert.Contains(progress, e => e.Text.StartsWith("snapshot SnapshotTableCompleted public.restaurant", StringComparison.Ordinal));
            Assert.Contains(progress, e => e.Text.StartsWith("snapshot SnapshotsCompleted", StringComparison.Ordinal));
            output.WriteLine($"restaurant's snapshot: chunks read by {chunkProcesses} processes, resumed by {resumedBy}; done before kill {(snapshotDoneAtKill == 0 ? "- (after the last)" : snapshotDoneAtKill)}");
            Assert.True(snapshotDoneAtKill is 0 or > 3, $"The snapshot was done before kill {snapshotDoneAtKill}: it did not span several kills.");
        }
        finally
        {
            alive.ForEach(c => c.Dispose());
            await stopWriters.CancelAsync();
            await Task.WhenAll(writers);
            File.Delete(log);
            File.Delete(events);
            await source.ExecuteAsync("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'dbsync_crash' AND NOT active");
        }
    }

    /// <summary>A delivered transaction, as a consumer logs it.</summary>
    private sealed record Delivery(int Run, uint Xid, string Commit, long Ticks, int Pid);

    /// <summary>A line of the consumers' events file (role changes, snapshot progress).</summary>
    private sealed record ConsumerEvent(int Run, int Pid, long Ticks, string Text);

    private static async Task<List<Delivery>> ReadDeliveriesAsync(string log)
        => [.. (await ReadWholeLinesAsync(log)).Select(line => line.Split(' ')).Select(f => new Delivery(
            int.Parse(f[0], CultureInfo.InvariantCulture), uint.Parse(f[1], CultureInfo.InvariantCulture), f[2],
            long.Parse(f[3], CultureInfo.InvariantCulture), int.Parse(f[4], CultureInfo.InvariantCulture)))];

    private static async Task<List<ConsumerEvent>> ReadEventsAsync(string events)
        => [.. (await ReadWholeLinesAsync(events)).Select(line => line.Split(' ', 4)).Select(f => new ConsumerEvent(
            int.Parse(f[0], CultureInfo.InvariantCulture), int.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[2], CultureInfo.InvariantCulture), f[3]))];

    /// <summary>The file's complete lines (a line being written, not yet ended, is left for the next read).</summary>
    private static async Task<List<string>> ReadWholeLinesAsync(string path)
    {
        if (!File.Exists(path))
            return [];
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(file);
        var text = await reader.ReadToEndAsync();
        return [.. text[..(text.LastIndexOf('\n') + 1)].Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }

    /// <summary>Waits until <paramref name="condition"/> holds, every 20 ms, failing if a consumer exits meanwhile.</summary>
    private static async Task WaitUntilAsync(Func<Task<bool>> condition, List<Consumer> consumers, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            consumers.ForEach(c => c.AssertRunning());
            Assert.True(DateTime.UtcNow < deadline, $"No {what} within {timeout.TotalSeconds:F0} s.");
            await Task.Delay(20);
        }
    }

    private static async Task<List<string>> ReadLogAsync(string log)
    {
        if (!File.Exists(log))
            return [];
        await using var file = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(file);
        return [.. (await reader.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }

    /// <summary>One run of tests/DBSync.CrashConsumer in its own process; its standard error is collected as it comes so
    /// that a full pipe never blocks it.</summary>
    private sealed class Consumer : IDisposable
    {
        private readonly Process _process;
        private readonly System.Text.StringBuilder _errors = new();
        private readonly int _run;

        private Consumer(Process process, int run)
        {
            _process = process;
            _run = run;
        }

        public int Run => _run;

        public int ProcessId { get; private set; }

        public static Consumer Start(TestDatabase source, TestDatabase replica, string log, int run, bool standBy = false, string? events = null)
        {
            // tests/DBSync.IntegrationTests/bin/<configuration>/net10.0/ -> tests/DBSync.CrashConsumer/bin/<configuration>/net10.0/
            var dll = Path.Combine(AppContext.BaseDirectory.Replace("DBSync.IntegrationTests", "DBSync.CrashConsumer", StringComparison.Ordinal), "DBSync.CrashConsumer.dll");
            Assert.True(File.Exists(dll), $"{dll} is missing; build tests/DBSync.CrashConsumer.");
            var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true };
            start.ArgumentList.Add(dll);
            start.Environment["DBSYNC_CRASH_SOURCE"] = source.ConnectionString;
            start.Environment["DBSYNC_CRASH_REPLICA"] = replica.ConnectionString;
            start.Environment["DBSYNC_CRASH_LOG"] = log;
            start.Environment["DBSYNC_CRASH_RUN"] = run.ToString(CultureInfo.InvariantCulture);
            start.Environment["DBSYNC_CRASH_STANDBY"] = standBy ? "1" : "0";
            if (events is not null)
                start.Environment["DBSYNC_CRASH_EVENTS"] = events;
            var consumer = new Consumer(Process.Start(start) ?? throw new InvalidOperationException("Could not start the crash consumer."), run);
            consumer.ProcessId = consumer._process.Id;
            consumer._process.ErrorDataReceived += (_, e) =>
            {
                lock (consumer._errors)
                    consumer._errors.AppendLine(e.Data);
            };
            consumer._process.BeginErrorReadLine();
            return consumer;
        }

        public void AssertRunning()
        {
            if (!_process.HasExited)
                return;
            _process.WaitForExit(); // drains the standard error reader
            lock (_errors)
                Assert.Fail($"Consumer run {_run} exited by itself with code {_process.ExitCode}: {_errors}");
        }

        /// <summary>SIGKILL: no finally block, no final status update.</summary>
        public async Task KillAsync()
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        public void Dispose()
        {
            if (!_process.HasExited)
                _process.Kill();
            _process.Dispose();
        }
    }

    /// <summary>Waits until run <paramref name="run"/> has logged a delivered transaction.</summary>
    private static async Task WaitForFirstDeliveryAsync(string log, int run, Consumer consumer)
    {
        var prefix = run.ToString(CultureInfo.InvariantCulture) + " ";
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            consumer.AssertRunning();
            if ((await ReadLogAsync(log)).Any(line => line.StartsWith(prefix, StringComparison.Ordinal)))
                return;
            Assert.True(DateTime.UtcNow < deadline, $"Consumer run {run} delivered nothing within 60 s of its start.");
            await Task.Delay(100);
        }
    }

    /// <summary>Once the killed consumer's walsender let go of the slot: its confirmed position (null: no slot yet).</summary>
    private static async Task<NpgsqlLogSequenceNumber?> ConfirmedAfterReleaseAsync(TestDatabase source)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            await using var connection = await source.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'dbsync_crash'", connection);
            await using var reader = await command.ExecuteReaderAsync();
            if (!await reader.ReadAsync())
                return null;
            if (!reader.GetBoolean(0))
                return reader.IsDBNull(1) ? null : NpgsqlLogSequenceNumber.Parse(reader.GetString(1));
            await Task.Delay(50);
        }
        throw new InvalidOperationException("The killed consumer's slot stayed active for 10 s.");
    }

    private static async Task<bool> SameRowsAsync(TestDatabase source, TestDatabase replica)
    {
        foreach (var (table, order) in new[] { ("users", "id"), ("restaurant", "id"), ("visit", "user_id, restaurant_id") })
        {
            var sql = $"SELECT t::text FROM {table} t ORDER BY {order}";
            if (!(await source.RowsAsync(sql)).SequenceEqual(await replica.RowsAsync(sql)))
                return false;
        }
        return true;
    }

    /// <summary>Two writers of random transactions and the watch that tells them when the slot is consistent: the xids
    /// of the transactions committed after that, which must each be delivered, go into <paramref name="committed"/>.</summary>
    private static Task[] StartWriters(TestDatabase source, ConcurrentBag<uint> committed, CancellationToken stop)
    {
        var slotConsistent = new TaskCompletionSource();
        return Enumerable.Range(1, 2)
            .Select(seed => Task.Run(() => WriteAsync(source.ConnectionString, seed, slotConsistent.Task, committed, stop)))
            .Append(Task.Run(() => AwaitSlotConsistentAsync(source, slotConsistent, stop)))
            .ToArray();
    }

    /// <summary>Completes once the consumer's slot has a confirmed position: its creation has found a consistent point,
    /// and every transaction that begins after that is decoded.</summary>
    private static async Task AwaitSlotConsistentAsync(TestDatabase source, TaskCompletionSource consistent, CancellationToken stop)
    {
        await using var connection = await source.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'dbsync_crash' AND confirmed_flush_lsn IS NOT NULL)", connection);
        while (!stop.IsCancellationRequested)
        {
            if ((bool)(await command.ExecuteScalarAsync(CancellationToken.None))!)
            {
                consistent.SetResult();
                return;
            }
            await Task.Delay(10, CancellationToken.None);
        }
    }

    /// <summary>Random small transactions on the three tables (inserts, updates, deletes, key updates); the xids of those
    /// that committed and changed a row are recorded.</summary>
    private static async Task WriteAsync(string connectionString, int seed, Task slotConsistent, ConcurrentBag<uint> committed, CancellationToken stop)
    {
        var random = new Random(seed);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var next = 0;
        while (!stop.IsCancellationRequested)
        {
            var mustBeDelivered = slotConsistent.IsCompleted;
            await using var transaction = await connection.BeginTransactionAsync();
            try
            {
                var changed = 0;
                for (var i = random.Next(1, 4); i > 0; i--)
                {
                    var user = random.Next(1, 260);
                    var restaurant = $"r-{random.Next(1, 80)}";
                    var sql = random.Next(8) switch
                    {
                        0 => $"INSERT INTO users (first_name, user_name, email, interests) VALUES ('w{seed}', 'u', 'w{seed}-{next++}', ARRAY['x'])",
                        1 => $"UPDATE users SET first_name = 'v{random.Next(1000)}', date_of_birth = DATE '1990-01-01' + {random.Next(999)} WHERE id = {user}",
                        2 => $"DELETE FROM visit WHERE user_id = {user}",
                        3 => $"INSERT INTO visit (user_id, restaurant_id, amount_spent) SELECT {user}, '{restaurant}', {random.Next(1, 999)}.5 " +
                             $"WHERE EXISTS (SELECT FROM users WHERE id = {user}) AND EXISTS (SELECT FROM restaurant WHERE id = '{restaurant}') ON CONFLICT DO NOTHING",
                        4 => $"UPDATE visit SET visit_rating = {random.Next(5)}, amount_spent = amount_spent + 1 WHERE user_id = {user}",
                        5 => $"INSERT INTO restaurant (id, name, tags) VALUES ('{restaurant}', 'w', ARRAY['n{next++}']) ON CONFLICT (id) DO UPDATE SET rating = {random.Next(5)}",
                        6 => $"UPDATE restaurant SET id = id || 'k' WHERE id = '{restaurant}' AND NOT EXISTS (SELECT FROM visit WHERE restaurant_id = '{restaurant}')",
                        _ => $"DELETE FROM users WHERE id = {user} AND NOT EXISTS (SELECT FROM visit WHERE user_id = {user})",
                    };
                    await using var command = new NpgsqlCommand(sql, connection, transaction);
                    changed += await command.ExecuteNonQueryAsync(CancellationToken.None);
                }
                await using var xid = new NpgsqlCommand("SELECT pg_current_xact_id()::text", connection, transaction);
                var id = (uint)(ulong.Parse((string)(await xid.ExecuteScalarAsync(CancellationToken.None))!, CultureInfo.InvariantCulture) & 0xFFFF_FFFF);
                await transaction.CommitAsync(CancellationToken.None);
                if (changed > 0 && mustBeDelivered)
                    committed.Add(id);
            }
            catch (PostgresException)
            {
                await transaction.RollbackAsync(CancellationToken.None); // a unique key taken meanwhile: try another
            }
            await Task.Delay(random.Next(5, 25), CancellationToken.None);
        }
    }
}
