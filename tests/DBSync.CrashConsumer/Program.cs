// A change consumer for the crash test. Environment:
//   DBSYNC_CRASH_SOURCE   connection string of the source database (seed schema)
//   DBSYNC_CRASH_REPLICA  connection string of the replica database (seed tables, keys only)
//   DBSYNC_CRASH_LOG      file to append "<run> <xid> <commit lsn> <UTC ticks> <process id>" to, one line per delivered
//                         transaction
//   DBSYNC_CRASH_RUN      this run's number
//   DBSYNC_CRASH_STANDBY  1: stand by while another run holds the slot (SlotInUse.Wait), else fail
// Optional:
//   DBSYNC_CRASH_EVENTS   file to append "<run> <process id> <UTC ticks> role <role>" to at each change of the client's
//                         Role (looked at every 10 ms), and "<run> <process id> <UTC ticks> snapshot <progress kind>
//                         <table> <detail>" at each snapshot progress report (detail: whether a table's start resumed,
//                         a chunk's number, else -)
//   DBSYNC_CRASH_CHUNK_SIZE, DBSYNC_CRASH_CHUNK_DELAY_MS  the snapshot's chunk size (10) and delay between chunks (50 ms)
//   DBSYNC_CRASH_STANDBY_POLL_MS  StandbyPollInterval (100 ms)
//   DBSYNC_CRASH_RECEIVE_TIMEOUT_S  ReceiveTimeout (DBSync's default, 60 s)
//   DBSYNC_CRASH_STDERR_LOG  1: DBSync's log (Information and above) on standard error, each line with its UTC ticks
// Changes go through the effectively-once applier: each source transaction is applied in one replica transaction that
// records its commit position, and transactions delivered again after a kill are skipped. Every applied change (not
// snapshot rows) is also logged in applied_change, whose primary key is the change's WAL position: applying a change
// twice would violate it and end this process with an error. The delivery log, written by a transaction handler
// before the transaction is confirmed, shows what the stream delivered (at least once).
using System.Globalization;
using DBSync;
using DBSync.Sample;
using Npgsql;

var source = Required("DBSYNC_CRASH_SOURCE");
var replica = Required("DBSYNC_CRASH_REPLICA");
var logPath = Required("DBSYNC_CRASH_LOG");
var run = Required("DBSYNC_CRASH_RUN");
var processId = Environment.ProcessId;
var eventsPath = Environment.GetEnvironmentVariable("DBSYNC_CRASH_EVENTS") is { Length: > 0 } events ? events : null;

// Several runs may have the file open at once (one delivering, others standing by): each line goes at the end as it is
// then, not where the file ended when this run opened it.
await using var logFile = new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
await using var log = new StreamWriter(logFile) { AutoFlush = true };

var client = new DBSyncClient(new DBSyncOptions
{
    ConnectionString = source,
    SlotName = "dbsync_crash",
    PublicationName = "dbsync_crash",
    InitialSnapshot = true,
    SnapshotChunkSize = Number("DBSYNC_CRASH_CHUNK_SIZE", 10),
    SnapshotChunkDelay = TimeSpan.FromMilliseconds(Number("DBSYNC_CRASH_CHUNK_DELAY_MS", 50)),
    // Parallel snapshot reads as the suite runs them (its DBSYNC_TEST_SNAPSHOT_PARALLELISM, default 2).
    SnapshotParallelism = Environment.GetEnvironmentVariable("DBSYNC_TEST_SNAPSHOT_PARALLELISM") is { Length: > 0 } parallelism
        ? int.Parse(parallelism, System.Globalization.CultureInfo.InvariantCulture)
        : 2,
    StatusInterval = TimeSpan.FromMilliseconds(200),
    WhenSlotInUse = Environment.GetEnvironmentVariable("DBSYNC_CRASH_STANDBY") == "1" ? SlotInUse.Wait : SlotInUse.Fail,
    StandbyPollInterval = TimeSpan.FromMilliseconds(Number("DBSYNC_CRASH_STANDBY_POLL_MS", 100)),
    ReceiveTimeout = TimeSpan.FromSeconds(Number("DBSYNC_CRASH_RECEIVE_TIMEOUT_S", 60)),
    // The transport the test suite runs on (its DBSYNC_TEST_TRANSPORT, inherited by this process).
    ReplicationTransport = Environment.GetEnvironmentVariable("DBSYNC_TEST_TRANSPORT") is { Length: > 0 } transport
        ? Enum.Parse<ReplicationTransport>(transport, ignoreCase: true)
        : ReplicationTransport.Auto,
    LoggerFactory = Environment.GetEnvironmentVariable("DBSYNC_CRASH_STDERR_LOG") == "1" ? new StandardErrorLog() : null,
});

await using var applier = new PostgresApplier(client, replica, "crash_consumer");
applier.Map<User>((change, target, ct) => ApplyAsync(change, target, ct,
    "DELETE FROM users WHERE id = $1", u => [u.Id],
    "INSERT INTO users (id, first_name, user_name, email, avatar, homepage, date_of_birth, address, interests) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) " +
    "ON CONFLICT (id) DO UPDATE SET first_name = $2, user_name = $3, email = $4, avatar = $5, homepage = $6, date_of_birth = $7, address = $8, interests = $9",
    u => [u.Id, u.FirstName, u.UserName, u.Email, u.Avatar, u.Homepage, u.DateOfBirth, u.Address, u.Interests],
    "TRUNCATE users"));
