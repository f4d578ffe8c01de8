using DBSync.Hosting;
using DBSync.Sample;
using Microsoft.Extensions.Logging;

namespace DBSync.HostedSample;

/// <summary>
/// What the handlers of one transaction saw. A scoped service: DBSync resolves handlers in one scope per transaction,
/// so every change of a transaction and its transaction handler share one batch, and the next transaction has a new one
/// (as they would share a <c>DbContext</c>).
/// </summary>
public sealed class TransactionBatch
{
    private static int s_created;

    public int Scope { get; } = Interlocked.Increment(ref s_created);

    public List<string> Changes { get; } = [];
}

public sealed partial class UserHandler(TransactionBatch batch, SampleProgress progress, ILogger<UserHandler> logger) : IChangeHandler<User>
{
    public ValueTask HandleAsync(Change<User> change, CancellationToken cancellationToken)
    {
        var user = change.Row!;
        LogChange(logger, change.Kind, user.Id, user.FirstName, user.Email, change.Xid, batch.Scope);
        batch.Changes.Add($"{change.Kind} users {user.Id}");
        progress.Handled(change.Kind);
        return ValueTask.CompletedTask;
    }

    [LoggerMessage(1, LogLevel.Information, "{Kind,-8} users      id={Id} first_name={FirstName} email={Email} (xid {Xid}, scope #{Scope})")]
    private static partial void LogChange(ILogger logger, ChangeKind kind, int id, string firstName, string email, uint xid, int scope);
}

public sealed partial class RestaurantHandler(TransactionBatch batch, SampleProgress progress, ILogger<RestaurantHandler> logger) : IChangeHandler<Restaurant>
{
    public ValueTask HandleAsync(Change<Restaurant> change, CancellationToken cancellationToken)
    {
        var restaurant = change.Row!;
        LogChange(logger, change.Kind, restaurant.Id, restaurant.Name, restaurant.Rating, string.Join(", ", restaurant.Tags ?? []), change.Xid, batch.Scope);
        batch.Changes.Add($"{change.Kind} restaurant {restaurant.Id}");
        progress.Handled(change.Kind);
        return ValueTask.CompletedTask;
    }

    [LoggerMessage(2, LogLevel.Information, "{Kind,-8} restaurant id={Id} name={Name} rating={Rating} tags=[{Tags}] (xid {Xid}, scope #{Scope})")]
    private static partial void LogChange(ILogger logger, ChangeKind kind, string id, string name, int? rating, string tags, uint xid, int scope);
}

public sealed partial class VisitHandler(TransactionBatch batch, SampleProgress progress, ILogger<VisitHandler> logger) : IChangeHandler<Visit>
{
    public ValueTask HandleAsync(Change<Visit> change, CancellationToken cancellationToken)
    {
        var visit = change.Row!;
        // A delete under the default replica identity carries the key only.
        LogChange(logger, change.Kind, visit.UserId, visit.RestaurantId, change.Kind == ChangeKind.Delete ? "(key only)" : visit.AmountSpent.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture),
            change.Xid, batch.Scope);
        batch.Changes.Add($"{change.Kind} visit ({visit.UserId}, {visit.RestaurantId})");
        progress.Handled(change.Kind);
        return ValueTask.CompletedTask;
    }

    [LoggerMessage(3, LogLevel.Information, "{Kind,-8} visit      user_id={UserId} restaurant_id={RestaurantId} amount_spent={AmountSpent} (xid {Xid}, scope #{Scope})")]
    private static partial void LogChange(ILogger logger, ChangeKind kind, int userId, string restaurantId, string amountSpent, uint xid, int scope);
}

/// <summary>Runs once per transaction after its changes, in their scope: here it sums up the batch they filled.</summary>
public sealed partial class TransactionLog(TransactionBatch batch, ILogger<TransactionLog> logger) : ITransactionHandler
{
    public ValueTask HandleAsync(CommittedTransaction transaction, CancellationToken cancellationToken)
    {
        LogCommitted(logger, transaction.Xid, transaction.ChangeCount, transaction.CommitLsn.ToString(), batch.Scope, string.Join("; ", batch.Changes));
        return ValueTask.CompletedTask;
    }

