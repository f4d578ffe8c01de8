using Npgsql;

namespace DBSync.Applying;

/// <summary>
/// A generated mapping (<see cref="PostgresApplier.MapTable{T}"/>): the statements of each change of <typeparamref name="T"/>
/// written from the entity's generated <see cref="ISyncTable{TSelf}.WriteRow"/> and the target table as found at first use.
/// Insert and update are upserts; an update that left unchanged TOAST values out updates the other columns only; an update
/// that moved the key deletes the old key first; delete by key; truncate. Snapshot rows are staged and copied, and so are
/// the changes of a long run of this table's changes (a bulk load, a mass update or delete): past
/// <see cref="StageAfterChanges"/> changes of the table one after the other in a target transaction, each insert, update
/// (but those that leave unchanged TOAST values out) and delete is staged instead of becoming a statement.
/// </summary>
/// <remarks>Staged rows are applied together: the deletes, then the upserts. That is the changes' own effect, because a
/// key is staged at most once (a change of a key already staged sends the staged rows first), so each key's last change
/// is the one applied. Should the set fail where the changes one by one would not (a unique index other than the key,
/// met in another order), or fail at all, it is rolled back to a savepoint and the same rows go again as statements, in
/// their order: they succeed, or the failure names its change as a statement's does.</remarks>
internal sealed class TableMapping<T>(PostgresApplier applier, string schema, string name) : IMappedTable where T : ISyncTable<T>
{
    /// <summary>Rows staged before a COPY is sent; beyond this the staged rows are sent early (memory).</summary>
    private const int MaxStagedRows = 50_000;

    /// <summary>Changes of the table in a row that go out as statements before the next ones are staged: one full batch
    /// (below it a COPY, an upsert and a truncate cost more round trips than the statements).</summary>
    public static int StageAfterChanges => ApplyBatch.MaxCommands;

    private const string Savepoint = "dbsync_staged";

    private readonly List<StagedRow> _staged = [];
    private readonly HashSet<T> _stagedKeys = new(KeyComparer<T>.Instance);
    private int _stagedDeletes;
    private int _directSkips;
    private int _directPenalty = 1;
    private TargetTable? _target;
    private NpgsqlConnection? _stagingCreatedOn;

    public string TargetName => $"{schema}.{name}";

    public string DescribeKey(object row) => KeyDescriber.Describe((T)row);

