using System.Diagnostics;
using System.Globalization;
using DBSync;
using DBSync.Testing;
using Npgsql;
using NpgsqlTypes;

// Usage: dotnet run -c Release --project benchmarks/DBSync.ApplierBench -- [rounds] [single-row transactions] [big transaction rows] [hand-written rounds]
// The hand-written mapping runs in fewer rounds: it is slow and steady. A size of 0 leaves its scenario out.
var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
var singles = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 100_000;
var bigRows = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1_000_000;
var handBigRounds = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1;

// DBSYNC_BATCH_SIZE: statements per round trip of the generated mapping (and the run length after which changes are
// staged), to compare sizes; printed when set.
if (Environment.GetEnvironmentVariable("DBSYNC_BATCH_SIZE") is { Length: > 0 } batchSize)
{
    DBSync.Applying.ApplyBatch.MaxCommands = int.Parse(batchSize, CultureInfo.InvariantCulture);
    Console.WriteLine($"DBSYNC_BATCH_SIZE={batchSize}");
}

var fast = new Dictionary<string, string> { ["synchronous_commit"] = "off", ["max_wal_size"] = "4GB", ["max_replication_slots"] = "40", ["max_wal_senders"] = "20" };
await using var sourceServer = await PostgresServer.StartAsync(fast, forceLocal: true);
await using var targetServer = await PostgresServer.StartAsync(fast, forceLocal: true);
var source = sourceServer.ConnectionStringFor(await sourceServer.CreateDatabaseAsync("apply_src"));
var target = targetServer.ConnectionStringFor(await targetServer.CreateDatabaseAsync("apply_dst"));
await ExecuteAsync(target, BenchRow.CreateSql);

Console.WriteLine($"source and target: two throwaway PostgreSQL clusters on this machine ({Environment.ProcessorCount} cores)");
foreach (var (name, _, produce, handRounds) in new (string, int, Func<Task>, int)[]
         {
             ($"{singles:N0} single-row transactions", singles, () => ExecuteAsync(source, $"DO $$ BEGIN FOR i IN 1..{singles - 1} LOOP INSERT INTO bench_rows VALUES (i, 'row ' || i, i * 1.5, now(), ARRAY['a', i::text]); COMMIT; END LOOP; END $$"), handBigRounds),
             ($"one {bigRows:N0}-row transaction", bigRows, () => ExecuteAsync(source, $"INSERT INTO bench_rows SELECT i, 'row ' || i, i * 1.5, now(), ARRAY['a', i::text] FROM generate_series(1, {bigRows - 1}) i"), handBigRounds),
         }.Where(scenario => scenario.Item2 > 0))
{
    // The backlog: a template slot before it, so that every drain reads the same WAL through a copy of the slot.
    await ExecuteAsync(source, "DROP TABLE IF EXISTS bench_rows; " + BenchRow.CreateSql + " DROP PUBLICATION IF EXISTS bench; CREATE PUBLICATION bench FOR TABLE bench_rows");
    await ExecuteAsync(source, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots");
    await ExecuteAsync(source, "SELECT pg_create_logical_replication_slot('bench_template', 'pgoutput')");
    await produce();
    var beforeLast = NpgsqlLogSequenceNumber.Parse(await ScalarAsync<string>(source, "SELECT pg_current_wal_insert_lsn()::text"));
    await ExecuteAsync(source, "INSERT INTO bench_rows VALUES (0, 'last', 0, now(), NULL)");
    var changes = await ScalarAsync<long>(source, "SELECT count(*) FROM bench_rows");

    var results = new Dictionary<string, List<double>> { ["hand-written Map<T>"] = [], ["generated MapTable<T>"] = [] };
    for (var round = 0; round < rounds; round++)
    {
        foreach (var variant in results.Keys)
        {
            if (variant.StartsWith("hand", StringComparison.Ordinal) && round >= handRounds)
                continue;
            var slot = $"bench_{round}_{(variant.StartsWith("hand", StringComparison.Ordinal) ? "h" : "g")}";
            await ExecuteAsync(source, $"SELECT pg_copy_logical_replication_slot('bench_template', '{slot}')");
            await ExecuteAsync(target, "TRUNCATE bench_rows; DROP TABLE IF EXISTS dbsync_applied");
            var seconds = await DrainAsync(slot, variant.StartsWith("gen", StringComparison.Ordinal), beforeLast);
            Assert(await ScalarAsync<long>(target, "SELECT count(*) FROM bench_rows") == changes, "the target has every row");
            await ExecuteAsync(source, $"SELECT pg_drop_replication_slot('{slot}')");
            results[variant].Add(changes / seconds);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name}, round {round + 1}, {variant}: {seconds:F1} s, {changes / seconds:N0} changes/s"));
        }
    }
    foreach (var (variant, rates) in results)
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}, {variant}: median {Median(rates):N0} changes/s over {rates.Count} round(s)"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio apply {name} generated/hand-written = {Median(results["generated MapTable<T>"]) / Median(results["hand-written Map<T>"]):F2}"));
}

