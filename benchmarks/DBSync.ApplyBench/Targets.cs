using System.Diagnostics;
using DBSync.Bench;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.ApplyBench;

/// <summary>A target database that a copier fills from the source and keeps up to date.</summary>
internal abstract class CopyTarget : IAsyncDisposable
{
    protected CopyTarget(string name, string connectionString)
    {
        Name = name;
        ConnectionString = connectionString;
    }

    /// <summary>"subscription" or "dbsync", as the report names it.</summary>
    public string Name { get; }

    /// <summary>The target database.</summary>
    public string ConnectionString { get; }

    /// <summary>Starts the initial copy (and the stream after it).</summary>
    public abstract Task StartAsync();

    /// <summary>Completes when the copier says its initial copy is done (the caller then checks the counts).</summary>
    public abstract Task CopyReportedAsync();

    /// <summary>The end position of the last source transaction the target committed, or null before the first.</summary>
    public abstract Task<ulong?> AppliedLsnAsync();

    /// <summary>Throws when the copier stopped with an error, so that no wait for it runs forever.</summary>
    public virtual void ThrowIfFailed()
    {
    }

    public abstract ValueTask DisposeAsync();
}

/// <summary>PostgreSQL's own logical replication: <c>CREATE SUBSCRIPTION ... WITH (copy_data = true)</c>, defaults otherwise.</summary>
internal sealed class SubscriptionTarget(string connectionString, string sourceConnectionString, string subscription) : CopyTarget("subscription", connectionString)
{
    /// <summary>
    /// PostgreSQL's logical replication launcher starts workers at most once per <c>wal_retrieve_retry_interval</c> (5 s by
    /// default): a subscription created within about that long of the previous one's drop waited for it (here 6.6 to 7.8 s
    /// for a copy that otherwise takes 1.8 s). A user's one subscription does not meet that, so each is created at least
    /// this long after the last drop.
    /// </summary>
    private static readonly TimeSpan s_sinceLastDrop = TimeSpan.FromSeconds(6);

    private static readonly Stopwatch s_lastDrop = new();

    public override async Task StartAsync()
    {
        if (s_lastDrop.IsRunning && s_lastDrop.Elapsed < s_sinceLastDrop)
            await Task.Delay(s_sinceLastDrop - s_lastDrop.Elapsed);
        var source = new NpgsqlConnectionStringBuilder(sourceConnectionString);
        var conninfo = $"host={source.Host} port={source.Port} user={source.Username} dbname={source.Database}";
        await PgbenchSchema.ExecuteAsync(ConnectionString,
            $"CREATE SUBSCRIPTION {subscription} CONNECTION '{conninfo}' PUBLICATION {PgbenchSchema.Publication} WITH (copy_data = true)");
    }

    /// <summary>Every table's initial copy finished: state synchronized (s) or ready (r) in pg_subscription_rel.</summary>
    public override async Task CopyReportedAsync()
    {
        const string pending = "SELECT count(*) FILTER (WHERE r.srsubstate NOT IN ('s', 'r')) + (4 - count(*)) FROM pg_subscription_rel r " +
                               "JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1";
        while (await PgbenchSchema.ScalarAsync<long>(ConnectionString, pending, subscription) != 0)
            await Task.Delay(50);
    }

    /// <summary>The remote end position of the last transaction applied, from the subscription's replication origin.</summary>
    public override async Task<ulong?> AppliedLsnAsync()
    {
        var lsn = await PgbenchSchema.ScalarAsync<object>(ConnectionString,
            "SELECT o.remote_lsn FROM pg_replication_origin_status o JOIN pg_subscription s ON o.external_id = 'pg_' || s.oid WHERE s.subname = $1",
            subscription);
        return lsn is NpgsqlLogSequenceNumber applied && (ulong)applied != 0 ? (ulong)applied : null;
    }

    public override async ValueTask DisposeAsync()
    {
        await PgbenchSchema.ExecuteAsync(ConnectionString, $"DROP SUBSCRIPTION IF EXISTS {subscription}"); // drops its slot on the source
        s_lastDrop.Restart();
    }
}

/// <summary>DBSync: a client with an initial snapshot of the four tables, applied by a <see cref="PostgresApplier"/>.</summary>
internal sealed class DbSyncTarget : CopyTarget
{
    private readonly DBSyncClient _client;
    private readonly PostgresApplier _applier;
    private readonly string _sourceConnectionString;
    private readonly string _slot;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _copied = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HashSet<string> _tablesCopied = [];
    private Task _run = Task.CompletedTask;

