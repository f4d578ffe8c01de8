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
    private const string ReplicaSchema = """
        CREATE TABLE users (id int PRIMARY KEY, first_name varchar(255) NOT NULL, user_name varchar(255) NOT NULL,
            email varchar(255) NOT NULL, avatar varchar(255), homepage varchar(255), date_of_birth date, address text, interests text[]);
        CREATE TABLE restaurant (id varchar(255) PRIMARY KEY, name varchar(255) NOT NULL, description text, address text, rating int, tags text[]);
        CREATE TABLE visit (user_id int, restaurant_id varchar(255), amount_spent numeric(10, 2) NOT NULL, visit_rating int,
            PRIMARY KEY (user_id, restaurant_id));
        CREATE TABLE applied_change (xid bigint NOT NULL, lsn pg_lsn PRIMARY KEY);
        """;

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
    /// Instances standing by (<see cref="SlotInUse.Wait"/>, separate processes): while writers run and the initial snapshot
    /// is in progress, the active one is killed with SIGKILL five times, each time with a new instance standing by, which
    /// must deliver nothing before the kill and take over after it. At the end the replica equals the source, every
    /// committed transaction was applied once, and the delivery log (appended by every instance as it delivers) never
    /// shows an instance delivering after the next one began: no two delivered at the same time.
    /// </summary>
    [Fact]
    [Trait("Category", "Standby")]
    public async Task ActiveInstanceKilledFiveTimes_AStandbyTakesOverEachTime_ReplicaEqualsSource_NeverTwoDelivering()
    {
        await using var source = await TestDatabase.CreateAsync(fixture.Server);
        await using var replica = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await replica.ExecuteAsync(ReplicaSchema);
        await source.ExecuteAsync("INSERT INTO restaurant (id, name, rating, tags) SELECT 'r-' || i, 'n' || i, i % 5, ARRAY['t'] FROM generate_series(1, 300) i");
        var log = Path.Combine(Path.GetTempPath(), $"dbsync-standby-{Guid.NewGuid():N}.log");
        var committed = new ConcurrentBag<uint>();
        using var stopWriters = new CancellationTokenSource();
        var writers = StartWriters(source, committed, stopWriters.Token);
        var active = Consumer.Start(source, replica, log, 0, standBy: true);
        var takeovers = new List<double>();
        try
        {
            await WaitForFirstDeliveryAsync(log, 0, active);
            for (var run = 1; run <= 5; run++)
            {
                var standby = Consumer.Start(source, replica, log, run, standBy: true);
                await Task.Delay(2000);
                standby.AssertRunning();
                Assert.DoesNotContain(await ReadLogAsync(log), line => line.StartsWith($"{run} ", StringComparison.Ordinal));
                var killed = Stopwatch.StartNew();
                await active.KillAsync();
                active.Dispose();
                active = standby;
                await WaitForFirstDeliveryAsync(log, run, active);
                takeovers.Add(killed.Elapsed.TotalSeconds);
            }
            // From the kill to the new instance's first delivered transaction (writers commit every 5-25 ms; the test
            // looks at the delivery log every 100 ms).
            output.WriteLine($"take-over seconds: {string.Join(", ", takeovers.Select(s => s.ToString("0.00", CultureInfo.InvariantCulture)))}");
            await stopWriters.CancelAsync();
            await Task.WhenAll(writers);
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (!await SameRowsAsync(source, replica))
            {
                active.AssertRunning();
                Assert.True(DateTime.UtcNow < deadline, "The replica did not converge to the source within 120 s of the writers' end.");
                await Task.Delay(250);
            }

            var applied = (await replica.RowsAsync("SELECT DISTINCT xid::text FROM applied_change")).Select(x => uint.Parse(x, CultureInfo.InvariantCulture)).ToHashSet();
            var notApplied = committed.Where(x => !applied.Contains(x)).Order().ToList();
            Assert.True(notApplied.Count == 0, $"{notApplied.Count} committed transaction(s) never applied, e.g. xid {string.Join(", ", notApplied.Take(5))}.");
            // Each run's deliveries (by the clock both processes read) end before the next run's begin.
            var deliveries = (await ReadLogAsync(log)).Select(line => line.Split(' '))
                .Select(f => (Run: int.Parse(f[0], CultureInfo.InvariantCulture), Ticks: long.Parse(f[3], CultureInfo.InvariantCulture))).ToList();
            var runs = deliveries.GroupBy(d => d.Run).OrderBy(g => g.Key).Select(g => (Run: g.Key, First: g.Min(d => d.Ticks), Last: g.Max(d => d.Ticks))).ToList();
            Assert.Equal([0, 1, 2, 3, 4, 5], runs.Select(r => r.Run));
            foreach (var (earlier, later) in runs.Zip(runs.Skip(1)))
                Assert.True(earlier.Last < later.First, $"Run {later.Run} delivered at {new DateTime(later.First):HH:mm:ss.fff}, before run {earlier.Run}'s last delivery at {new DateTime(earlier.Last):HH:mm:ss.fff}: two instances delivered at once.");
        }
        finally
        {
            active.Dispose();
            await stopWriters.CancelAsync();
            await Task.WhenAll(writers);
            File.Delete(log);
            await source.ExecuteAsync("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'dbsync_crash' AND NOT active");
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

        public static Consumer Start(TestDatabase source, TestDatabase replica, string log, int run, bool standBy = false)
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
            var consumer = new Consumer(Process.Start(start) ?? throw new InvalidOperationException("Could not start the crash consumer."), run);
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
