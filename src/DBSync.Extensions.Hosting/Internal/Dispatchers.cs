using Microsoft.Extensions.DependencyInjection;

namespace DBSync.Hosting.Internal;

/// <summary>Calls the <see cref="IChangeHandler{T}"/> registrations of the change's transaction scope, in registration order.</summary>
internal sealed class ChangeDispatcher<T>(TransactionScopes scopes) where T : ISyncTable<T>
{
    private readonly ScopedServices<IChangeHandler<T>> _handlers = new(scopes);

    public ValueTask HandleAsync(Change<T> change, CancellationToken cancellationToken)
    {
        var handlers = _handlers.For(change.CommitLsn);
        return handlers.Length == 1 ? handlers[0].HandleAsync(change, cancellationToken) : HandleAllAsync(handlers, change, cancellationToken);
    }

    private static async ValueTask HandleAllAsync(IChangeHandler<T>[] handlers, Change<T> change, CancellationToken cancellationToken)
    {
        foreach (var handler in handlers)
            await handler.HandleAsync(change, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Calls the <see cref="ITransactionHandler"/> registrations in the transaction's scope.</summary>
internal sealed class TransactionDispatcher(TransactionScopes scopes)
{
    private readonly ScopedServices<ITransactionHandler> _handlers = new(scopes);

    public async ValueTask HandleAsync(CommittedTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var handler in _handlers.For(transaction.CommitLsn))
            await handler.HandleAsync(transaction, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Calls the <see cref="ISchemaChangeHandler"/> registrations of the change's transaction scope, in registration order.</summary>
internal sealed class SchemaChangeDispatcher(TransactionScopes scopes)
{
    private readonly ScopedServices<ISchemaChangeHandler> _handlers = new(scopes);

    public async ValueTask HandleAsync(SchemaChange change, CancellationToken cancellationToken)
    {
        foreach (var handler in _handlers.For(change.CommitLsn))
            await handler.HandleAsync(change, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Calls the <see cref="ISnapshotProgressHandler"/> registrations, in a scope of their own per notification.</summary>
internal sealed class SnapshotProgressDispatcher(IServiceScopeFactory scopeFactory)
{
    public async ValueTask HandleAsync(SnapshotProgress progress, CancellationToken cancellationToken)
    {
        var scope = scopeFactory.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            foreach (var handler in scope.ServiceProvider.GetServices<ISnapshotProgressHandler>())
                await handler.HandleAsync(progress, cancellationToken).ConfigureAwait(false);
        }
    }
}
