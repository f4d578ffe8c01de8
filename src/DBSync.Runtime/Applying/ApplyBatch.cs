using Npgsql;

namespace DBSync.Applying;

/// <summary>A generated mapping's table, as the batch sees it: rows staged for COPY, and the key of a row for messages.</summary>
internal interface IMappedTable
{
    /// <summary>The key of <paramref name="row"/> (an entity of this table) as <c>(id=5)</c>.</summary>
    string DescribeKey(object row);

    /// <summary>The target table, as <c>schema.table</c>.</summary>
    string TargetName { get; }

    /// <summary>Applies the staged rows (snapshot rows, or a run of changes) to the target table and forgets them.</summary>
    ValueTask FlushStagedAsync(ApplyContext context, CancellationToken cancellationToken);

    /// <summary>Forgets the staged rows and what it knew of the target connection (a new session, or a failure).</summary>
    void Reset();
}

/// <summary>
/// The statements of generated mappings waiting to be sent: one <see cref="NpgsqlBatch"/> (one round trip, pipelined) sent
/// when it reaches <see cref="MaxCommands"/>, before anything else runs on the target connection (a hand-written mapping, the
/// end hook) and before the commit; and rows staged for one table (snapshot rows, and the changes of a long run of one
/// table's changes), sent through COPY. Order is kept: statements are flushed before rows are staged, and staged rows
/// before statements are added.
/// </summary>
internal sealed class ApplyBatch(string applier)
{
    /// <summary>Statements per round trip: enough that the round trip is a small part of a batch's time (a statement takes
    /// tens of microseconds in the target), few enough that a batch's parameters stay small. Not yet tuned against other
    /// sizes (docs/applier.md).
    /// Settable for the applier benchmarks only (benchmarks/DBSync.ApplierBench, DBSYNC_BATCH_SIZE).</summary>
    public static int MaxCommands { get; set; } = 200;

    private readonly List<PendingCommand> _pending = [];
    private NpgsqlBatch? _batch;
    private IMappedTable? _staged;
    private IMappedTable? _runTable;
    private int _runLength;

    /// <summary>The commit position of the source transaction being applied, for messages.</summary>
    public NpgsqlTypes.NpgsqlLogSequenceNumber Commit { get; set; }

    /// <summary>Whether the batch reached <see cref="MaxCommands"/>.</summary>
    public bool IsFull => _pending.Count >= MaxCommands;

    /// <summary>Adds a statement for a change of <paramref name="table"/> (null: the applier's own progress row); its
    /// parameters are the caller's to add. Staged rows go first, to keep the order of the changes.</summary>
    public async ValueTask<NpgsqlBatchCommand> AddAsync(ApplyContext context, string sql, IMappedTable? table, ChangeKind kind, object? row, bool mustAffectRow,
        CancellationToken cancellationToken)
    {
        if (_staged is not null)
            await FlushStagedAsync(context, cancellationToken).ConfigureAwait(false);
        _batch ??= new NpgsqlBatch(context.Connection, context.Transaction);
        var command = new NpgsqlBatchCommand(sql);
        _batch.BatchCommands.Add(command);
        _pending.Add(new PendingCommand(table, kind, row, mustAffectRow));
        return command;
    }

    /// <summary>Before a row of <paramref name="table"/> is staged: the statements before it are sent, and the rows of
    /// another table staged before it copied.</summary>
    public async ValueTask BeforeStagingAsync(ApplyContext context, IMappedTable table, CancellationToken cancellationToken)
    {
        if (_pending.Count > 0)
            await FlushCommandsAsync(cancellationToken).ConfigureAwait(false);
        if (_staged is not null && !ReferenceEquals(_staged, table))
            await FlushStagedAsync(context, cancellationToken).ConfigureAwait(false);
        _staged = table;
    }

    /// <summary>Counts a change of <paramref name="table"/>: how many changes of it came one after the other in this target
    /// transaction, this one included (a change of another table starts a new run).</summary>
    public int CountChange(IMappedTable table)
    {
        if (!ReferenceEquals(_runTable, table))
        {
            _runTable = table;
            _runLength = 0;
        }
        return ++_runLength;
    }

