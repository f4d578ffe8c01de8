using DBSync;
using DBSync.Hosting;
using DBSync.Hosting.Internal;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a DBSync pipeline in a service collection: <c>services.AddDBSync(...)</c>.</summary>
public static class DBSyncServiceCollectionExtensions
{
    /// <summary>
    /// Registers a DBSync pipeline configured in code: the <see cref="DBSyncClient"/> (a singleton, for snapshots and
    /// control), and a hosted service that streams while the host runs. The options are validated when the host starts;
    /// the host's <see cref="ILoggerFactory"/> is used unless <see cref="DBSyncOptions.LoggerFactory"/> is set.
    /// </summary>
    /// <returns>A builder to add handlers with.</returns>
    public static DBSyncBuilder AddDBSync(this IServiceCollection services, Action<DBSyncOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = Add(services, configurationPath: null);
        services.Configure(configure);
        return builder;
    }

    /// <summary>
    /// Registers a DBSync pipeline configured from a configuration section (for example
    /// <c>builder.Configuration.GetSection("DBSync")</c>): its keys are <see cref="DBSyncOptions"/>' and
    /// <see cref="DBSyncHostOptions"/>' property names, durations as <c>hh:mm:ss</c>. <paramref name="configure"/> runs
    /// after the binding (for what configuration cannot hold, such as <see cref="DBSyncOptions.CheckpointStore"/>).
    /// Validation errors name the option and its configuration key.
    /// </summary>
    /// <returns>A builder to add handlers with.</returns>
    public static DBSyncBuilder AddDBSync(this IServiceCollection services, IConfiguration configuration, Action<DBSyncOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var builder = Add(services, (configuration as IConfigurationSection)?.Path);
        services.AddOptions<DBSyncOptions>().Bind(configuration);
        services.AddOptions<DBSyncHostOptions>().Bind(configuration);
        if (configure is not null)
            services.Configure(configure);
        return builder;
    }

    private static DBSyncBuilder Add(IServiceCollection services, string? configurationPath)
    {
        ArgumentNullException.ThrowIfNull(services);
        // One pipeline per container; a second call adds to the first.
        var registrations = services.FirstOrDefault(d => d.ServiceType == typeof(DBSyncRegistrations))?.ImplementationInstance as DBSyncRegistrations;
        if (registrations is null)
        {
            registrations = new DBSyncRegistrations();
            services.AddSingleton(registrations);
            services.AddOptions<DBSyncOptions>()
                .PostConfigure<IServiceProvider>(static (options, provider) =>
                {
                    options.LoggerFactory ??= provider.GetService<ILoggerFactory>();
                    // Services run as replicas: a second instance stands by instead of failing (and crash-looping).
                    options.WhenSlotInUse ??= SlotInUse.Wait;
                })
                .ValidateOnStart();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DBSyncOptions>>(new DBSyncOptionsValidation(configurationPath, registrations)));
            services.TryAddSingleton<TransactionScopes>();
            services.TryAddSingleton(DBSyncRegistrations.CreateClient);
            services.AddHostedService<DBSyncHostedService>();
        }
        return new DBSyncBuilder(services, registrations);
    }
}