async Task<double> DrainAsync(string slot, bool generated, NpgsqlLogSequenceNumber beforeLast)
{
    var client = new DBSyncClient(new DBSyncOptions
    {
        ConnectionString = source, SlotName = slot, PublicationName = "bench", InitialSnapshot = false,
    });
    var applier = new PostgresApplier(client, target, slot);
    if (generated)
        applier.MapTable<BenchRow>();
    else
        applier.Map<BenchRow>(HandWrittenAsync);
    using var stop = new CancellationTokenSource();
    var clock = Stopwatch.StartNew();
    var run = client.RunAsync(stop.Token);
    while (applier.AppliedCommitLsn <= beforeLast)
    {
        if (run.IsCompleted)
            await run;
        await Task.Delay(10);
    }
    var seconds = clock.Elapsed.TotalSeconds;
    await stop.CancelAsync();
    try
    {
        await run;
    }
    catch (OperationCanceledException)
    {
    }
    await applier.DisposeAsync();
    return seconds;
}

// One statement per change, one round trip each: the hand-written mapping of the applier's documentation before issue 18.
static async ValueTask HandWrittenAsync(Change<BenchRow> change, ApplyContext target, CancellationToken cancellationToken)
{
    var row = change.New ?? change.Old!;
    await using var command = change.Kind == ChangeKind.Delete
        ? target.CreateCommand("DELETE FROM bench_rows WHERE id = $1")
        : target.CreateCommand("INSERT INTO bench_rows (id, label, amount, created_at, tags) VALUES ($1, $2, $3, $4, $5) " +
                               "ON CONFLICT (id) DO UPDATE SET label = $2, amount = $3, created_at = $4, tags = $5");
    command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = row.Id });
    if (change.Kind != ChangeKind.Delete)
    {
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = row.Label });
        command.Parameters.Add(new NpgsqlParameter<decimal> { TypedValue = row.Amount });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = row.CreatedAt, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)row.Tags ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
    }
    await command.ExecuteNonQueryAsync(cancellationToken);
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
}

static void Assert(bool condition, string what)
{
    if (!condition)
        throw new InvalidOperationException("Check failed: " + what);
}

static async Task ExecuteAsync(string connectionString, string sql)
{
    await using var connection = new NpgsqlConnection(connectionString);
    await connection.OpenAsync();
    await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
    await command.ExecuteNonQueryAsync();
}

static async Task<T> ScalarAsync<T>(string connectionString, string sql)
{
    await using var connection = new NpgsqlConnection(connectionString);
    await connection.OpenAsync();
    await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
    return (T)(await command.ExecuteScalarAsync())!;
}

/// <summary>A row of the benchmark's table: a key, text, numeric, a timestamp and an array.</summary>
[SyncTable("bench_rows")]
public sealed partial class BenchRow
{
    public const string CreateSql = "CREATE TABLE bench_rows (id bigint PRIMARY KEY, label text NOT NULL, amount numeric NOT NULL, created_at timestamptz NOT NULL, tags text[]);";

    [PrimaryKey]
    public long Id { get; set; }

    public string Label { get; set; } = "";

    public decimal Amount { get; set; }

    public DateTime CreatedAt { get; set; }

    public string?[]? Tags { get; set; }
}
