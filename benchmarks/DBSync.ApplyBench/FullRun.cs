using System.Diagnostics;
using System.Globalization;
using DBSync.Bench;
using DBSync.Testing;
using static DBSync.Bench.Stats;

namespace DBSync.ApplyBench;

/// <summary>
/// The whole benchmark: a source and a target cluster; per round a fresh pgbench source database and two fresh target
/// databases, one filled by DBSync, one by a subscription, through phases (a), (b) and (c); then the figures and ratios.
/// </summary>
internal static class FullRun
{
    private const double MiB = 1024 * 1024;

    public static async Task<int> RunAsync(ApplySettings settings)
    {
        var total = Stopwatch.StartNew();
        // Two clusters of their own even when POSTGRES_HOST is set: the subscription needs a second server.
        await using var source = await PostgresServer.StartAsync(forceLocal: true);
        await using var target = await PostgresServer.StartAsync(forceLocal: true);
        var version = await source.ScalarAsync<string>("SHOW server_version");
        Log($"PostgreSQL {version}: source cluster on port {source.Port}, target cluster on port {target.Port} (throwaway, fsync off); {Environment.ProcessorCount} cores; .NET {Environment.Version}");
        Log($"DBSync's applier: the generated MapTable<T> mappings (batched statements, snapshot chunks through COPY)");
        foreach (var knob in new[] { "DBSYNC_SNAPSHOT_CHUNK_SIZE", "DBSYNC_SNAPSHOT_PARALLELISM", "DBSYNC_MAX_GROUP_DELAY_MS" })
        {
            if (Environment.GetEnvironmentVariable(knob) is { Length: > 0 } value)
                Log($"{knob}={value}");
        }

        await WarmUpAsync(source, target);
        var rounds = new List<RoundResult>();
        for (var round = 1; round <= settings.Rounds; round++)
        {
            var result = await RunRoundAsync(source, target, settings, round);
            rounds.Add(result);
            Log($"round {round}: initial copy subscription {result.CopySubscription:0.0} s, dbsync {result.CopyDbSync:0.0} s; pgbench {result.Tps:0} tps; catch-up subscription {result.CatchUpSubscription:0.00} s, dbsync {result.CatchUpDbSync:0.00} s; 1-statement UPDATE subscription {result.UpdateSubscription:0.00} s, dbsync {result.UpdateDbSync:0.00} s");
        }
        Print(settings, rounds, total.Elapsed);
        return 0;
    }

