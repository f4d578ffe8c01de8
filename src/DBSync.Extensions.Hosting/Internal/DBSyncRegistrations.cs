using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace DBSync.Hosting.Internal;

/// <summary>What the builder asked for, applied to the client when the container creates it.</summary>
internal sealed class DBSyncRegistrations
{
    private readonly List<Action<DBSyncClient, IServiceProvider>> _configure = [];
    private readonly HashSet<Type> _registered = [];
    private readonly List<Type> _schemaChangeHandlers = [];

    public void Add(Action<DBSyncClient, IServiceProvider> configure) => _configure.Add(configure);

    /// <summary>The <see cref="ISchemaChangeHandler"/> types added, which need <see cref="DBSyncOptions.CaptureSchemaChanges"/>
    /// (checked with the options, when the host starts).</summary>
    public IReadOnlyList<Type> SchemaChangeHandlers => _schemaChangeHandlers;

    public void AddSchemaChangeHandler(Type handler)
    {
        if (!_schemaChangeHandlers.Contains(handler))
            _schemaChangeHandlers.Add(handler);
    }

    /// <summary>Adds <paramref name="configure"/> the first time <paramref name="key"/> is seen (one dispatcher per
    /// handler interface, whatever number of implementations it resolves).</summary>
    public void Once(Type key, Action<DBSyncClient, IServiceProvider> configure)
    {
        if (_registered.Add(key))
            _configure.Add(configure);
    }

    /// <summary>The pipeline's client: validated options (the host's logging unless set), the per-transaction scopes,
    /// then the handlers in registration order.</summary>
    public static DBSyncClient CreateClient(IServiceProvider services)
    {
        var client = new DBSyncClient(services.GetRequiredService<IOptions<DBSyncOptions>>().Value);
        client.AddParticipant(services.GetRequiredService<TransactionScopes>());
        foreach (var configure in services.GetRequiredService<DBSyncRegistrations>()._configure)
            configure(client, services);
        return client;
    }
}
