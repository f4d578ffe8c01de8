using Npgsql;

namespace DBSync.Applying;

/// <summary>
/// A generated mapping (<see cref="PostgresApplier.MapTable{T}"/>): the statements of each change of <typeparamref name="T"/>
/// written from the entity's generated <see cref="ISyncTable{TSelf}.WriteRow"/> and the target table as found at first use.
/// Insert and update are upserts; an update that left unchanged TOAST values out updates the other columns only; an update
/// that moved the key deletes the old key first; delete by key; truncate. Snapshot rows are staged and copied.
/// </summary>
internal sealed class TableMapping<T>(PostgresApplier applier, string schema, string name) : IMappedTable where T : ISyncTable<T>
{
    /// <summary>Snapshot rows staged before a COPY is sent; beyond this the staged rows are sent early (memory).</summary>
    private const int MaxStagedRows = 50_000;

    private readonly List<T> _staged = [];
    private readonly HashSet<T> _stagedKeys = new(KeyComparer<T>.Instance);
    private TargetTable? _target;
    private NpgsqlConnection? _stagingCreatedOn;

    public string TargetName => $"{schema}.{name}";

    public string DescribeKey(object row) => KeyDescriber.Describe((T)row);

    /// <summary>Applies one change: adds its statements to the batch (sent when full, or at once when every change runs
    /// behind a savepoint), or stages a snapshot row.</summary>
    public async ValueTask ApplyAsync(Change<T> change, ApplyContext context, CancellationToken cancellationToken)
    {
        var target = _target ??= await TargetTable.LoadAsync(context.Connection, T.TableInfo, schema, name, applier.Name, applier.TargetDescription, cancellationToken)
            .ConfigureAwait(false);
        var batch = applier.Batch;
        switch (change.Kind)
        {
            case ChangeKind.Read when !applier.FlushEachChange:
                await StageAsync(change.New!, context, cancellationToken).ConfigureAwait(false);
                return;
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

    private async ValueTask StageAsync(T row, ApplyContext context, CancellationToken cancellationToken)
    {
        var batch = applier.Batch;
        // One upsert must not meet a key twice ("cannot affect row a second time"): a repeated key goes in the next COPY.
        if (_staged.Count >= MaxStagedRows || _stagedKeys.Contains(row))
            await batch.FlushAsync(context, cancellationToken).ConfigureAwait(false);
        await batch.BeforeStagingAsync(context, this, cancellationToken).ConfigureAwait(false);
        _staged.Add(row);
        _stagedKeys.Add(row);
    }

    /// <summary>The staged rows through binary COPY into the session's staging table, then one upsert into the target
    /// table, in the target transaction.</summary>
    public async ValueTask FlushStagedAsync(ApplyContext context, CancellationToken cancellationToken)
    {
        if (_staged.Count == 0)
            return;
        var target = _target!;
        var connection = context.Connection;
        try
        {
            if (!ReferenceEquals(_stagingCreatedOn, connection))
            {
                // Dropped first: a pooled session may keep one of an earlier shape of the target table.
                await using var create = new NpgsqlBatch(connection, context.Transaction)
                {
                    BatchCommands = { new($"DROP TABLE IF EXISTS {target.StagingTable}"), new(target.CreateStagingSql) },
                };
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                _stagingCreatedOn = connection;
            }
            await using (var importer = await connection.BeginBinaryImportAsync(target.CopySql, cancellationToken).ConfigureAwait(false))
            {
                foreach (var row in _staged)
                {
                    await importer.StartRowAsync(cancellationToken).ConfigureAwait(false);
                    var writer = new CopyWriter(importer, target);
                    T.WriteRow(row, ref writer);
                }
                await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
            }
            await using var upsert = new NpgsqlBatch(connection, context.Transaction)
            {
                BatchCommands = { new(target.UpsertStagedSql), new(target.ClearStagingSql) },
            };
            await upsert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e)
        {
            throw new DBSyncException(
                $"Applier \"{applier.Name}\": copying {_staged.Count} snapshot rows of {T.TableInfo.DisplayName} (keys {KeyDescriber.Describe(_staged[0])} to {KeyDescriber.Describe(_staged[^1])}) " +
                $"into the target table {TargetName} (source transaction committed at {applier.Batch.Commit}) failed: {e.SqlState}: {e.MessageText}. " +
                "The target transaction is rolled back; fix the target and run again: the chunk is applied again, whole.", e);
        }
        finally
        {
            _staged.Clear();
            _stagedKeys.Clear();
        }
    }

    /// <summary>A new session or a failed transaction: the target is read again at the next change (it may have changed),
    /// the staging table made again on the next connection.</summary>
    public void Reset()
    {
        _staged.Clear();
        _stagedKeys.Clear();
        _target = null;
        _stagingCreatedOn = null;
    }
}