    private static async Task<RoundResult> RunRoundAsync(PostgresServer sourceServer, PostgresServer targetServer, ApplySettings settings, int round)
    {
        var result = new RoundResult();
        var sourceDatabase = await sourceServer.CreateDatabaseAsync("apply_source");
        var dbsyncDatabase = await targetServer.CreateDatabaseAsync("apply_dbsync");
        var subscriptionDatabase = await targetServer.CreateDatabaseAsync("apply_subscription");
        var source = sourceServer.ConnectionStringFor(sourceDatabase);
        var pgbench = new Pgbench(Pgbench.Find(sourceServer.BinDirectory), source);
        try
        {
            var init = await PgbenchSchema.CreateSourceAsync(pgbench, source, settings.Scale);
            var rows = await PgbenchSchema.CountsAsync(source);
            result.Rows = rows.Sum();
            foreach (var database in new[] { dbsyncDatabase, subscriptionDatabase })
                await PgbenchSchema.CopySchemaAsync(sourceServer.BinDirectory, source, targetServer.ConnectionStringFor(database));
            Log($"round {round}: pgbench -i -s {settings.Scale} took {init:0.0} s ({string.Join(", ", PgbenchSchema.Tables.Select((t, i) => $"{t.Table} {rows[i]:N0}"))}); schema copied with pg_dump --schema-only");

            await using var subscription = new SubscriptionTarget(targetServer.ConnectionStringFor(subscriptionDatabase), source, $"bench_sub_{round}");
            await using var dbsync = new DbSyncTarget(targetServer.ConnectionStringFor(dbsyncDatabase), source, $"dbsync_apply_{round}");
            CopyTarget[] targets = [subscription, dbsync];

            // (a) One copier at a time, the order turning every round; the other is idle (DBSync streams nothing, or the
            // subscription does not exist yet).
            var order = round % 2 == 1 ? new CopyTarget[] { dbsync, subscription } : [subscription, dbsync];
            foreach (var copier in order)
            {
                var seconds = await InitialCopyAsync(copier, source);
                if (copier == dbsync)
                    result.CopyDbSync = seconds;
                else
                    result.CopySubscription = seconds;
                Log($"round {round}: (a) {copier.Name} copied {result.Rows:N0} rows in {seconds:0.00} s");
            }

            // (b) pgbench unthrottled, both copiers applying; the lag sampled every second. Both start caught up, each
            // with a position applied (a subscription's origin has none until its first transaction after the copy).
            await MarkAndWaitAsync(source, targets, "start");
            using var lag = new LagSampler(source, targets);
            var sampling = lag.RunAsync();
            try
            {
                result.Tps = await pgbench.RunAsync(settings.Clients, 1, settings.PgbenchSeconds);
            }
            finally
            {
                lag.Stop();
                await sampling;
            }
            var afterPgbench = Stopwatch.StartNew();
            var caughtUp = await MarkAndWaitAsync(source, targets, "catch-up", afterPgbench);
            (result.CatchUpSubscription, result.CatchUpDbSync) = (caughtUp[0], caughtUp[1]);
            result.LagSubscription = lag.Summary(0);
            result.LagDbSync = lag.Summary(1);
            Log($"round {round}: (b) pgbench {result.Tps:0} tps for {settings.PgbenchSeconds} s; caught up after its end: subscription {caughtUp[0]:0.00} s, dbsync {caughtUp[1]:0.00} s");
            Log($"round {round}:     lag subscription: {result.LagSubscription}");
            Log($"round {round}:     lag dbsync:       {result.LagDbSync}");

            // (c) One statement that changes every account.
            var update = Stopwatch.StartNew();
            await PgbenchSchema.ExecuteAsync(source, "UPDATE pgbench_accounts SET abalance = abalance + 1");
            update.Restart(); // from its commit
            var expected = await PgbenchSchema.ScalarAsync<int>(source, "SELECT abalance FROM pgbench_accounts WHERE aid = 1");
            // The UPDATE is one transaction in each target too, so one of its rows tells that all of them are there.
            var updated = await Wait.ForEachAsync(targets, update, "applied the UPDATE",
                async t => await PgbenchSchema.ScalarAsync<int>(t.ConnectionString, "SELECT abalance FROM pgbench_accounts WHERE aid = 1") == expected);
            (result.UpdateSubscription, result.UpdateDbSync) = (updated[0], updated[1]);
            Log($"round {round}: (c) UPDATE of {rows[0]:N0} rows, from its commit until the target has it: subscription {updated[0]:0.00} s, dbsync {updated[1]:0.00} s");

            foreach (var copier in targets)
                await PgbenchSchema.VerifyEqualAsync(source, copier.ConnectionString, copier.Name);
            Log($"round {round}: both targets equal to the source (row count and md5 of every table)");
        }
        finally
        {
            await targetServer.DropDatabaseAsync(subscriptionDatabase);
            await targetServer.DropDatabaseAsync(dbsyncDatabase);
            await sourceServer.DropDatabaseAsync(sourceDatabase);
        }
        return result;
    }

