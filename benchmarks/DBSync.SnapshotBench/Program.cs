// End-to-end snapshot benchmark. Run through benchmarks/run-snapshot.sh, which prints the ratios README.md quotes.
//
//   dotnet DBSync.SnapshotBench.dll all [rows] [bigRows]      everything, on a throwaway PostgreSQL (or POSTGRES_*)
//   dotnet DBSync.SnapshotBench.dll chunks [rows]             snapshot time per chunk size (how the default was chosen)
//   dotnet DBSync.SnapshotBench.dll memory <connection>       one snapshot of users in this process; prints its peak memory
using System.Diagnostics;
using System.Globalization;
using DBSync;
using DBSync.Sample;
using DBSync.Testing;
using Npgsql;

var mode = args.Length > 0 ? args[0] : "all";
switch (mode)
{
    case "memory":
        await MemoryChildAsync(args[1], int.Parse(args[2], CultureInfo.InvariantCulture));
        return;
    case "chunks":
        await ChunkSweepAsync(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000);
        return;
    default:
        await AllAsync(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000,
            args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 5_000_000);
        return;
}

static Task AllAsync(int rows, int bigRows) => WithDatabaseAsync(rows, async (server, connectionString) =>
{
    // 1. Snapshot against COPY, alternating, 3 rounds.
    var copy = new List<double>();
    var dbsync = new List<double>();
    for (var round = 0; round < 3; round++)
    {
        copy.Add(await CopyAsync(connectionString, rows));
        dbsync.Add(await SnapshotAsync(connectionString, rows, chunkSize: null));
        Console.WriteLine($"round {round + 1}: copy {copy[^1]:0.000} s, dbsync snapshot {dbsync[^1]:0.000} s");
    }

    // 2. pgbench tps without and during snapshots, 3 pairs.
    var pgbench = Path.Combine(server.BinDirectory ?? "/usr/lib/postgresql/15/bin", "pgbench");
    var builder = new NpgsqlConnectionStringBuilder(connectionString);
    await RunAsync(pgbench, $"-i -q -s 10 -h {builder.Host} -p {builder.Port} -U {builder.Username} {builder.Database}");
    var without = new List<double>();
    var during = new List<double>();
    for (var round = 0; round < 3; round++)
    {
        without.Add(await PgbenchAsync(pgbench, builder));
        during.Add(await PgbenchDuringSnapshotsAsync(pgbench, builder, connectionString, rows));
        Console.WriteLine($"round {round + 1}: pgbench {without[^1]:0} tps without, {during[^1]:0} tps during snapshots");
    }

    // 3. Peak memory of a process that snapshots the table, at two sizes.
    var small = await MemoryAsync(connectionString, rows);
    await LoadUsersAsync(connectionString, rows + 1, bigRows);
    var big = await MemoryAsync(connectionString, bigRows);

    var copyMedian = Median(copy);
    var dbsyncMedian = Median(dbsync);
    Console.WriteLine();
    Console.WriteLine($"users rows: {rows:N0}; chunk size {new DBSyncOptions().SnapshotChunkSize}; medians of 3");
    Console.WriteLine($"binary COPY into User objects: {copyMedian:0.000} s ({rows / copyMedian:N0} rows/s)");
    Console.WriteLine($"DBSync snapshot (Read changes): {dbsyncMedian:0.000} s ({rows / dbsyncMedian:N0} rows/s)");
    Console.WriteLine($"pgbench -c 4 -j 2 -T 10 (scale 10): {Median(without):0} tps without, {Median(during):0} tps during snapshots");
    Console.WriteLine($"peak working set: {small.WorkingSet / 1048576.0:0.0} MB at {rows:N0} rows, {big.WorkingSet / 1048576.0:0.0} MB at {bigRows:N0} rows " +
                      $"(managed heap peak {small.Managed / 1048576.0:0.0} MB and {big.Managed / 1048576.0:0.0} MB)");
    Console.WriteLine("reproduce: benchmarks/run-snapshot.sh");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio snapshot dbsync/copy = {dbsyncMedian / copyMedian:0.00}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio tps during/without = {Median(during) / Median(without):0.00}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio peak memory 5M/1M = {(double)big.WorkingSet / small.WorkingSet:0.00}"));
});

