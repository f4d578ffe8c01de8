using DBSync.Replication;
using Microsoft.Extensions.DependencyInjection;
using NpgsqlTypes;

namespace DBSync.Hosting.Internal;

/// <summary>
/// One dependency injection scope per transaction: opened when the transaction's first handler is resolved, disposed
/// after its transaction handlers (for every transaction, DBSync's own snapshot-chunk transactions included), before the
/// transaction is acknowledged. A transaction cut off by a lost connection or a failure has its scope disposed when the
/// next session starts or the run ends, and is delivered again, from its start, into a fresh one.
/// </summary>
/// <remarks>Only the stream's loop calls <see cref="Enter"/> and <see cref="ITransactionParticipant.OnTransactionEndAsync"/>,
/// one at a time; <see cref="ITransactionParticipant.ResetAsync"/> runs when the loop does not.</remarks>
internal sealed class TransactionScopes(IServiceScopeFactory scopeFactory) : ITransactionParticipant
{
    private AsyncServiceScope? _scope;
    private ulong _commitLsn;
    private long _generation;

    /// <summary>The services of the transaction committed at <paramref name="commitLsn"/>, and a number that changes with
    /// every new scope (so that resolved handlers can be kept for the rest of the transaction).</summary>
    public (IServiceProvider Services, long Generation) Enter(NpgsqlLogSequenceNumber commitLsn)
    {
        if (_scope is { } scope)
        {
            if (_commitLsn == (ulong)commitLsn)
                return (scope.ServiceProvider, _generation);
            throw new InvalidOperationException(
                $"DBSync delivered a change of the transaction committed at {commitLsn} while the scope of the one committed at " +
                $"{new NpgsqlLogSequenceNumber(_commitLsn)} was still open.");
        }
        var opened = scopeFactory.CreateAsyncScope();
        _scope = opened;
        _commitLsn = (ulong)commitLsn;
        _generation++;
        return (opened.ServiceProvider, _generation);
    }

    ValueTask ITransactionParticipant.OnTransactionEndAsync() => EndAsync();

    ValueTask ITransactionParticipant.ResetAsync() => EndAsync();

    private ValueTask EndAsync()
    {
        if (_scope is not { } scope)
            return default;
        _scope = null;
        return scope.DisposeAsync();
    }
}

/// <summary>The <typeparamref name="TService"/> registrations of the current transaction's scope, resolved once per
/// transaction.</summary>
internal sealed class ScopedServices<TService>(TransactionScopes scopes) where TService : class
{
    private TService[] _services = [];
    private long _generation = -1;

    public TService[] For(NpgsqlLogSequenceNumber commitLsn)
    {
        var (services, generation) = scopes.Enter(commitLsn);
        if (generation != _generation)
        {
            _services = [.. services.GetServices<TService>()];
            _generation = generation;
        }
        return _services;
    }
}