    /// <summary>
    /// Before the rounds, not counted: each copier copies a scale-1 pgbench database once. DBSync's first copy in a process
    /// spends seconds compiling its code and Npgsql's (JIT); without this, round 1 would time that rather than the copy.
    /// </summary>
    private static async Task WarmUpAsync(PostgresServer sourceServer, PostgresServer targetServer)
    {
        var watch = Stopwatch.StartNew();
        var sourceDatabase = await sourceServer.CreateDatabaseAsync("apply_warmup");
        var dbsyncDatabase = await targetServer.CreateDatabaseAsync("apply_warmup_dbsync");
        var subscriptionDatabase = await targetServer.CreateDatabaseAsync("apply_warmup_subscription");
        try
        {
            var source = sourceServer.ConnectionStringFor(sourceDatabase);
            await PgbenchSchema.CreateSourceAsync(new Pgbench(Pgbench.Find(sourceServer.BinDirectory), source), source, 1);
            foreach (var database in new[] { dbsyncDatabase, subscriptionDatabase })
                await PgbenchSchema.CopySchemaAsync(sourceServer.BinDirectory, source, targetServer.ConnectionStringFor(database));
            await using (var subscription = new SubscriptionTarget(targetServer.ConnectionStringFor(subscriptionDatabase), source, "bench_sub_warmup"))
                await InitialCopyAsync(subscription, source);
            double seconds;
            await using (var dbsync = new DbSyncTarget(targetServer.ConnectionStringFor(dbsyncDatabase), source, "dbsync_apply_warmup"))
                seconds = await InitialCopyAsync(dbsync, source);
            Log($"warm-up (not counted): both copiers copied pgbench scale 1 once ({watch.Elapsed.TotalSeconds:0.0} s; DBSync's cold copy {seconds:0.00} s)");
        }
        finally
        {
            await targetServer.DropDatabaseAsync(subscriptionDatabase);
            await targetServer.DropDatabaseAsync(dbsyncDatabase);
            await sourceServer.DropDatabaseAsync(sourceDatabase);
        }
    }

    /// <summary>
    /// Commits a marker row (in pgbench_history, which both copy) on the source and waits until each target has it; returns
    /// each target's seconds from <paramref name="clock"/>'s reading. Both copiers apply in commit order, so a target has
    /// the marker only once it has every transaction committed before it.
    /// </summary>
    private static async Task<double[]> MarkAndWaitAsync(string source, CopyTarget[] targets, string marker, Stopwatch? clock = null)
    {
        clock ??= Stopwatch.StartNew();
        var id = await PgbenchSchema.ScalarAsync<long>(source,
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, filler) VALUES (0, 0, 0, 0, now(), $1) RETURNING id", marker);
        return await Wait.ForEachAsync(targets, clock, $"applied the {marker} marker",
            async t => await PgbenchSchema.ScalarAsync<bool>(t.ConnectionString, "SELECT EXISTS (SELECT 1 FROM pgbench_history WHERE id = $1)", id));
    }

    /// <summary>(a) From the start of the copy until the copier reports it done and the target's counts equal the source's.</summary>
    internal static async Task<double> InitialCopyAsync(CopyTarget copier, string source)
    {
        var expected = await PgbenchSchema.CountsAsync(source);
        var watch = Stopwatch.StartNew();
        await copier.StartAsync();
        await copier.CopyReportedAsync();
        var seconds = await Wait.ForEachAsync([copier], watch, "copied every row",
            async t => (await PgbenchSchema.CountsAsync(t.ConnectionString)).SequenceEqual(expected));
        return seconds[0];
    }

