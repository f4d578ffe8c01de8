using System.Data;
using DBSync.Applying;
using DBSync.Internal;
using DBSync.Replication;
using Npgsql;
using NpgsqlTypes;

namespace DBSync;

/// <summary>
/// Applies changes to a target PostgreSQL database effectively once: all the changes of one source transaction are
/// applied in one target transaction, which also records the source transaction's commit position in a progress table.
/// After a crash the stream delivers again what the slot had not confirmed (at-least-once); the applier skips every
/// transaction whose commit position the target already recorded, so each source transaction takes effect in the
/// target exactly once.
/// </summary>
/// <remarks>
/// <para>Create it with the client before <see cref="DBSyncClient.RunAsync"/>, then <see cref="Map{T}"/> each table to the
/// statements that apply its changes, through the <see cref="ApplyContext"/> (its connection and open transaction).
/// Snapshot rows (<see cref="ChangeKind.Read"/>) are applied the same way, in the transaction of their chunk; write them
/// as upserts, since a chunk cut short by a crash is read again.</para>
/// <para>The progress table (default <c>public.dbsync_applied</c>: <c>name text PRIMARY KEY, commit_lsn pg_lsn,
/// end_lsn pg_lsn, xid bigint, applied_at timestamptz</c>) is created in the target database on first use; one row per
/// applier <c>name</c>, so several pipelines can share a target.</para>
/// <para>A failing statement rolls the target transaction back and, under <see cref="HandlerFailurePolicy.Stop"/>, stops
/// the stream; the next run delivers the source transaction again and it is applied whole. Under
/// <see cref="HandlerFailurePolicy.Retry"/> every change runs behind a savepoint, so a retried change starts from the
/// state before it.</para>
/// <para>A lost target connection (the target server restarted, the backend was terminated, the network dropped) is
/// neither: under either policy the stream reconnects as after a lost replication connection, with the same backoff,
/// once the target answers again, and the source transaction, never confirmed, is delivered again from the slot and
/// applied whole (or skipped, if its target commit went through). The applier keeps a connection pool of its own, which
/// it clears after a loss. A target it could not reach even once in this process is an error, not a loss.</para>
/// </remarks>
public sealed class PostgresApplier : IAsyncDisposable, ICommitGroupSink
{
    private const string Savepoint = "dbsync_change";

    private readonly NpgsqlDataSource _dataSource;
    private readonly IChangeSource _source;
    private readonly string _target;
    private readonly string _name;
    private readonly string _progressTable;
    private readonly string _progressSql;
    private readonly bool _savepoints;
    private readonly List<IMappedTable> _mappings = [];
    private readonly List<Func<ApplyContext, CancellationToken, ValueTask>> _endHooks = [];
    private NpgsqlConnection? _connection;
    private NpgsqlTransaction? _transaction;
    private ApplyContext? _context;
    private ulong _applied;
    private bool _loaded;
    private ulong? _failedCommit;
    private bool _reachedTarget;
    private bool _lost;
    private int _lossesSinceCommit;
    private ulong _currentCommit;
    private int _grouped;
    private long _groupStarted;
    private (NpgsqlLogSequenceNumber Commit, NpgsqlLogSequenceNumber End, uint Xid) _lastEnded;
    private int _maxGroupedTransactions = 1000;
    private TimeSpan _maxGroupDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>Creates an applier that applies the changes <paramref name="client"/> delivers.</summary>
    /// <param name="client">The client whose changes are applied; not yet running.</param>
    /// <param name="connectionString">An Npgsql connection string for the target database.</param>
    /// <param name="name">This applier's row in the progress table (for example the slot name).</param>
    /// <param name="progressTable">The progress table, <c>schema.name</c> or <c>name</c> (then in <c>public</c>).</param>
    public PostgresApplier(DBSyncClient client, string connectionString, string name, string progressTable = "public.dbsync_applied")
        : this((IChangeSource)(client ?? throw new ArgumentNullException(nameof(client))), connectionString, name, progressTable)
    {
    }