    /// <summary>Savepoints a target transaction may take for staged sets: each is a subtransaction with an id of its own,
    /// and past 64 of them PostgreSQL's per-backend cache of them overflows, which slows every other session's
    /// snapshots while the transaction runs. Past this many, sets go without one (see <see cref="TakeSavepoint"/>).</summary>
    public const int MaxSavepoints = 32;

    private readonly HashSet<IMappedTable> _notStaging = [];
    private int _savepoints;

    /// <summary>Whether <paramref name="table"/> stages its runs of changes in this target transaction: not once a set
    /// of its changes was sent small (staging did not pay for itself there).</summary>
    public bool Stages(IMappedTable table) => !_notStaging.Contains(table);

    /// <summary>A set of <paramref name="table"/>'s changes was sent with fewer rows than a batch: its changes go as
    /// statements for the rest of the target transaction.</summary>
    public void StopStaging(IMappedTable table) => _notStaging.Add(table);

    /// <summary>Whether a staged set may run behind a savepoint of its own (counted), or must go without one.</summary>
    public bool TakeSavepoint()
    {
        if (_savepoints >= MaxSavepoints)
            return false;
        _savepoints++;
        return true;
    }

    /// <summary>A change that is not one of a generated mapping's (a hand-written mapping's) ends the run.</summary>
    public void BreakRun()
    {
        _runTable = null;
        _runLength = 0;
    }

    /// <summary>The target transaction ended: the next change starts a new run, staging and savepoints start over.</summary>
    public void EndTransaction()
    {
        BreakRun();
        _notStaging.Clear();
        _savepoints = 0;
    }

    /// <summary>Sends whatever waits, in order.</summary>
    public async ValueTask FlushAsync(ApplyContext context, CancellationToken cancellationToken)
    {
        if (_staged is not null)
            await FlushStagedAsync(context, cancellationToken).ConfigureAwait(false);
        if (_pending.Count > 0)
            await FlushCommandsAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Forgets what waits (the target transaction is gone).</summary>
    public void Clear()
    {
        _staged?.Reset();
        _staged = null;
        EndTransaction();
        _pending.Clear();
        _batch?.Dispose();
        _batch = null;
    }

    private async ValueTask FlushStagedAsync(ApplyContext context, CancellationToken cancellationToken)
    {
        var staged = _staged!;
        _staged = null;
        await staged.FlushStagedAsync(context, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask FlushCommandsAsync(CancellationToken cancellationToken)
    {
        var batch = _batch!;
        _batch = null;
        try
        {
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < _pending.Count; i++)
            {
                if (_pending[i].MustAffectRow && batch.BatchCommands[i].RecordsAffected == 0)
                {
                    var missing = _pending[i];
                    throw new DBSyncException(
                        $"Applier \"{applier}\": the update of key {missing.Table!.DescribeKey(missing.Row!)} (source transaction committed at {Commit}) found no row in the target table {missing.Table!.TargetName}, " +
                        "and it left unchanged TOAST columns out, so the row cannot be written whole. The target is missing a row the source had: copy the table again " +
                        "(a snapshot, with the target table emptied or the row inserted), or set REPLICA IDENTITY FULL on the source table so updates carry every column.");
                }
            }
        }
        catch (PostgresException e) when (e.BatchCommand is { } failed && batch.BatchCommands.IndexOf(failed) is var index and >= 0
                                          && _pending[index].Table is not null)
        {
            var change = _pending[index];
            var key = change.Row is null ? "" : $" of key {change.Table!.DescribeKey(change.Row)}";
            throw new DBSyncException(
                $"Applier \"{applier}\": the {change.Kind.ToString().ToLowerInvariant()}{key} into the target table {change.Table!.TargetName} (source transaction committed at {Commit}) failed: " +
                $"{e.SqlState}: {e.MessageText}. The target transaction is rolled back; fix the target and run again: the source transaction is applied again, whole.", e);
        }
        finally
        {
            _pending.Clear();
            await batch.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>What a waiting statement applies, for messages (no table: the progress row); <paramref name="MustAffectRow"/>
    /// for an update that cannot be turned into an insert.</summary>
    private readonly record struct PendingCommand(IMappedTable? Table, ChangeKind Kind, object? Row, bool MustAffectRow);
}