static Task ChunkSweepAsync(int rows) => WithDatabaseAsync(rows, async (_, connectionString) =>
{
    var copy = new List<double>();
    for (var round = 0; round < 3; round++)
        copy.Add(await CopyAsync(connectionString, rows));
    Console.WriteLine($"copy: {Median(copy):0.000} s");
    foreach (var size in new[] { 256, 1024, 4096, 8192, 16384 })
    {
        var times = new List<double>();
        for (var round = 0; round < 3; round++)
            times.Add(await SnapshotAsync(connectionString, rows, size));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"chunk {size,6}: {Median(times):0.000} s, ratio to copy {Median(times) / Median(copy):0.00}"));
    }
});

// A server (throwaway unless POSTGRES_* is set) with a database holding the seed schema and `rows` users.
static async Task WithDatabaseAsync(int rows, Func<PostgresServer, string, Task> body)
{
    await using var server = await PostgresServer.StartAsync(new Dictionary<string, string> { ["shared_buffers"] = "512MB", ["max_wal_size"] = "4GB" });
    var database = await server.CreateDatabaseAsync("dbsync_bench");
    try
    {
        var connectionString = server.ConnectionStringFor(database);
        await LoadUsersAsync(connectionString, 1, rows);
        await body(server, connectionString);
    }
    finally
    {
        await server.DropDatabaseAsync(database);
    }
}

