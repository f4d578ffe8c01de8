using System.Diagnostics;
using System.Globalization;
using DBSync.Testing;
using DBSync.Bench;
using static DBSync.Bench.Stats;

namespace DBSync.SnapshotBench;

/// <summary>The whole benchmark: the three measurements in one run against one server, then the figures and ratios.</summary>
internal static class FullRun
{
    private const double MiB = 1024 * 1024;

    public static async Task<int> RunAsync(BenchSettings settings)
    {
        var total = Stopwatch.StartNew();
        Report? report = null;
        await using (var server = await PostgresServer.StartAsync())
        {
            var version = await server.ScalarAsync<string>("SHOW server_version");
            var origin = server.IsThrowaway ? "throwaway" : "POSTGRES_HOST";
            Log($"PostgreSQL {version} ({origin}, port {server.Port}); {Environment.ProcessorCount} cores; .NET {Environment.Version}");
            var database = await server.CreateDatabaseAsync("dbsync_snapshot_bench");
            try
            {
                if (settings.Mode == BenchSettings.ChunksMode)
                    await ChunkSweepAsync(server.ConnectionStringFor(database), settings);
                else if (settings.Mode == BenchSettings.ReadPathMode)
                    await ReadPaths.CompareAsync(server.ConnectionStringFor(database), settings);
                else if (settings.Mode == BenchSettings.TpsMode)
                    await InterleavedOnlyAsync(server, server.ConnectionStringFor(database), settings);
                else
                    report = await MeasureAsync(server, server.ConnectionStringFor(database), settings);
            }
            finally
            {
                await server.DropDatabaseAsync(database);
            }
        }

        report?.Print(settings, total.Elapsed);
        return 0;
    }

    /// <summary>How the default chunk size was chosen: DBSync's snapshot time per chunk size, against COPY, medians.</summary>
    private static async Task ChunkSweepAsync(string connectionString, BenchSettings settings)
    {
        await UsersTable.CreateSchemaAsync(connectionString);
        await UsersTable.LoadAsync(connectionString, 1, settings.Rows);
        var counter = new RowCounter();
        var copies = new List<double>();
        for (var round = 0; round < settings.Rounds; round++)
        {
            counter.Reset();
            copies.Add(CopyBaseline.Read(connectionString, counter));
            Check("COPY", counter, settings.Rows);
        }
        var copy = Median(copies);
        Log($"{settings.Rows:N0} users rows; binary COPY {copy:0.000} s (median of {settings.Rounds})");
        foreach (var size in new[] { 256, 1024, 4096, 8192, 16384, 65536 })
        {
            await using var runner = await DbSyncRunner.StartAsync(connectionString, $"dbsync_bench_chunk_{size}", size, settings.BusyShare);
            var times = new List<double>();
            for (var round = 0; round < settings.Rounds; round++)
            {
                runner.Counter.Reset();
                times.Add(await runner.SnapshotAsync());
                Check("DBSync snapshot", runner.Counter, settings.Rows);
            }
            Log($"chunk size {size,6}: {Median(times):0.000} s, ratio to COPY {Median(times) / copy:0.00}");
        }
    }

    /// <summary>The interleaved tps measurement alone, to study the throttle: per round and the median ratio.</summary>
    private static async Task InterleavedOnlyAsync(PostgresServer server, string connectionString, BenchSettings settings)
    {
        await UsersTable.CreateSchemaAsync(connectionString);
        await UsersTable.LoadAsync(connectionString, 1, settings.Rows);
        var pgbench = new Pgbench(Pgbench.Find(server.BinDirectory), connectionString);
        await pgbench.InitializeAsync(settings.PgbenchScale);
        var ratios = new List<double>();
        for (var round = 1; round <= settings.Rounds; round++)
        {
            await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
            var (on, off, _) = await MeasureInterleavedAsync(pgbench, connectionString, settings, round);
            ratios.Add(on / off);
            Log($"round {round}: {on:0} tps with snapshots running, {off:0} paused => {on / off:0.00} (SnapshotBusyShare {settings.BusyShare})");
        }
        Log($"ratio tps snapshots-running/paused = {Median(ratios):0.00}");
    }