applier.Map<Restaurant>((change, target, ct) => ApplyAsync(change, target, ct,
    "DELETE FROM restaurant WHERE id = $1", r => [r.Id],
    "INSERT INTO restaurant (id, name, description, address, rating, tags) VALUES ($1, $2, $3, $4, $5, $6) " +
    "ON CONFLICT (id) DO UPDATE SET name = $2, description = $3, address = $4, rating = $5, tags = $6",
    r => [r.Id, r.Name, r.Description, r.Address, r.Rating, r.Tags],
    "TRUNCATE restaurant"));
applier.Map<Visit>((change, target, ct) => ApplyAsync(change, target, ct,
    "DELETE FROM visit WHERE user_id = $1 AND restaurant_id = $2", v => [v.UserId, v.RestaurantId],
    "INSERT INTO visit (user_id, restaurant_id, amount_spent, visit_rating) VALUES ($1, $2, $3, $4) " +
    "ON CONFLICT (user_id, restaurant_id) DO UPDATE SET amount_spent = $3, visit_rating = $4",
    v => [v.UserId, v.RestaurantId, v.AmountSpent, v.VisitRating],
    "TRUNCATE visit"));
client.OnTransaction(async (tx, ct) =>
{
    logFile.Seek(0, SeekOrigin.End);
    await log.WriteLineAsync($"{run} {tx.Xid} {tx.CommitLsn} {DateTime.UtcNow.Ticks} {processId}".AsMemory(), ct);
});

// The events file: role changes and snapshot progress, each line written whole at the end of the file.
using var eventsFile = eventsPath is null ? null : new AppendOnlyFile(eventsPath);
void Event(string text) => eventsFile?.AppendLine($"{run} {processId} {DateTime.UtcNow.Ticks} {text}");
client.OnSnapshotProgress(progress => Event(
    $"snapshot {progress.GetType().Name} {progress.Table ?? "-"} {progress switch
    {
        SnapshotTableStarted started => started.Resumed.ToString(),
        SnapshotChunkCompleted chunk => chunk.Chunk.ToString(CultureInfo.InvariantCulture),
        _ => "-",
    }}"));

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
var watchRole = eventsFile is null ? Task.CompletedTask : Task.Run(async () =>
{
    var role = (DBSyncRole)(-1);
    while (!stop.IsCancellationRequested)
    {
        if (client.Role != role)
        {
            role = client.Role;
            Event($"role {role}");
        }
        await Task.Delay(10, CancellationToken.None);
    }
});
try
{
    await client.RunAsync(stop.Token);
}
finally
{
    await stop.CancelAsync();
    await watchRole;
    eventsFile?.Dispose();
}
return 0;

async ValueTask ApplyAsync<T>(Change<T> change, ApplyContext target, CancellationToken cancellationToken, string delete, Func<T, object?[]> key,
    string upsert, Func<T, object?[]> values, string truncate) where T : ISyncTable<T>
{
    switch (change.Kind)
    {
        case ChangeKind.Truncate:
            await ExecuteAsync(target, truncate, [], cancellationToken);
            break;
        case ChangeKind.Delete:
            await ExecuteAsync(target, delete, key(change.Old!), cancellationToken);
            break;
        default:
            if (change.Old is not null)
                await ExecuteAsync(target, delete, key(change.Old), cancellationToken); // a key update leaves the old key
            await ExecuteAsync(target, upsert, values(change.New!), cancellationToken);
            break;
    }
    if (change.Kind != ChangeKind.Read)
        await ExecuteAsync(target, "INSERT INTO applied_change (xid, lsn) VALUES ($1, $2::text::pg_lsn)", [(long)change.Xid, change.Lsn.ToString()], cancellationToken);
}

static async Task ExecuteAsync(ApplyContext target, string sql, object?[] parameters, CancellationToken cancellationToken)
{
    await using var command = target.CreateCommand(sql);
    foreach (var value in parameters)
        command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
    await command.ExecuteNonQueryAsync(cancellationToken);
}

static int Number(string name, int otherwise)
    => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : otherwise;

static string Required(string name)
    => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
        ? value
        : throw new InvalidOperationException($"Set {name} (see the comment at the top of Program.cs).");

/// <summary>DBSync's log on standard error, one line per entry: UTC ticks, level, event id, message, exception.</summary>
internal sealed class StandardErrorLog : Microsoft.Extensions.Logging.ILoggerFactory, Microsoft.Extensions.Logging.ILogger
{
    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(Microsoft.Extensions.Logging.ILoggerProvider provider)
    {
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Information;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception,
        Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
            Console.Error.WriteLine($"{DateTime.UtcNow.Ticks} {logLevel} {eventId.Id} {formatter(state, exception)}{(exception is null ? "" : " | " + exception.GetType().Name + ": " + exception.Message)}");
    }

    public void Dispose()
    {
    }
}