    /// <summary>Creates an applier of the changes <paramref name="source"/> delivers (a client, or a consumer of a stream
    /// the changes were published to).</summary>
    internal PostgresApplier(IChangeSource source, string connectionString, string name, string progressTable)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(progressTable);
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        // Recognizable in pg_stat_activity (the snapshot throttle leaves DBSync's own sessions out by it).
        if (string.IsNullOrEmpty(target.ApplicationName))
            target.ApplicationName = ApplicationNamePrefix + name;
        target.IncludeFailedBatchedCommand = true; // a failure in a batch names its change
        // A pool of its own: clearing it after the target was lost leaves the application's connections alone.
        _dataSource = NpgsqlDataSource.Create(target.ConnectionString);
        _target = $"database \"{target.Database}\" on {target.Host}:{target.Port}";
        _name = name;
        var dot = progressTable.IndexOf('.', StringComparison.Ordinal);
        _progressTable = dot < 0
            ? $"{SyncTableInfo.QuoteIdentifier("public")}.{SyncTableInfo.QuoteIdentifier(progressTable)}"
            : $"{SyncTableInfo.QuoteIdentifier(progressTable[..dot])}.{SyncTableInfo.QuoteIdentifier(progressTable[(dot + 1)..])}";
        _progressSql = $"INSERT INTO {_progressTable} (name, commit_lsn, end_lsn, xid, applied_at) VALUES ($1, $2, $3, $4, now()) " +
                       "ON CONFLICT (name) DO UPDATE SET commit_lsn = excluded.commit_lsn, end_lsn = excluded.end_lsn, xid = excluded.xid, applied_at = excluded.applied_at";
        _savepoints = source.RetriesFailedChange;
        Batch = new ApplyBatch(name);
        _source = source;
        source.AddSink(this);
    }

    /// <summary>The client whose changes this applier applies; null for an applier of a stream's consumer.</summary>
    public DBSyncClient? Client => _source as DBSyncClient;

    /// <summary>The commit position of the last source transaction applied to the target (known once the applier has
    /// read its progress row, at the first change).</summary>
    public NpgsqlLogSequenceNumber AppliedCommitLsn => new(_applied);

    /// <summary>The start of the target connection's <c>application_name</c>, followed by the applier's name, unless the
    /// connection string sets one.</summary>
    public const string ApplicationNamePrefix = "DBSync applier ";

    /// <summary>This applier's name (its row in the progress table).</summary>
    internal string Name => _name;

    /// <summary>The target database, for messages.</summary>
    internal string TargetDescription => _target;

    /// <summary>The statements of generated mappings not yet sent.</summary>
    internal ApplyBatch Batch { get; }

    /// <summary>Whether every change is sent at once: under <see cref="HandlerFailurePolicy.Retry"/> each change runs behind
    /// a savepoint of its own, so its statements cannot wait in a batch.</summary>
    internal bool FlushEachChange => _savepoints;

    /// <summary>Source transactions skipped because the target had applied them already (delivered again after a crash).</summary>
    public long SkippedTransactions { get; private set; }

    /// <summary>
    /// The most source transactions applied in one target transaction (default 1000; 1 applies each in its own). While
    /// the stream has more transactions waiting, the target transaction stays open for them, and commits when none is
    /// waiting, when it holds this many, after <see cref="MaxGroupDelay"/>, or before one of DBSync's own transactions
    /// (snapshot chunks). The progress row records the last of them in the same commit, and none of them is confirmed to
    /// the source before it, so each is still applied exactly once; a failure rolls the whole group back and the stream
    /// delivers it again.
    /// </summary>
    public int MaxGroupedTransactions
    {
        get => _maxGroupedTransactions;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _maxGroupedTransactions = value;
        }
    }

    /// <summary>The longest a target transaction stays open for more source transactions (default 100 ms: while the stream
    /// is never idle, a source transaction waits at most that long for its target commit; ten commits a second cost
    /// nothing measurable in run-apply, whose lag and catch-up were within the noise of those with one second).</summary>
    public TimeSpan MaxGroupDelay
    {
        get => _maxGroupDelay;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            _maxGroupDelay = value;
        }
    }

    /// <summary>Target transactions committed (each holds one or more source transactions).</summary>
    public long TargetCommits { get; private set; }

    /// <summary>Rows applied through COPY and one statement per kind (snapshot rows, and the changes of long runs of one
    /// table's changes), for tests and benchmarks.</summary>
    internal long StagedRows { get; set; }

    /// <summary>Of <see cref="StagedRows"/>, those copied straight into their target table (no staging table, no upsert).</summary>
    internal long DirectlyCopiedRows { get; set; }

    /// <summary>Applies changes of the table mapped by <typeparamref name="T"/> with <paramref name="apply"/>, inside the
    /// target transaction of the source transaction they belong to.</summary>
    public PostgresApplier Map<T>(Func<Change<T>, ApplyContext, CancellationToken, ValueTask> apply) where T : ISyncTable<T>
    {
        ArgumentNullException.ThrowIfNull(apply);
        // The statements of generated mappings before it go first: the hand-written ones may depend on them.
        return Register<T>(async (change, context, cancellationToken) =>
        {
            await Batch.FlushAsync(context, cancellationToken).ConfigureAwait(false);
            Batch.BreakRun();
            await apply(change, context, cancellationToken).ConfigureAwait(false);
        });
    }

    /// <summary>
    /// Applies changes of the table mapped by <typeparamref name="T"/> with statements generated from its mapping, into
    /// <paramref name="targetTable"/> of the target database (<c>schema.table</c>, or <c>table</c> in <c>public</c>; by
    /// default the source table's own name): inserts and updates as upserts on the key, deletes by key, truncates;
    /// snapshot rows, and long runs of the table's changes (past 200 in a row), through binary <c>COPY</c> (straight into
    /// the table when the rows only insert and no column needs a cast; else into a staging table, then one delete and one
    /// upsert). Statements are sent in pipelined batches within the target transaction (one at a time, and nothing
    /// staged, under <see cref="HandlerFailurePolicy.Retry"/>). The target table must exist with every mapped column and a
    /// primary key or unique index (not deferrable) on the key columns, and no INSERT or UPDATE rules; it is checked at the
    /// first change (docs/applier.md).
    /// </summary>
    /// <remarks>An update that left unchanged TOAST values out updates the other columns of the existing row; if the target
    /// has no row with that key, the update is an error (the row cannot be written whole), not a silent no-op.</remarks>
    public PostgresApplier MapTable<T>(string? targetTable = null) where T : ISyncTable<T>
    {
        var info = T.TableInfo;
        var (schema, name) = (info.Schema, info.Name);
        if (targetTable is not null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(targetTable);
            var dot = targetTable.IndexOf('.', StringComparison.Ordinal);
            (schema, name) = dot < 0 ? ("public", targetTable) : (targetTable[..dot], targetTable[(dot + 1)..]);
        }
        var mapping = new TableMapping<T>(this, schema, name);
        _mappings.Add(mapping);
        return Register<T>(mapping.ApplyAsync);
    }

    /// <summary>Runs <paramref name="hook"/> at the end of each target transaction, after every change of it was applied
    /// (generated mappings' statements sent) and before the progress row is written and the transaction committed: for
    /// hand-written mappings that batch statements of their own. A failure rolls the target transaction back, as a
    /// failing change does.</summary>
    public PostgresApplier OnTargetTransactionEnd(Func<ApplyContext, CancellationToken, ValueTask> hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        _endHooks.Add(hook);
        return this;
    }

    private PostgresApplier Register<T>(Func<Change<T>, ApplyContext, CancellationToken, ValueTask> apply) where T : ISyncTable<T>
    {
        _source.AddHandler<T>(async (change, cancellationToken) =>
        {
            ApplyContext? context;
            try
            {
                context = await BeginAsync(change.CommitLsn, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsTargetLost(e, cancellationToken))
            {
                throw await TargetLostAsync(e).ConfigureAwait(false);
            }
            if (context is null)
                return; // applied before a crash
            await ApplyAsync(apply, change, context, cancellationToken).ConfigureAwait(false);
        });
        return this;
    }

    private async ValueTask ApplyAsync<T>(Func<Change<T>, ApplyContext, CancellationToken, ValueTask> apply, Change<T> change, ApplyContext context,
        CancellationToken cancellationToken) where T : ISyncTable<T>
    {
        try
        {
            if (_savepoints)
                await _transaction!.SaveAsync(Savepoint, cancellationToken).ConfigureAwait(false);
            await apply(change, context, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (IsTargetLost(e, cancellationToken))
        {
            throw await TargetLostAsync(e).ConfigureAwait(false);
        }
        catch (Exception) when (_savepoints && _failedCommit is null && _connection is { FullState: ConnectionState.Open })
        {
            // Back to the state before this change, so that a retry of it starts clean.
            try
            {
                await _transaction!.RollbackAsync(Savepoint, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception rollback) when (IsTargetLost(rollback, CancellationToken.None))
            {
                throw await TargetLostAsync(rollback).ConfigureAwait(false);
            }
            catch (Exception rollback) when (rollback is NpgsqlException or InvalidOperationException)
            {
                await FailAsync().ConfigureAwait(false);
            }
            throw;
        }
        catch (Exception)
        {
            await FailAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The target transaction for the source transaction committed at <paramref name="commitLsn"/>, begun at its
    /// first change; null when the target applied that transaction already.</summary>
    private async ValueTask<ApplyContext?> BeginAsync(NpgsqlLogSequenceNumber commitLsn, CancellationToken cancellationToken)
    {
        if (_failedCommit is { } failed)
        {
            throw new DBSyncException(
                $"Applier \"{_name}\": the target transaction of the source transaction committed at {new NpgsqlLogSequenceNumber(failed)} was rolled back " +
                "after a failure; the stream must stop so that the transaction is delivered again whole (use HandlerFailurePolicy.Stop, or let the retries run out).");
        }
        var commit = (ulong)commitLsn;
        if (_transaction is not null)
        {
            // The source transaction's first change, or one after it; or the next source transaction of a group, which
            // goes into the target transaction still open (it follows every one the target recorded).
            _currentCommit = commit;
            Batch.Commit = commitLsn;
            return _context;
        }

        if (!_loaded)
            await LoadAsync(cancellationToken).ConfigureAwait(false);
        if (commit <= _applied)
        {
            if (commit != _currentCommit)
                SkippedTransactions++; // counted at the transaction's first change
            _currentCommit = commit;
            return null;
        }
        _currentCommit = commit;
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        _transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        _context = new ApplyContext(connection, _transaction);
        _grouped = 0;
        _groupStarted = Environment.TickCount64;
        Batch.Commit = commitLsn;
        return _context;
    }

    /// <summary>
    /// The source transaction's handlers all completed. Returns true when its target transaction stays open for the
    /// source transactions that follow (<see cref="MaxGroupedTransactions"/>): <see cref="CommitGroupAsync"/> commits it.
    /// Otherwise what it applied is committed now, with its position. <paramref name="mayGroup"/> is false for DBSync's
    /// own transactions (snapshot chunks), which commit at once.
    /// </summary>
    async ValueTask<bool> ICommitGroupSink.OnTransactionEndAsync(NpgsqlLogSequenceNumber commitLsn, NpgsqlLogSequenceNumber endLsn, uint xid, bool mayGroup,
        CancellationToken cancellationToken)
    {
        if (_transaction is null)
        {
            _lossesSinceCommit = 0; // the stream moved past whatever this applier lost
            return false; // nothing of this transaction was applied here
        }
        // A source transaction with nothing for this applier may end while a group is open: it is recorded as applied
        // too (there was nothing to apply), and its acknowledgement waits for the group's commit.
        _lastEnded = (commitLsn, endLsn, xid);
        _currentCommit = (ulong)commitLsn;
        _grouped++;
        if (mayGroup && _grouped < _maxGroupedTransactions && Environment.TickCount64 - _groupStarted < (long)_maxGroupDelay.TotalMilliseconds)
            return true;
        await CommitGroupAsync(cancellationToken).ConfigureAwait(false);
        return false;
    }

    /// <summary>Records the last source transaction of the open target transaction and commits it; nothing when none is
    /// open.</summary>
    ValueTask ICommitGroupSink.CommitGroupAsync(CancellationToken cancellationToken) => CommitGroupAsync(cancellationToken);

    private async ValueTask CommitGroupAsync(CancellationToken cancellationToken)
    {
        if (_transaction is null)
            return;
        var (commitLsn, endLsn, xid) = _lastEnded;
        try
        {
            if (_endHooks.Count > 0)
            {
                await Batch.FlushAsync(_context!, cancellationToken).ConfigureAwait(false);
                foreach (var hook in _endHooks)
                    await hook(_context!, cancellationToken).ConfigureAwait(false);
            }
            // The progress row goes in the last batch of statements: one round trip fewer per transaction.
            var progress = await Batch.AddAsync(_context!, _progressSql, table: null, ChangeKind.Insert, row: null, mustAffectRow: false, cancellationToken).ConfigureAwait(false);
            progress.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _name });
            progress.Parameters.Add(new NpgsqlParameter<NpgsqlLogSequenceNumber> { TypedValue = commitLsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
            progress.Parameters.Add(new NpgsqlParameter<NpgsqlLogSequenceNumber> { TypedValue = endLsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
            progress.Parameters.Add(new NpgsqlParameter<long> { TypedValue = xid });
            await Batch.FlushAsync(_context!, cancellationToken).ConfigureAwait(false);
            await _transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (IsTargetLost(e, cancellationToken))
        {
            // Whether the commit went through is read from the progress table once the target answers again.
            throw await TargetLostAsync(e).ConfigureAwait(false);
        }
        catch (Exception)
        {
            await FailAsync().ConfigureAwait(false);
            throw;
        }
        await _transaction.DisposeAsync().ConfigureAwait(false);
        _transaction = null;
        _context = null;
        Batch.EndTransaction();
        _applied = (ulong)commitLsn;
        _lossesSinceCommit = 0;
        _grouped = 0;
        TargetCommits++;
    }

    private async Task LoadAsync(CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (var create = new NpgsqlCommand(
            $"CREATE TABLE IF NOT EXISTS {_progressTable} (name text PRIMARY KEY, commit_lsn pg_lsn NOT NULL, end_lsn pg_lsn NOT NULL, xid bigint NOT NULL, applied_at timestamptz NOT NULL)",
            connection))
        {
            try
            {
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException e) when (ConcurrentDdl.CreatedMeanwhile(e))
            {
                // another instance's applier created it at the same moment
            }
            catch (PostgresException e) when (e.SqlState is "42501" or "3F000")
            {
                throw new DBSyncConfigurationException(
                    $"Applier \"{_name}\" cannot create its progress table {_progressTable} in the target database ({e.MessageText}). Create it once as a privileged role: " +
                    $"CREATE TABLE {_progressTable} (name text PRIMARY KEY, commit_lsn pg_lsn NOT NULL, end_lsn pg_lsn NOT NULL, xid bigint NOT NULL, applied_at timestamptz NOT NULL); " +
                    "and grant SELECT, INSERT, UPDATE on it to the role the applier connects as.", e);
            }
        }
        await using var read = new NpgsqlCommand($"SELECT commit_lsn FROM {_progressTable} WHERE name = $1", connection);
        read.Parameters.Add(new NpgsqlParameter { Value = _name });
        _applied = await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is NpgsqlLogSequenceNumber applied ? (ulong)applied : 0;
        _loaded = true;
    }

    private async ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (_connection is { FullState: ConnectionState.Open })
            return _connection;
        if (_connection is not null)
            await _connection.DisposeAsync().ConfigureAwait(false);
        _connection = null; // while opening: a failure then is told apart by its error, not by a connection's state
        var connection = _dataSource.CreateConnection();
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        _connection = connection;
        _reachedTarget = true;
        return connection;
    }

    /// <summary>
    /// Whether <paramref name="e"/> means the target connection is gone rather than a statement failed: a connection that
    /// was open is no longer (Npgsql gives up a connection whose server went away or sent a fatal error, such as 57P01 at
    /// a restart), or one could not be opened for a reason that passes (<see cref="ConnectionLoss"/>: not a password, not
    /// a missing database). Judged by the connection, so a handler's own error is never taken for a loss. A target never
    /// reached in this process is a configuration error, reported as such.
    /// </summary>
    private bool IsTargetLost(Exception e, CancellationToken cancellationToken)
    {
        if (!_reachedTarget || (e is OperationCanceledException && cancellationToken.IsCancellationRequested))
            return false;
        return _connection is { } connection ? connection.FullState != ConnectionState.Open : ConnectionLoss.Is(e);
    }

    /// <summary>The target connection is gone: drops it and the pool's connections (dead after a restart too), and returns
    /// what ends the session so that the run reconnects and the source transaction comes again, whole.</summary>
    private async Task<Exception> TargetLostAsync(Exception e)
    {
        var commit = new NpgsqlLogSequenceNumber(_currentCommit);
        await ResetAsync().ConfigureAwait(false);
        _dataSource.Clear();
        _lost = true;
        return new StreamInterruptedException(new DBSyncException(
            $"Applier \"{_name}\" lost its connection to the target {_target} ({e.Message}); the source transaction committed at {commit} " +
            "is applied again, whole, once the target answers.", e))
        {
            Repeated = ++_lossesSinceCommit > 1,
        };
    }

    /// <summary>The target transaction is lost: the stream must stop (the transaction comes again, whole).</summary>
    private async Task FailAsync()
    {
        var commit = _currentCommit;
        await ResetAsync().ConfigureAwait(false);
        _failedCommit = commit;
    }

    /// <summary>A new replication session (a run, or a reconnect): whatever was open belongs to a transaction that the
    /// stream delivers again from its start. After the target was lost, the session starts only once the target answers,
    /// so that a target that stays down is waited for with the run's growing reconnect delay, without the stream reading
    /// the source transaction again for every attempt.</summary>
    async ValueTask ICommitGroupSink.OnSessionStartAsync(CancellationToken cancellationToken)
    {
        await ResetAsync().ConfigureAwait(false);
        _failedCommit = null;
        if (!_lost)
            return;
        try
        {
            await OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (IsTargetLost(e, cancellationToken) || cancellationToken.IsCancellationRequested)
        {
            throw new StreamInterruptedException(new DBSyncException($"Applier \"{_name}\" cannot reach its target {_target} yet ({e.Message}).", e));
        }
        _lost = false;
    }

    /// <summary>Drops the target transaction and connection (closing rolls back what was open); the progress row is read
    /// again at the next change.</summary>
    private async Task ResetAsync()
    {
        Batch.Clear();
        foreach (var mapping in _mappings)
            mapping.Reset();
        _transaction = null;
        _context = null;
        _loaded = false;
        _currentCommit = 0;
        if (_connection is not null)
            await _connection.DisposeAsync().ConfigureAwait(false);
        _connection = null;
    }

    /// <summary>Closes the target connection (an open target transaction is rolled back) and the applier's pool.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
            await _connection.DisposeAsync().ConfigureAwait(false);
        _connection = null;
        await _dataSource.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Where an applier's statements run: the target connection and the transaction of the source transaction
/// being applied. Commit and rollback are the applier's.</summary>
public sealed class ApplyContext
{
    internal ApplyContext(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        Connection = connection;
        Transaction = transaction;
    }

    /// <summary>The target connection.</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The open target transaction.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>A command on the target connection, in the open transaction.</summary>
    public NpgsqlCommand CreateCommand(string sql) => new(sql, Connection, Transaction);
}