    private static async Task<Report> MeasureAsync(PostgresServer server, string connectionString, BenchSettings settings)
    {
        var report = new Report();
        await UsersTable.CreateSchemaAsync(connectionString);
        var load = await UsersTable.LoadAsync(connectionString, 1, settings.Rows);
        report.TableBytes = await UsersTable.TableBytesAsync(connectionString);
        Log($"loaded {settings.Rows:N0} users rows in {load:0.0} s (table {report.TableBytes / MiB:0.0} MB without indexes)");

        await MeasureSnapshotAsync(connectionString, settings, report);
        await MeasureTpsAsync(server, connectionString, settings, report);
        await MeasureMemoryAsync(connectionString, settings, report);
        return report;
    }

    /// <summary>1. DBSync's snapshot, a binary COPY and keyset SELECTs in chunks of the same size, in an order that turns
    /// every round, after one warm-up each.</summary>
    private static async Task MeasureSnapshotAsync(string connectionString, BenchSettings settings, Report report)
    {
        var baselineCounter = new RowCounter();
        await using var runner = await DbSyncRunner.StartAsync(connectionString, "dbsync_bench_snapshot", settings.ChunkSize, settings.BusyShare);

        Task<double> Baseline(string name, Func<RowCounter, double> read)
        {
            baselineCounter.Reset();
            Collect();
            var seconds = read(baselineCounter);
            Check(name, baselineCounter, settings.Rows);
            return Task.FromResult(seconds);
        }

        Task<double> Copy() => Baseline("COPY", counter => CopyBaseline.Read(connectionString, counter));

        Task<double> Keyset() => Baseline("keyset SELECT", counter => KeysetBaseline.Read(connectionString, settings.ChunkSize, counter));

        async Task<double> SnapshotAsync()
        {
            runner.Counter.Reset();
            Collect();
            var seconds = await runner.SnapshotAsync();
            Check("DBSync snapshot", runner.Counter, settings.Rows);
            return seconds;
        }

        Func<Task<double>>[] readers = [Copy, Keyset, SnapshotAsync];
        var warm = new double[readers.Length];
        for (var i = 0; i < readers.Length; i++)
            warm[i] = await readers[i]();
        Log($"warm-up (not counted): copy {warm[0]:0.000} s, keyset {warm[1]:0.000} s, dbsync {warm[2]:0.000} s");
        for (var round = 1; round <= settings.Rounds; round++)
        {
            var seconds = new double[readers.Length];
            for (var i = 0; i < readers.Length; i++)
            {
                var which = (i + round - 1) % readers.Length;
                seconds[which] = await readers[which]();
            }
            report.Copy.Add(seconds[0]);
            report.Keyset.Add(seconds[1]);
            report.Snapshot.Add(seconds[2]);
            Log($"round {round}: copy {seconds[0]:0.000} s, keyset {seconds[1]:0.000} s, dbsync {seconds[2]:0.000} s ({seconds[2] / seconds[0]:0.00}x COPY, {seconds[2] / seconds[1]:0.00}x keyset)");
        }
    }