    public DbSyncTarget(string connectionString, string sourceConnectionString, string slot)
        : base("dbsync", connectionString)
    {
        _sourceConnectionString = sourceConnectionString;
        _slot = slot;
        var options = new DBSyncOptions
        {
            ConnectionString = sourceConnectionString,
            SlotName = slot,
            PublicationName = slot,
            InitialSnapshot = true,
        };
        // Knobs for comparing settings (run-apply.sh prints the ones set): the chunk size and the readers of a snapshot.
        if (Environment.GetEnvironmentVariable("DBSYNC_SNAPSHOT_CHUNK_SIZE") is { Length: > 0 } chunk)
            options.SnapshotChunkSize = int.Parse(chunk, System.Globalization.CultureInfo.InvariantCulture);
        if (Environment.GetEnvironmentVariable("DBSYNC_SNAPSHOT_PARALLELISM") is { Length: > 0 } readers)
            options.SnapshotParallelism = int.Parse(readers, System.Globalization.CultureInfo.InvariantCulture);
        _client = new DBSyncClient(options);
        _applier = new PostgresApplier(_client, connectionString, name: slot);
        if (Environment.GetEnvironmentVariable("DBSYNC_MAX_GROUP_DELAY_MS") is { Length: > 0 } delay)
            _applier.MaxGroupDelay = TimeSpan.FromMilliseconds(int.Parse(delay, System.Globalization.CultureInfo.InvariantCulture));
        PgbenchMapping.MapPgbenchTables(_applier);
        _client.OnSnapshotProgress(progress =>
        {
            switch (progress)
            {
                case SnapshotTableCompleted completed:
                    lock (_tablesCopied)
                    {
                        if (_tablesCopied.Add(completed.Table!) && _tablesCopied.Count == PgbenchSchema.Tables.Length)
                            _copied.TrySetResult();
                    }
                    break;
                case SnapshotTableSkipped or SnapshotTableFailed or SnapshotTableCancelled:
                    _copied.TrySetException(new InvalidOperationException($"DBSync's initial snapshot did not complete: {progress}"));
                    break;
            }
        });
    }

    public override Task StartAsync()
    {
        _run = _client.RunAsync(_stop.Token);
        return Task.CompletedTask;
    }

    public override async Task CopyReportedAsync()
    {
        await Task.WhenAny(_copied.Task, _run);
        ThrowIfFailed();
        await _copied.Task;
    }

    /// <summary>The end position the applier recorded with its last target transaction (its progress table).</summary>
    public override async Task<ulong?> AppliedLsnAsync()
    {
        await using var connection = await Connections.OpenWithoutTimeoutAsync(ConnectionString);
        await using var command = new NpgsqlCommand(
            "SELECT end_lsn FROM public.dbsync_applied WHERE name = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = _slot });
        try
        {
            return await command.ExecuteScalarAsync() is NpgsqlLogSequenceNumber applied ? (ulong)applied : null;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return null; // created with the applier's first target transaction
        }
    }

    public override void ThrowIfFailed()
    {
        if (_run.IsCompleted)
            throw new InvalidOperationException("DBSync's run ended before the benchmark stopped it.", _run.Exception?.InnerException);
    }

    public override async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _run;
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _stop.Dispose();
            await _applier.DisposeAsync();
            await Slots.DropAsync(_sourceConnectionString, _slot);
        }
    }
}

/// <summary>Waits for a condition on each target at once, polled every 50 ms; returns each target's seconds from
/// <paramref name="clock"/>'s reading when it held.</summary>
internal static class Wait
{
    private static readonly TimeSpan s_limit = TimeSpan.FromHours(2);

    public static async Task<double[]> ForEachAsync(IReadOnlyList<CopyTarget> targets, Stopwatch clock, string what, Func<CopyTarget, Task<bool>> done)
    {
        var seconds = new double[targets.Count];
        var pending = Enumerable.Range(0, targets.Count).ToList();
        while (pending.Count > 0)
        {
            foreach (var i in pending.ToArray())
            {
                targets[i].ThrowIfFailed();
                if (await done(targets[i]))
                {
                    seconds[i] = clock.Elapsed.TotalSeconds;
                    pending.Remove(i);
                }
            }
            if (clock.Elapsed > s_limit)
                throw new TimeoutException($"After {s_limit.TotalMinutes:0} minutes, {string.Join(" and ", pending.Select(i => targets[i].Name))} still had not {what}.");
            if (pending.Count > 0)
                await Task.Delay(50);
        }
        return seconds;
    }
}
