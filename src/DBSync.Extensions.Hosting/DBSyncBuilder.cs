using System.Diagnostics.CodeAnalysis;
using DBSync.Hosting.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace DBSync.Hosting;

/// <summary>
/// Adds handlers to the DBSync pipeline that <c>services.AddDBSync(...)</c> registered. Handlers are scoped services,
/// resolved from one dependency injection scope per transaction.
/// </summary>
public sealed class DBSyncBuilder
{
    private readonly DBSyncRegistrations _registrations;

    internal DBSyncBuilder(IServiceCollection services, DBSyncRegistrations registrations)
    {
        Services = services;
        _registrations = registrations;
    }

    /// <summary>The service collection the pipeline is registered in.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Handles the changes of the table mapped by <typeparamref name="T"/> with <typeparamref name="THandler"/>, a scoped
    /// service resolved from the scope of each transaction. Several handlers of one table run in registration order.
    /// </summary>
    public DBSyncBuilder AddChangeHandler<T, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where T : ISyncTable<T>
        where THandler : class, IChangeHandler<T>
    {
        Services.TryAddEnumerable(ServiceDescriptor.Scoped<IChangeHandler<T>, THandler>());
        _registrations.Once(typeof(IChangeHandler<T>), static (client, services) =>
            client.On<T>(new ChangeDispatcher<T>(services.GetRequiredService<TransactionScopes>()).HandleAsync));
        return this;
    }

    /// <summary>Calls <typeparamref name="THandler"/>, a scoped service, once per transaction after its changes were
    /// handled, in the same scope as the transaction's change handlers.</summary>
    public DBSyncBuilder AddTransactionHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where THandler : class, ITransactionHandler
    {
        Services.TryAddEnumerable(ServiceDescriptor.Scoped<ITransactionHandler, THandler>());
        _registrations.Once(typeof(ITransactionHandler), static (client, services) =>
            client.OnTransaction(new TransactionDispatcher(services.GetRequiredService<TransactionScopes>()).HandleAsync));
        return this;
    }

    /// <summary>Sends snapshot progress notifications to <typeparamref name="THandler"/>, a scoped service resolved in a
    /// scope of its own per notification.</summary>
    public DBSyncBuilder AddSnapshotProgressHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where THandler : class, ISnapshotProgressHandler
    {
        Services.TryAddEnumerable(ServiceDescriptor.Scoped<ISnapshotProgressHandler, THandler>());
        _registrations.Once(typeof(ISnapshotProgressHandler), static (client, services) =>
            client.OnSnapshotProgress(new SnapshotProgressDispatcher(services.GetRequiredService<IServiceScopeFactory>()).HandleAsync));
        return this;
    }

    /// <summary>Calls <typeparamref name="THandler"/>, a scoped service, for each schema change (a DDL statement), at its
    /// place among the transaction's row changes and in the same scope as the transaction's change handlers. Needs
    /// <see cref="DBSyncOptions.CaptureSchemaChanges"/>: without it the host's start fails with an
    /// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> that names the option.</summary>
    public DBSyncBuilder AddSchemaChangeHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where THandler : class, ISchemaChangeHandler
    {
        Services.TryAddEnumerable(ServiceDescriptor.Scoped<ISchemaChangeHandler, THandler>());
        _registrations.AddSchemaChangeHandler(typeof(THandler));
        _registrations.Once(typeof(ISchemaChangeHandler), static (client, services) =>
            client.OnSchemaChange(new SchemaChangeDispatcher(services.GetRequiredService<TransactionScopes>()).HandleAsync));
        return this;
    }

    /// <summary>Configures the client when it is created, with the container at hand: handlers as delegates
    /// (<see cref="DBSyncClient.On{T}(Func{Change{T}, CancellationToken, ValueTask})"/>, <see cref="DBSyncClient.OnMessage"/>),
    /// a <see cref="PostgresApplier"/>. Runs after the handlers added before it, in call order.</summary>
    public DBSyncBuilder ConfigureClient(Action<DBSyncClient, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        _registrations.Add(configure);
        return this;
    }

    /// <summary>Configures how the hosted service runs with the host.</summary>
    public DBSyncBuilder ConfigureHost(Action<DBSyncHostOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        Services.Configure(configure);
        return this;
    }
}