    [LoggerMessage(4, LogLevel.Information, "-- commit xid={Xid} changes={Changes} commit_lsn={CommitLsn} scope #{Scope}: {Batch}")]
    private static partial void LogCommitted(ILogger logger, uint xid, int changes, string commitLsn, int scope, string batch);
}

/// <summary>Each schema change (a DDL statement, captured by the event trigger that CaptureSchemaChanges installs), at its
/// place among the row changes, in the scope of its transaction.</summary>
public sealed partial class SchemaLog(TransactionBatch batch, ILogger<SchemaLog> logger) : ISchemaChangeHandler
{
    public ValueTask HandleAsync(SchemaChange change, CancellationToken cancellationToken)
    {
        // ColumnAdded public.restaurant.opened_on: - -> date
        LogSchemaChange(logger, change, change.Xid, batch.Scope);
        batch.Changes.Add($"{change.Kind} {change.Table ?? change.Object}{(change.Column is null ? "" : "." + change.Column)}");
        return ValueTask.CompletedTask;
    }

    [LoggerMessage(6, LogLevel.Information, "schema: {Change} (xid {Xid}, scope #{Scope})")]
    private static partial void LogSchemaChange(ILogger logger, SchemaChange change, uint xid, int scope);
}

public sealed partial class SnapshotLog(SampleProgress progress, ILogger<SnapshotLog> logger) : ISnapshotProgressHandler
{
    public ValueTask HandleAsync(SnapshotProgress notification, CancellationToken cancellationToken)
    {
        LogProgress(logger, notification switch
        {
            SnapshotTableStarted started => $"snapshot of {started.Table} started (keys up to {Key(started.MaxKey)})",
            SnapshotChunkCompleted chunk => $"chunk {chunk.Chunk} of {chunk.Table}: {chunk.RowsEmitted} of {chunk.RowsRead} rows delivered, last key {Key(chunk.LastKey)}",
            SnapshotTableCompleted done => $"snapshot of {done.Table} done: {done.RowsEmitted} rows",
            SnapshotsCompleted => "all requested snapshots done",
            _ => notification.ToString(),
        });
        if (notification is SnapshotsCompleted)
            progress.SnapshotsCompleted();
        return ValueTask.CompletedTask;
    }

    private static string Key(IReadOnlyList<string>? key) => key is null ? "(none)" : $"({string.Join(", ", key)})";

    [LoggerMessage(5, LogLevel.Information, "== {Progress}")]
    private static partial void LogProgress(ILogger logger, string progress);
}

/// <summary>Counts what the handlers handled, so the writer knows when everything arrived.</summary>
public sealed class SampleProgress
{
    private readonly Lock _lock = new();
    private readonly List<(Func<SampleProgress, bool> Done, TaskCompletionSource Reached)> _waiters = [];
    private readonly TaskCompletionSource _firstSnapshotsCompleted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Changes { get; private set; }

    public int Reads { get; private set; }

    public void Handled(ChangeKind kind)
    {
        lock (_lock)
        {
            if (kind == ChangeKind.Read)
                Reads++;
            else
                Changes++;
            foreach (var (done, reached) in _waiters)
            {
                if (done(this))
                    reached.TrySetResult();
            }
        }
    }

    public void SnapshotsCompleted() => _firstSnapshotsCompleted.TrySetResult();

    /// <summary>Completes when the snapshot queue first runs empty (after the initial snapshot of a new slot).</summary>
    public Task FirstSnapshotsCompleted => _firstSnapshotsCompleted.Task;

    /// <summary>Completes once <paramref name="done"/> holds.</summary>
    public Task WhenAsync(Func<SampleProgress, bool> done)
    {
        lock (_lock)
        {
            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (done(this))
                reached.TrySetResult();
            else
                _waiters.Add((done, reached));
            return reached.Task;
        }
    }
}