    private static void Print(ApplySettings settings, List<RoundResult> rounds, TimeSpan elapsed)
    {
        var copySubscription = Median(rounds.Select(r => r.CopySubscription));
        var copyDbSync = Median(rounds.Select(r => r.CopyDbSync));
        var catchUpSubscription = Median(rounds.Select(r => r.CatchUpSubscription));
        var catchUpDbSync = Median(rounds.Select(r => r.CatchUpDbSync));
        var rows = rounds[0].Rows;

        Console.WriteLine();
        Log($"==== results: medians of {settings.Rounds} rounds in this run; pgbench scale {settings.Scale}; {Environment.ProcessorCount} cores ====");
        Log($"(a) initial copy of pgbench's tables ({rows:N0} rows), from its start until the target has every row:");
        Log($"    subscription (CREATE SUBSCRIPTION ... WITH (copy_data = true)):      {copySubscription,8:0.00} s {rows / copySubscription,10:N0} rows/s   (runs {Runs(rounds.Select(r => r.CopySubscription), "0.00")})");
        Log($"    dbsync (initial snapshot through PostgresApplier, generated MapTable<T>): {copyDbSync,8:0.00} s {rows / copyDbSync,10:N0} rows/s   (runs {Runs(rounds.Select(r => r.CopyDbSync), "0.00")})");
        Log($"(b) pgbench -c {settings.Clients} -T {settings.PgbenchSeconds} on the source, unthrottled, both targets applying: {Median(rounds.Select(r => r.Tps)):0} tps (runs {Runs(rounds.Select(r => r.Tps), "0")})");
        Log($"    lag = the source's WAL insert position minus the end position of the target's last applied transaction, sampled every second during pgbench:");
        foreach (var (name, pick) in new (string, Func<RoundResult, LagSummary>)[] { ("subscription", r => r.LagSubscription), ("dbsync", r => r.LagDbSync) })
        {
            var lags = rounds.Select(pick).ToList();
            Log($"    {name,-12} MB behind: median {Median(lags.Select(l => l.MedianBytes)) / MiB:0.0}, max {Median(lags.Select(l => l.MaxBytes)) / MiB:0.0}, at pgbench's end {Median(lags.Select(l => l.EndBytes)) / MiB:0.0}; seconds behind: max {Median(lags.Select(l => l.MaxSeconds)):0.0}, at pgbench's end {Median(lags.Select(l => l.EndSeconds)):0.0}; MB behind at 25/50/75/100% of the run {string.Join(" / ", Enumerable.Range(0, 4).Select(q => (Median(lags.Select(l => l.QuarterBytes[q])) / MiB).ToString("0.0", CultureInfo.InvariantCulture)))}");
        }
        Log($"    catch-up, from pgbench's end until the target has its last transaction: subscription {catchUpSubscription:0.00} s (runs {Runs(rounds.Select(r => r.CatchUpSubscription), "0.00")}), dbsync {catchUpDbSync:0.00} s (runs {Runs(rounds.Select(r => r.CatchUpDbSync), "0.00")})");
        Log($"(c) UPDATE pgbench_accounts SET abalance = abalance + 1 ({settings.Scale * 100_000L:N0} rows, one transaction), from its commit until the target has it:");
        Log($"    subscription {Median(rounds.Select(r => r.UpdateSubscription)):0.00} s (runs {Runs(rounds.Select(r => r.UpdateSubscription), "0.00")}), dbsync {Median(rounds.Select(r => r.UpdateDbSync)):0.00} s (runs {Runs(rounds.Select(r => r.UpdateDbSync), "0.00")})");
        Log($"both targets ended equal to the source in every round (row count and md5 of each table, checked after (c))");
        Log($"pgbench_history: the benchmark adds a key to it ({PgbenchSchema.HistoryKeySql}) before either copier starts");
        Log($"benchmark program time: {elapsed.TotalSeconds:0} s");
        Log($"reproduce: benchmarks/run-apply.sh {settings.ToArguments()}");
        Log($"ratio initial copy dbsync/subscription = {copyDbSync / copySubscription:0.00}");
        Log($"ratio catch-up dbsync/subscription = {catchUpDbSync / catchUpSubscription:0.00}");
    }

    private static void Log(FormattableString message) => Console.WriteLine(message.ToString(CultureInfo.InvariantCulture));

    /// <summary>One round's figures (seconds, tps).</summary>
    private sealed class RoundResult
    {
        public long Rows { get; set; }

        public double CopySubscription { get; set; }

        public double CopyDbSync { get; set; }

        public double Tps { get; set; }

        public double CatchUpSubscription { get; set; }

        public double CatchUpDbSync { get; set; }

        public LagSummary LagSubscription { get; set; } = LagSummary.Empty;

        public LagSummary LagDbSync { get; set; } = LagSummary.Empty;

        public double UpdateSubscription { get; set; }

        public double UpdateDbSync { get; set; }
    }
}