    /// <summary>Applies one change: adds its statements to the batch (sent when full, or at once when every change runs
    /// behind a savepoint), or stages it.</summary>
    public async ValueTask ApplyAsync(Change<T> change, ApplyContext context, CancellationToken cancellationToken)
    {
        var target = _target ??= await TargetTable.LoadAsync(context.Connection, T.TableInfo, schema, name, applier.Name, applier.TargetDescription, cancellationToken)
            .ConfigureAwait(false);
        var batch = applier.Batch;
        if (!applier.FlushEachChange)
        {
            if (change.Kind == ChangeKind.Read)
            {
                await StageAsync(change.New!, ChangeKind.Read, delete: false, moved: false, old: default!, context, cancellationToken).ConfigureAwait(false);
                return;
            }
            if (change.Kind is ChangeKind.Insert or ChangeKind.Update or ChangeKind.Delete && batch.CountChange(this) > StageAfterChanges
                && (change.Kind != ChangeKind.Update || change.UnchangedToast.IsEmpty) && batch.Stages(this))
            {
                await StageChangeAsync(change, context, cancellationToken).ConfigureAwait(false);
                return;
            }
        }
        switch (change.Kind)
        {
            case ChangeKind.Insert or ChangeKind.Read:
                await AddAsync(context, target.UpsertSql, change.Kind, change.New!, keysOnly: false, ColumnSet.Empty, cancellationToken).ConfigureAwait(false);
                break;
            case ChangeKind.Update when !change.UnchangedToast.IsEmpty:
            {
                // The columns sent, then the key of the row to update (the old one, when the update moved it).
                var command = await AddAsync(context, target.PartialUpdateSql(change.UnchangedToast), change.Kind, change.New!, keysOnly: false, change.UnchangedToast,
                    cancellationToken, mustAffectRow: true).ConfigureAwait(false);
                var keys = new ParameterWriter(command.Parameters, target, keysOnly: true, ColumnSet.Empty);
                T.WriteRow(change.Old ?? change.New!, ref keys);
                break;
            }
            case ChangeKind.Update:
                if (change.Old is { } old && !T.KeyEquals(old, change.New!))
                    await AddAsync(context, target.DeleteSql, change.Kind, old, keysOnly: true, ColumnSet.Empty, cancellationToken).ConfigureAwait(false);
                await AddAsync(context, target.UpsertSql, change.Kind, change.New!, keysOnly: false, ColumnSet.Empty, cancellationToken).ConfigureAwait(false);
                break;
            case ChangeKind.Delete:
                await AddAsync(context, target.DeleteSql, change.Kind, change.Old ?? change.New!, keysOnly: true, ColumnSet.Empty, cancellationToken).ConfigureAwait(false);
                break;
            case ChangeKind.Truncate:
                _ = await batch.AddAsync(context, target.TruncateSql, this, change.Kind, row: null, mustAffectRow: false, cancellationToken).ConfigureAwait(false);
                break;
        }
        if (batch.IsFull || applier.FlushEachChange)
            await batch.FlushAsync(context, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<NpgsqlBatchCommand> AddAsync(ApplyContext context, string sql, ChangeKind kind, T row, bool keysOnly, ColumnSet skipped,
        CancellationToken cancellationToken, bool mustAffectRow = false)
    {
        var command = await applier.Batch.AddAsync(context, sql, this, kind, row, mustAffectRow, cancellationToken).ConfigureAwait(false);
        var writer = new ParameterWriter(command.Parameters, _target!, keysOnly, skipped);
        T.WriteRow(row, ref writer);
        return command;
    }

    /// <summary>Stages an insert or update (an upsert; when the update moved the key, a delete of the old key too) or a
    /// delete.</summary>
    private ValueTask StageChangeAsync(Change<T> change, ApplyContext context, CancellationToken cancellationToken)
    {
        return change.Kind switch
        {
            ChangeKind.Delete => StageAsync(change.Old ?? change.New!, change.Kind, delete: true, moved: false, old: default!, context, cancellationToken),
            ChangeKind.Update when change.Old is { } old && !T.KeyEquals(old, change.New!) => StageAsync(change.New!, change.Kind, delete: false, moved: true, old, context, cancellationToken),
            _ => StageAsync(change.New!, change.Kind, delete: false, moved: false, old: default!, context, cancellationToken),
        };
    }

    /// <summary>Stages <paramref name="row"/>: an upsert, or with <paramref name="delete"/> a delete of its key; when
    /// <paramref name="moved"/>, the update moved the key, and <paramref name="old"/>'s key is deleted first.</summary>
    private async ValueTask StageAsync(T row, ChangeKind kind, bool delete, bool moved, T old, ApplyContext context, CancellationToken cancellationToken)
    {
        var batch = applier.Batch;
        // One upsert must not meet a key twice ("cannot affect row a second time"), and a key staged twice would lose the
        // order of its changes: a repeated key goes in the next COPY.
        var repeated = _stagedKeys.Contains(row) || (moved && _stagedKeys.Contains(old));
        if (repeated || _staged.Count + 2 > MaxStagedRows)
            await batch.FlushAsync(context, cancellationToken).ConfigureAwait(false);
        await batch.BeforeStagingAsync(context, this, cancellationToken).ConfigureAwait(false);
        if (moved)
            Add(new StagedRow(old, kind, Delete: true));
        Add(new StagedRow(row, kind, delete));
    }

    private void Add(StagedRow staged)
    {
        _staged.Add(staged);
        _stagedKeys.Add(staged.Row);
        if (staged.Delete)
            _stagedDeletes++;
    }

    /// <summary>The staged rows through binary COPY into the session's staging table, then one delete and one upsert of
    /// the target table, in the target transaction, behind a savepoint: if that fails, the rows go as statements.</summary>
    public async ValueTask FlushStagedAsync(ApplyContext context, CancellationToken cancellationToken)
    {
        if (_staged.Count == 0)
            return;
        var target = _target!;
        var connection = context.Connection;
        var batch = applier.Batch;
        // A set of changes sent before it held a batch's worth (a key repeated soon, as when one row is updated again and
        // again; or a statement came between, as an update that left TOAST values out): staging does not pay for itself
        // in this run, and each set costs a few round trips and a savepoint, so the table's changes go as statements for
        // the rest of the target transaction. (At the commit, the last set is small as a rule; the commit starts over.)
        if (_staged.Count < StageAfterChanges && _staged.Exists(s => s.Kind != ChangeKind.Read))
            batch.StopStaging(this);
        if (await TryCopyDirectlyAsync(context, target, cancellationToken).ConfigureAwait(false))
        {
            applier.StagedRows += _staged.Count;
            applier.DirectlyCopiedRows += _staged.Count;
            ClearStaged();
            return;
        }
        PostgresException? failure = null;
        // Past MaxSavepoints in this target transaction, a set goes without one: a failure then rolls the target
        // transaction back naming the set, not its change.
        var savepoint = batch.TakeSavepoint();
        try
        {
            await using (var prepare = new NpgsqlBatch(connection, context.Transaction))
            {
                if (!ReferenceEquals(_stagingCreatedOn, connection))
                {
                    // Dropped first: a pooled session may keep one of an earlier shape of the target table.
                    prepare.BatchCommands.Add(new($"DROP TABLE IF EXISTS {target.StagingTable}"));
                    prepare.BatchCommands.Add(new(target.CreateStagingSql));
                }
                if (savepoint)
                    prepare.BatchCommands.Add(new($"SAVEPOINT {Savepoint}"));
                if (prepare.BatchCommands.Count > 0)
                    await prepare.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                _stagingCreatedOn = connection;
            }
            try
            {
                await CopyStagedAsync(connection, target.CopySql, deleteFlag: true, cancellationToken).ConfigureAwait(false);
                await using var apply = new NpgsqlBatch(connection, context.Transaction);
                if (_stagedDeletes > 0)
                    apply.BatchCommands.Add(new(target.DeleteStagedSql));
                if (_stagedDeletes < _staged.Count)
                    apply.BatchCommands.Add(new(target.UpsertStagedSql));
                apply.BatchCommands.Add(new(target.ClearStagingSql));
                if (savepoint)
                    apply.BatchCommands.Add(new($"RELEASE SAVEPOINT {Savepoint}"));
                await apply.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException e) when (savepoint)
            {
                failure = e;
                await RollBackToSavepointAsync(context, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (PostgresException e)
        {
            // The staging table or the savepoint could not be made, or the set failed with no savepoint to go back to.
            failure ??= e;
            throw StagingFailed(failure);
        }
        if (failure is null)
        {
            applier.StagedRows += _staged.Count;
            ClearStaged();
            return;
        }

        // The set failed: the same rows, in their order, as statements, which name a change that fails.
        var rows = _staged.ToArray();
        ClearStaged();
        foreach (var staged in rows)
        {
            await AddAsync(context, staged.Delete ? target.DeleteSql : target.UpsertSql, staged.Kind, staged.Row, keysOnly: staged.Delete, ColumnSet.Empty, cancellationToken)
                .ConfigureAwait(false);
            if (batch.IsFull)
                await batch.FlushAsync(context, cancellationToken).ConfigureAwait(false);
        }
        await batch.FlushAsync(context, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Rows that only insert (snapshot rows, inserts) into a table whose columns all take their values without a cast are
    /// first copied straight into the target table, behind a savepoint: no staging table, no upsert. A key the target has
    /// already (a row an earlier change or chunk wrote, a target that is not empty) fails the COPY with a unique violation,
    /// which is rolled back, and the rows go the staged way; the next few sets of the table then go that way too (more
    /// after each such failure), since a table that has the keys would fail every COPY.
    /// </summary>
    private async ValueTask<bool> TryCopyDirectlyAsync(ApplyContext context, TargetTable target, CancellationToken cancellationToken)
    {
        if (target.DirectCopySql is null || _stagedDeletes > 0 || _staged.Exists(s => s.Kind is not (ChangeKind.Read or ChangeKind.Insert)))
            return false;
        if (_directSkips > 0)
        {
            _directSkips--;
            return false;
        }
        if (!applier.Batch.TakeSavepoint())
            return false; // a unique violation must be undone: without a savepoint it would fail the target transaction
        var connection = context.Connection;
        await using (var savepoint = new NpgsqlCommand($"SAVEPOINT {Savepoint}", connection, context.Transaction))
            await savepoint.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await CopyStagedAsync(connection, target.DirectCopySql, deleteFlag: false, cancellationToken).ConfigureAwait(false);
            await using var release = new NpgsqlCommand($"RELEASE SAVEPOINT {Savepoint}", connection, context.Transaction);
            await release.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            _directPenalty = 1;
            return true;
        }
        catch (PostgresException e)
        {
            await RollBackToSavepointAsync(context, cancellationToken).ConfigureAwait(false);
            // Any other failure is the staged way's to report (or to get past: a unique index met in another order).
            _directSkips = e.SqlState == PostgresErrorCodes.UniqueViolation ? _directPenalty : int.MaxValue;
            _directPenalty = Math.Min(_directPenalty * 2, 64);
            return false;
        }
    }

    /// <summary>The staged rows through one binary COPY (<paramref name="copySql"/>): each row's columns (of a delete, its
    /// key columns, the others null), and with <paramref name="deleteFlag"/> whether it is a delete.</summary>
    private async ValueTask CopyStagedAsync(NpgsqlConnection connection, string copySql, bool deleteFlag, CancellationToken cancellationToken)
    {
        var target = _target!;
        if (target.RawCopy)
        {
            await CopyStagedRawAsync(connection, copySql, deleteFlag, cancellationToken).ConfigureAwait(false);
            return;
        }
        await using var importer = await connection.BeginBinaryImportAsync(copySql, cancellationToken).ConfigureAwait(false);
        foreach (var staged in _staged)
        {
            await importer.StartRowAsync(cancellationToken).ConfigureAwait(false);
            var writer = new CopyWriter(importer, target, keysOnly: staged.Delete);
            T.WriteRow(staged.Row, ref writer);
            if (deleteFlag)
                await importer.WriteAsync(staged.Delete, NpgsqlTypes.NpgsqlDbType.Boolean, cancellationToken).ConfigureAwait(false);
        }
        await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary><see cref="CopyStagedAsync"/> for a table whose values <see cref="BinaryCopyBuffer"/> writes: the rows go out
    /// in pieces between rows, and a failure while writing them ends the COPY with an error of its own (CopyFail).</summary>
    private async ValueTask CopyStagedRawAsync(NpgsqlConnection connection, string copySql, bool deleteFlag, CancellationToken cancellationToken)
    {
        var target = _target!;
        var fields = target.Columns.Length + (deleteFlag ? 1 : 0);
        using var buffer = new BinaryCopyBuffer();
        var copy = await connection.BeginRawBinaryCopyAsync(copySql, cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var staged in _staged)
            {
                buffer.StartRow(fields);
                var writer = new RawCopyWriter(buffer, target, keysOnly: staged.Delete);
                T.WriteRow(staged.Row, ref writer);
                if (deleteFlag)
                    buffer.Boolean(staged.Delete);
                if (buffer.Full)
                    await buffer.SendAsync(copy, cancellationToken).ConfigureAwait(false);
            }
            buffer.Trailer();
            await buffer.SendAsync(copy, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception)
        {
            try
            {
                await copy.CancelAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The connection is gone as well; the error that stopped the rows says what happened first.
            }
            throw;
        }
        // Ends the COPY; the server's error for the rows (a unique violation) is thrown here.
        await copy.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Undoes what ran since the staged set's savepoint, and ends the savepoint.</summary>
    private static async ValueTask RollBackToSavepointAsync(ApplyContext context, CancellationToken cancellationToken)
    {
        await using var rollback = new NpgsqlBatch(context.Connection, context.Transaction)
        {
            BatchCommands = { new($"ROLLBACK TO SAVEPOINT {Savepoint}"), new($"RELEASE SAVEPOINT {Savepoint}") },
        };
        await rollback.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private DBSyncException StagingFailed(PostgresException e)
    {
        var changes = _staged.Exists(s => s.Kind != ChangeKind.Read);
        var what = changes ? $"{_staged.Count} changes" : $"{_staged.Count} snapshot rows";
        var error = new DBSyncException(
            $"Applier \"{applier.Name}\": copying {what} of {T.TableInfo.DisplayName} (keys {KeyDescriber.Describe(_staged[0].Row)} to {KeyDescriber.Describe(_staged[^1].Row)}) " +
            $"into the target table {TargetName} (in the target transaction of the source transactions up to the one committed at {applier.Batch.Commit}) failed: {e.SqlState}: {e.MessageText}. " +
            $"The target transaction is rolled back; fix the target and run again: the {(changes ? "source transaction" : "chunk")} is applied again, whole.", e);
        ClearStaged();
        return error;
    }

    private void ClearStaged()
    {
        _staged.Clear();
        _stagedKeys.Clear();
        _stagedDeletes = 0;
    }

    /// <summary>A staged row: an upsert, or a delete of its key; <paramref name="Kind"/> is the change it came from.</summary>
    private readonly record struct StagedRow(T Row, ChangeKind Kind, bool Delete);

    /// <summary>A new session or a failed transaction: the target is read again at the next change (it may have changed),
    /// the staging table made again on the next connection.</summary>
    public void Reset()
    {
        ClearStaged();
        _directSkips = 0;
        _directPenalty = 1;
        _target = null;
        _stagingCreatedOn = null;
    }
}
