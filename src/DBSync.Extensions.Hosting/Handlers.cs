namespace DBSync.Hosting;

/// <summary>
/// Handles the changes of the table mapped by <typeparamref name="T"/>. Registered with
/// <see cref="DBSyncBuilder.AddChangeHandler{T, THandler}"/> as a scoped service: DBSync resolves it from one dependency
/// injection scope per transaction, so a scoped dependency (a <c>DbContext</c>) is the same instance for every change of
/// a transaction (and for its <see cref="ITransactionHandler"/>) and a fresh one for the next.
/// </summary>
/// <typeparam name="T">The entity type (a <c>[SyncTable]</c> class).</typeparam>
public interface IChangeHandler<T> where T : ISyncTable<T>
{
    /// <summary>Handles one change. Changes arrive one at a time, in commit order; see <see cref="DBSyncClient"/>.</summary>
    /// <param name="change">The change.</param>
    /// <param name="cancellationToken">Cancelled when the host's shutdown may no longer wait for the transaction.</param>
    ValueTask HandleAsync(Change<T> change, CancellationToken cancellationToken);
}

/// <summary>
/// Called once per transaction after its changes were handled, in the same dependency injection scope as its change
/// handlers (for example to save a unit of work). Registered with <see cref="DBSyncBuilder.AddTransactionHandler{THandler}"/>.
/// </summary>
public interface ITransactionHandler
{
    /// <summary>Handles the end of one transaction.</summary>
    /// <param name="transaction">The transaction.</param>
    /// <param name="cancellationToken">Cancelled when the host's shutdown may no longer wait for the transaction.</param>
    ValueTask HandleAsync(CommittedTransaction transaction, CancellationToken cancellationToken);
}

/// <summary>
/// Receives snapshot progress notifications (<see cref="SnapshotTableStarted"/>, <see cref="SnapshotChunkCompleted"/>,
/// ...), one at a time, in order, each in a dependency injection scope of its own. Registered with
/// <see cref="DBSyncBuilder.AddSnapshotProgressHandler{THandler}"/>.
/// </summary>
public interface ISnapshotProgressHandler
{
    /// <summary>Handles one notification.</summary>
    /// <param name="progress">The notification.</param>
    /// <param name="cancellationToken">Cancelled when the stream stops.</param>
    ValueTask HandleAsync(SnapshotProgress progress, CancellationToken cancellationToken);
}

/// <summary>
/// Handles schema changes (DDL statements, <see cref="DBSyncOptions.CaptureSchemaChanges"/>), one at a time, at their
/// place among the row changes, in commit order, in the same dependency injection scope as the transaction's change
/// handlers (and its <see cref="ITransactionHandler"/>). Registered with
/// <see cref="DBSyncBuilder.AddSchemaChangeHandler{THandler}"/>.
/// </summary>
public interface ISchemaChangeHandler
{
    /// <summary>Handles one schema change.</summary>
    /// <param name="change">The change.</param>
    /// <param name="cancellationToken">Cancelled when the host's shutdown may no longer wait for the transaction.</param>
    ValueTask HandleAsync(SchemaChange change, CancellationToken cancellationToken);
}