static async Task LoadUsersAsync(string connectionString, int from, int to)
{
    await using var connection = new NpgsqlConnection(connectionString);
    await connection.OpenAsync();
    var sql = $"""
        INSERT INTO users (first_name, user_name, email, avatar, homepage, date_of_birth, address, interests)
        SELECT 'First' || g, 'user' || g, 'user' || g || '@example.com', 'https://img.example.com/' || g || '.png',
               CASE WHEN g % 3 = 0 THEN NULL ELSE 'https://example.com/~user' || g END, DATE '1950-01-01' + (g % 20000),
               g || ' Main Street, Springfield', ARRAY['food', 'travel', 'tag' || (g % 100)]
        FROM generate_series({from}, {to}) g;
        VACUUM ANALYZE users;
        """;
    if (from == 1)
    {
        await using var schema = new NpgsqlCommand(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "seed-schema.sql")), connection);
        await schema.ExecuteNonQueryAsync();
    }
    var watch = Stopwatch.StartNew();
    foreach (var statement in sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
    {
        await using var command = new NpgsqlCommand(statement, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync();
    }
    Console.WriteLine($"loaded users {from:N0}..{to:N0} in {watch.Elapsed.TotalSeconds:0.0} s");
}

// The baseline: the same rows into the same objects with Npgsql's binary COPY.
static async Task<double> CopyAsync(string connectionString, int rows)
{
    await using var connection = new NpgsqlConnection(connectionString);
    await connection.OpenAsync();
    var watch = Stopwatch.StartNew();
    var count = 0;
    long checksum = 0;
    await using (var export = await connection.BeginBinaryExportAsync(
        "COPY users (id, first_name, user_name, email, avatar, homepage, date_of_birth, address, interests) TO STDOUT (FORMAT BINARY)"))
    {
        while (await export.StartRowAsync() != -1)
        {
            var user = new User
            {
                Id = await export.ReadAsync<int>(),
                FirstName = await export.ReadAsync<string>(),
                UserName = await export.ReadAsync<string>(),
                Email = await export.ReadAsync<string>(),
                Avatar = export.IsNull ? SkipNull<string>(export) : await export.ReadAsync<string>(),
                Homepage = export.IsNull ? SkipNull<string>(export) : await export.ReadAsync<string>(),
                DateOfBirth = export.IsNull ? SkipValue<DateOnly>(export) : await export.ReadAsync<DateOnly>(),
                Address = export.IsNull ? SkipNull<string>(export) : await export.ReadAsync<string>(),
                Interests = export.IsNull ? SkipNull<string[]>(export) : await export.ReadAsync<string[]>(),
            };
            checksum += user.Id;
            count++;
        }
    }
    watch.Stop();
    Check(count, rows, checksum);
    return watch.Elapsed.TotalSeconds;

    static T? SkipNull<T>(NpgsqlBinaryExporter export) where T : class
    {
        export.Skip();
        return null;
    }

    static T? SkipValue<T>(NpgsqlBinaryExporter export) where T : struct
    {
        export.Skip();
        return null;
    }
}

// DBSync: the stream runs, and the table's snapshot is delivered to a typed handler as Read changes.
static async Task<double> SnapshotAsync(string connectionString, int rows, int? chunkSize)
{
    var options = new DBSyncOptions
    {
        ConnectionString = connectionString,
        SlotName = "bench",
        PublicationName = "bench",
        InitialSnapshot = false,
    };
    if (chunkSize is { } size)
        options.SnapshotChunkSize = size;
    var client = new DBSyncClient(options);
    var count = 0;
    long checksum = 0;
    client.On<User>(change =>
    {
        if (change.Kind == ChangeKind.Read)
        {
            count++;
            checksum += change.Row!.Id;
        }
    });
    using var stop = new CancellationTokenSource();
    var run = client.RunAsync(stop.Token);
    await Task.WhenAny(client.Streaming, run);
    await client.Streaming;
    var watch = Stopwatch.StartNew();
    await client.SnapshotAsync<User>();
    watch.Stop();
    await stop.CancelAsync();
    await run;
    // Each measurement gets a new slot: a slot left behind would stream the next table load into the next snapshot.
    await using (var connection = new NpgsqlConnection(connectionString))
    {
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand("SELECT pg_drop_replication_slot('bench')", connection);
        await drop.ExecuteNonQueryAsync();
    }
    Check(count, rows, checksum);
    return watch.Elapsed.TotalSeconds;
}

static async Task<double> PgbenchAsync(string pgbench, NpgsqlConnectionStringBuilder builder)
{
    var output = await RunAsync(pgbench, $"-c 4 -j 2 -T 10 -n -h {builder.Host} -p {builder.Port} -U {builder.Username} {builder.Database}");
    var line = output.Split('\n').First(l => l.StartsWith("tps = ", StringComparison.Ordinal));
    return double.Parse(line["tps = ".Length..].Split(' ')[0], CultureInfo.InvariantCulture);
}

static async Task<double> PgbenchDuringSnapshotsAsync(string pgbench, NpgsqlConnectionStringBuilder builder, string connectionString, int rows)
{
    using var stop = new CancellationTokenSource();
    var snapshots = Task.Run(async () =>
    {
        while (!stop.IsCancellationRequested)
            await SnapshotAsync(connectionString, rows, chunkSize: null);
    });
    await Task.Delay(500); // the first snapshot is under way
    var tps = await PgbenchAsync(pgbench, builder);
    await stop.CancelAsync();
    await snapshots;
    return tps;
}

static async Task<(long WorkingSet, long Managed)> MemoryAsync(string connectionString, int rows)
{
    var self = Environment.ProcessPath!;
    var arguments = self.EndsWith("dotnet", StringComparison.Ordinal) ? $"\"{typeof(Program).Assembly.Location}\" " : "";
    var output = await RunAsync(self, $"{arguments}memory \"{connectionString}\" {rows}");
    var line = output.Split('\n').First(l => l.StartsWith("peak ", StringComparison.Ordinal)).Split(' ');
    return (long.Parse(line[1], CultureInfo.InvariantCulture), long.Parse(line[2], CultureInfo.InvariantCulture));
}

static async Task MemoryChildAsync(string connectionString, int rows)
{
    var seconds = await SnapshotAsync(connectionString, rows, chunkSize: null);
    using var process = Process.GetCurrentProcess();
    process.Refresh();
    var managed = GC.GetGCMemoryInfo(GCKind.Any).HeapSizeBytes;
    long peakManaged = 0;
    foreach (var kind in new[] { GCKind.Ephemeral, GCKind.FullBlocking, GCKind.Background })
        peakManaged = Math.Max(peakManaged, GC.GetGCMemoryInfo(kind).HeapSizeBytes);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"peak {process.PeakWorkingSet64} {Math.Max(managed, peakManaged)} {seconds:0.000}"));
}

static async Task<string> RunAsync(string file, string arguments)
{
    var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
    using var process = Process.Start(start)!;
    var stdout = process.StandardOutput.ReadToEndAsync();
    var stderr = process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    if (process.ExitCode != 0)
        throw new InvalidOperationException($"{Path.GetFileName(file)} {arguments} failed ({process.ExitCode}): {await stderr}{await stdout}");
    return await stdout + await stderr;
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
}

static void Check(int count, int rows, long checksum)
{
    var expected = (long)rows * (rows + 1) / 2;
    if (count != rows || checksum != expected)
        throw new InvalidOperationException($"Read {count} rows (id sum {checksum}); expected {rows} (id sum {expected}).");
}