    /// <summary>
    /// 2. pgbench without logical replication, with pg_recvlogical (pgoutput, to /dev/null) streaming the publication,
    /// with DBSync streaming only, and with DBSync streaming and snapshotting back to back. The snapshot's cost is the
    /// last against the one before; the first two show what logical decoding itself costs the server.
    /// </summary>
    private static async Task MeasureTpsAsync(PostgresServer server, string connectionString, BenchSettings settings, Report report)
    {
        var pgbench = new Pgbench(Pgbench.Find(server.BinDirectory), connectionString);
        var init = await pgbench.InitializeAsync(settings.PgbenchScale);
        report.PgbenchCommand = pgbench.CommandLine(settings.PgbenchClients, settings.PgbenchThreads, settings.PgbenchSeconds);
        Log($"pgbench -i -s {settings.PgbenchScale} took {init:0.0} s; each run: {report.PgbenchCommand}");

        Task<double> RunPgbenchAsync() => pgbench.RunAsync(settings.PgbenchClients, settings.PgbenchThreads, settings.PgbenchSeconds);

        for (var round = 1; round <= settings.Rounds; round++)
        {
            await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
            var without = await RunPgbenchAsync();

            double recvlogical;
            await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
            await using (await Recvlogical.StartAsync(server.BinDirectory, connectionString, $"dbsync_bench_recv_{round}", DbSyncRunner.PublicationName))
                recvlogical = await RunPgbenchAsync();

            double streamOnly;
            await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
            await using (await DbSyncRunner.StartAsync(connectionString, $"dbsync_bench_stream_{round}", settings.ChunkSize, settings.BusyShare))
                streamOnly = await RunPgbenchAsync();

            double during;
            int snapshots;
            long rows;
            double window;
            await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
            await using (var runner = await DbSyncRunner.StartAsync(connectionString, $"dbsync_bench_tps_{round}", settings.ChunkSize, settings.BusyShare))
            {
                using var stop = new CancellationTokenSource();
                var completed = 0;
                var watch = Stopwatch.StartNew();
                var loop = Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        try
                        {
                            await runner.SnapshotAsync(stop.Token);
                            completed++;
                        }
                        catch (OperationCanceledException) when (stop.IsCancellationRequested)
                        {
                            return;
                        }
                    }
                });
                during = await RunPgbenchAsync();
                await stop.CancelAsync();
                await loop;
                window = watch.Elapsed.TotalSeconds;
                snapshots = completed;
                rows = runner.Counter.Rows;
            }

            await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
            var (on, off, _) = await MeasureInterleavedAsync(pgbench, connectionString, settings, round);
            report.TpsSnapshotOn.Add(on);
            report.TpsSnapshotOff.Add(off);

            await UsersTable.ExecuteAsync(connectionString, "CHECKPOINT");
            var loaded = await MeasureLoadedAsync(pgbench, connectionString, settings, round);
            report.LoadedTpsSnapshot.Add(loaded.On);
            report.LoadedTpsNone.Add(loaded.Off);
            report.LoadedRowsPerSecond.Add(loaded.RowsPerSecond);

            report.TpsWithout.Add(without);
            report.TpsRecvlogical.Add(recvlogical);
            report.TpsStreamOnly.Add(streamOnly);
            report.TpsDuring.Add(during);
            report.SnapshotRowsPerSecondUnderLoad.Add(rows / window);
            Log($"round {round}: {without:0} tps without replication, {recvlogical:0} with pg_recvlogical, {streamOnly:0} with DBSync streaming, {during:0} during DBSync snapshots ({snapshots} full snapshots completed, {rows / window:N0} rows/s delivered) => {during / streamOnly:0.00}; interleaved: {on:0} tps with snapshots running, {off:0} paused => {on / off:0.00}; loaded run: {loaded.On:0} tps while snapshotting at {loaded.RowsPerSecond:N0} rows/s, {loaded.Off:0} tps without => {loaded.On / loaded.Off:0.00}");
        }
    }

    /// <summary>
    /// The snapshot's cost within one pgbench run, so that the load of other tenants of a shared machine, which moves
    /// tps by 10-20% between runs, falls on both sides alike: DBSync streams throughout and snapshots back to back, paused
    /// or running in phases of <see cref="PhaseSeconds"/> seconds; pgbench reports tps every second. Phases come in pairs,
    /// one of each, in an order drawn at random per pair (seeded by the round), so that nothing periodic on the server
    /// (autovacuum wakes up every minute) falls on one side only. Returns the median tps of the seconds with snapshots
    /// running and of the seconds with them paused, and the snapshot rows delivered per second running.
    /// </summary>
    private static Task<PhasedResult> MeasureInterleavedAsync(Pgbench pgbench, string connectionString, BenchSettings settings, int round)
    {
        var random = new Random(round);
        var running = new bool[(settings.InterleavedSeconds / PhaseSeconds) + 4];
        for (var pair = 0; pair < running.Length / 2; pair++)
            (running[2 * pair], running[(2 * pair) + 1]) = random.Next(2) == 0 ? (true, false) : (false, true);
        return MeasurePhasesAsync(pgbench, connectionString, settings, $"dbsync_bench_interleaved_{round}", PhaseSeconds, running, settings.InterleavedSeconds);
    }

    /// <summary>
    /// The loaded run (issue 18): one pgbench run of twice <see cref="BenchSettings.PgbenchSeconds"/>, DBSync streaming
    /// throughout, its snapshots running back to back in one half and paused in the other (the order turns every round).
    /// Both the snapshot's speed under load and what it costs the workload come from this run: a throttle cannot look
    /// good on one by giving up the other.
    /// </summary>
    private static Task<PhasedResult> MeasureLoadedAsync(Pgbench pgbench, string connectionString, BenchSettings settings, int round)
    {
        bool[] running = round % 2 == 1 ? [false, true] : [true, false];
        return MeasurePhasesAsync(pgbench, connectionString, settings, $"dbsync_bench_loaded_{round}", settings.PgbenchSeconds, running, 2 * settings.PgbenchSeconds);
    }

    /// <summary>
    /// One pgbench run (<c>-P 1</c>) of <paramref name="seconds"/>, phases of <paramref name="phaseSeconds"/> counted from
    /// pgbench's start, with DBSync's snapshots running back to back in the phases that <paramref name="running"/> marks
    /// and paused in the others. The first second of each phase is left out (the switch happens in it); the rows delivered
    /// from a resume to the next pause count as the running phases' (a pause takes effect after the chunk in flight).
    /// </summary>
    private static async Task<PhasedResult> MeasurePhasesAsync(Pgbench pgbench, string connectionString, BenchSettings settings, string slotName,
        int phaseSeconds, bool[] running, int seconds)
    {
        await using var runner = await DbSyncRunner.StartAsync(connectionString, slotName, settings.ChunkSize, settings.BusyShare);
        using var stop = new CancellationTokenSource();
        var loop = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await runner.SnapshotAsync(stop.Token);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
            }
        });
        if (!running[0])
            runner.Pause();
        var clock = new Stopwatch();
        long runningRows = 0;
        var runningSeconds = 0.0;
        var toggles = Task.Run(async () =>
        {
            var (rowsAtResume, resumedAt) = (0L, TimeSpan.Zero);
            void Resumed() => (rowsAtResume, resumedAt) = (runner.Counter.Rows, clock.Elapsed);
            void Paused()
            {
                runningRows += runner.Counter.Rows - rowsAtResume;
                runningSeconds += (clock.Elapsed - resumedAt).TotalSeconds;
            }

            // Phase boundaries are counted from the moment pgbench starts (the rows of a first running phase from then too).
            while (!clock.IsRunning && !stop.IsCancellationRequested)
                await Task.Delay(10).ConfigureAwait(false);
            var isRunning = running[0];
            if (isRunning)
                Resumed();
            for (var phase = 1; phase < running.Length && !stop.IsCancellationRequested; phase++)
            {
                var wait = TimeSpan.FromSeconds(phase * phaseSeconds) - clock.Elapsed;
                if (wait > TimeSpan.Zero)
                    await Task.Delay(wait, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                if (stop.IsCancellationRequested || running[phase] == running[phase - 1])
                    continue;
                isRunning = running[phase];
                if (isRunning)
                {
                    Resumed();
                    runner.Resume();
                }
                else
                {
                    runner.Pause();
                    Paused();
                }
            }
            // Until pgbench ends, which may be in the last phase.
            await Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            if (isRunning)
                Paused(); // pgbench ended in a running phase
        });
        List<double> perSecond;
        try
        {
            perSecond = await pgbench.RunPerSecondAsync(settings.PgbenchClients, settings.PgbenchThreads, seconds, clock.Start);
        }
        finally
        {
            await stop.CancelAsync();
            await toggles;
            runner.Resume();
            await loop;
        }

        var on = new List<double>();
        var off = new List<double>();
        for (var second = 0; second < perSecond.Count; second++)
        {
            if (second % phaseSeconds == 0 || double.IsNaN(perSecond[second]))
                continue;
            (running[second / phaseSeconds] ? on : off).Add(perSecond[second]);
        }
        if (on.Count == 0 || off.Count == 0)
            throw new InvalidOperationException($"The phased pgbench run reported {perSecond.Count} seconds; at least {2 * phaseSeconds} are needed.");
        return new PhasedResult(Median(on), Median(off), runningSeconds > 0 ? runningRows / runningSeconds : 0);
    }

    private const int PhaseSeconds = 5;

    /// <summary>What a phased pgbench run measured: median tps of the seconds with snapshots running and paused, and the
    /// snapshot rows delivered per second while running.</summary>
    private sealed record PhasedResult(double On, double Off, double RowsPerSecond);

    /// <summary>3. A child process snapshots the table at the small size, then at the large size.</summary>
    private static async Task MeasureMemoryAsync(string connectionString, BenchSettings settings, Report report)
    {
        report.Small = await MemoryChild.MeasureAsync(connectionString, settings.Rows, settings.ChunkSize);
        Log($"memory child, {settings.Rows:N0} rows: {report.Small.Seconds:0.000} s, peak working set {report.Small.PeakWorkingSet / MiB:0.0} MB");

        var load = await UsersTable.LoadAsync(connectionString, settings.Rows + 1, settings.BigRows);
        report.BigTableBytes = await UsersTable.TableBytesAsync(connectionString);
        Log($"loaded users up to {settings.BigRows:N0} rows in {load:0.0} s (table {report.BigTableBytes / MiB:0.0} MB without indexes)");
        var count = await UsersTable.CountAsync(connectionString);
        if (count != settings.BigRows)
            throw new InvalidOperationException($"users holds {count} rows, expected {settings.BigRows}.");

        report.Big = await MemoryChild.MeasureAsync(connectionString, settings.BigRows, settings.ChunkSize);
        Log($"memory child, {settings.BigRows:N0} rows: {report.Big.Seconds:0.000} s, peak working set {report.Big.PeakWorkingSet / MiB:0.0} MB");
    }

    private static void Check(string what, RowCounter counter, long rows)
    {
        var expectedSum = rows * (rows + 1) / 2;
        if (counter.Rows != rows || counter.IdSum != expectedSum)
            throw new InvalidOperationException($"{what} delivered {counter.Rows} rows (id sum {counter.IdSum}); expected {rows} (id sum {expectedSum}).");
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    internal static void Log(FormattableString message)
        => Console.WriteLine(message.ToString(CultureInfo.InvariantCulture));

    /// <summary>The raw figures of one run.</summary>
    private sealed class Report
    {
        public List<double> Copy { get; } = [];

        public List<double> Keyset { get; } = [];

        public List<double> Snapshot { get; } = [];

        public List<double> TpsWithout { get; } = [];

        public List<double> TpsRecvlogical { get; } = [];

        public List<double> TpsStreamOnly { get; } = [];

        public List<double> TpsDuring { get; } = [];

        public List<double> TpsSnapshotOn { get; } = [];

        public List<double> TpsSnapshotOff { get; } = [];

        public List<double> SnapshotRowsPerSecondUnderLoad { get; } = [];

        public List<double> LoadedTpsSnapshot { get; } = [];

        public List<double> LoadedTpsNone { get; } = [];

        public List<double> LoadedRowsPerSecond { get; } = [];

        public long TableBytes { get; set; }

        public long BigTableBytes { get; set; }

        public string PgbenchCommand { get; set; } = "";

        public MemoryResult? Small { get; set; }

        public MemoryResult? Big { get; set; }

        public void Print(BenchSettings settings, TimeSpan elapsed)
        {
            var small = Small!;
            var big = Big!;
            var copy = Median(Copy);
            var snapshot = Median(Snapshot);
            var without = Median(TpsWithout);
            var streamOnly = Median(TpsStreamOnly);
            var during = Median(TpsDuring);
            var rows = settings.Rows;

            Console.WriteLine();
            Log($"==== results: medians of {settings.Rounds} rounds in this run; {Environment.ProcessorCount} cores; SnapshotChunkSize {settings.ChunkSize}; {BenchSettings.ParallelismVariable} {BenchSettings.SnapshotParallelism?.ToString(CultureInfo.InvariantCulture) ?? "unset"} ====");
            Log($"users: {rows:N0} rows, {TableBytes / MiB:0.0} MB");
            Log($"binary COPY into User objects:     {copy:0.000} s  {rows / copy,12:N0} rows/s   (runs {Runs(Copy, "0.000")})");
            Log($"keyset SELECTs, {settings.ChunkSize} rows each:  {Median(Keyset):0.000} s  {rows / Median(Keyset),12:N0} rows/s   (runs {Runs(Keyset, "0.000")}); ratio to COPY {Median(Keyset) / copy:0.00}");
            Log($"DBSync snapshot into User objects: {snapshot:0.000} s  {rows / snapshot,12:N0} rows/s   (runs {Runs(Snapshot, "0.000")}); ratio to keyset SELECTs {snapshot / Median(Keyset):0.00}");
            Log($"pgbench ({PgbenchCommand}, scale {settings.PgbenchScale}, TPC-B-like):");
            Log($"  no logical replication:             {without,8:0.0} tps   (runs {Runs(TpsWithout, "0.0")})");
            Log($"  pg_recvlogical streaming:           {Median(TpsRecvlogical),8:0.0} tps   (runs {Runs(TpsRecvlogical, "0.0")}); ratio to none {Median(TpsRecvlogical) / without:0.00}");
            Log($"  DBSync streaming, no snapshot:      {streamOnly,8:0.0} tps   (runs {Runs(TpsStreamOnly, "0.0")}); ratio to none {streamOnly / without:0.00}");
            Log($"  DBSync streaming + snapshots:       {during,8:0.0} tps   (runs {Runs(TpsDuring, "0.0")}); ratio to none {during / without:0.00}; snapshot rows/s under load {Median(SnapshotRowsPerSecondUnderLoad):N0}");
            var interleaved = TpsSnapshotOn.Zip(TpsSnapshotOff, (on, off) => on / off).ToList();
            Log($"  interleaved, one {settings.InterleavedSeconds} s pgbench run per round, snapshots running or paused in {PhaseSeconds} s phases, in random order by pairs (DBSync streaming throughout):");
            Log($"    seconds with snapshots running:   {Median(TpsSnapshotOn),8:0.0} tps   (runs {Runs(TpsSnapshotOn, "0.0")})");
            Log($"    seconds with snapshots paused:    {Median(TpsSnapshotOff),8:0.0} tps   (runs {Runs(TpsSnapshotOff, "0.0")})");
            Log($"    ratio per round:                  {Median(interleaved),8:0.00}       (runs {Runs(interleaved, "0.00")})");
            var loadedTps = LoadedTpsSnapshot.Zip(LoadedTpsNone, (on, off) => on / off).ToList();
            var idleRowsPerSecond = rows / snapshot;
            var loadedSpeed = LoadedRowsPerSecond.Select(r => r / idleRowsPerSecond).ToList();
            Log($"  loaded run, one pgbench run of 2 x {settings.PgbenchSeconds} s per round, DBSync streaming throughout, its snapshots running back to back in one half and paused in the other (order turning every round):");
            Log($"    seconds with a snapshot running:  {Median(LoadedTpsSnapshot),8:0.0} tps   (runs {Runs(LoadedTpsSnapshot, "0.0")})");
            Log($"    seconds with none (paused):       {Median(LoadedTpsNone),8:0.0} tps   (runs {Runs(LoadedTpsNone, "0.0")}); ratio per round {Median(loadedTps):0.00} (runs {Runs(loadedTps, "0.00")})");
            Log($"    snapshot speed under this load:   {Median(LoadedRowsPerSecond),8:N0} rows/s (runs {Runs(LoadedRowsPerSecond, "0")}); idle (the DBSync snapshot above) {idleRowsPerSecond:N0} rows/s; ratio per round {Median(loadedSpeed):0.00} (runs {Runs(loadedSpeed, "0.00")})");
            Log($"sequential runs, streaming + snapshots / streaming only: {during / streamOnly:0.00} (separate pgbench runs; moves with the machine's load)");
            Console.WriteLine("peak memory of the snapshot process (child, PeakWorkingSet64; managed heap and GC committed peaks sampled every 10 ms):");
            Log($"  {small.Rows,10:N0} rows ({TableBytes / MiB,6:0.0} MB table): {small.PeakWorkingSet / MiB,6:0.0} MB working set, managed {small.ManagedPeak / MiB:0.0} MB, GC committed {small.CommittedPeak / MiB:0.0} MB, snapshot {small.Seconds:0.000} s");
            Log($"  {big.Rows,10:N0} rows ({BigTableBytes / MiB,6:0.0} MB table): {big.PeakWorkingSet / MiB,6:0.0} MB working set, managed {big.ManagedPeak / MiB:0.0} MB, GC committed {big.CommittedPeak / MiB:0.0} MB, snapshot {big.Seconds:0.000} s");
            Log($"memory child command: {big.Command}");
            Log($"benchmark program time: {elapsed.TotalSeconds:0} s");
            Log($"reproduce: benchmarks/run-snapshot.sh {settings.ToArguments()}");
            Log($"ratio snapshot dbsync/copy = {snapshot / copy:0.00}");
            Log($"ratio tps snapshots-running/paused = {Median(interleaved):0.00}");
            Log($"ratio snapshot speed loaded/idle = {Median(loadedSpeed):0.00}");
            Log($"ratio tps snapshot/none = {Median(loadedTps):0.00}");
            Log($"ratio peak memory 5M/1M = {(double)big.PeakWorkingSet / small.PeakWorkingSet:0.00}");
        }
    }
}
