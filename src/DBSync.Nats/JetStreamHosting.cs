using System.Diagnostics.CodeAnalysis;
using DBSync.Nats;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;

namespace DBSync.Hosting;

/// <summary>NATS JetStream for the generic host: the publisher on a pipeline, and consumers as hosted services.</summary>
public static class JetStreamHostingExtensions
{
    /// <summary>Publishes every change of every table the pipeline maps to JetStream (<see cref="JetStreamPublisher"/>),
    /// through the <see cref="INatsConnection"/> the container holds.</summary>
    public static DBSyncBuilder PublishToJetStream(this DBSyncBuilder builder, Action<JetStreamPublisherOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new JetStreamPublisherOptions();
        configure?.Invoke(options);
        options.Validate(); // at registration: a wrong option fails the host's build, naming it
        return builder.ConfigureClient((client, services) => _ = new JetStreamPublisher(client, Connection(services, "PublishToJetStream"), options));
    }

    /// <summary>Maps the table of <typeparamref name="T"/> without a handler of its own: for a pipeline that only
    /// publishes it.</summary>
    public static DBSyncBuilder AddTable<T>(this DBSyncBuilder builder) where T : ISyncTable<T>
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureClient(static (client, _) => client.On<T>(static _ => { }));
    }

    /// <summary>Runs a <see cref="JetStreamConsumer"/> as a hosted service, through the <see cref="INatsConnection"/> the
    /// container holds; its handlers come from the container (<see cref="JetStreamConsumerBuilder.AddChangeHandler{T, THandler}"/>),
    /// one scope per message. A consumer that fails (a message it cannot read) logs the error and stops the application.</summary>
    public static JetStreamConsumerBuilder AddJetStreamConsumer(this IServiceCollection services, Action<JetStreamConsumerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new JetStreamConsumerOptions();
        configure(options);
        options.Validate();
        var builder = new JetStreamConsumerBuilder(services, options);
        services.AddSingleton<IHostedService>(provider => new JetStreamConsumerService(provider, builder));
        return builder;
    }

    internal static INatsConnection Connection(IServiceProvider services, string what)
        => services.GetService<INatsConnection>() ?? throw new InvalidOperationException(
            $"{what} needs an INatsConnection in the container, for example: services.AddSingleton<INatsConnection>(new NatsConnection(new NatsOpts {{ Url = \"nats://nats:4222\" }})).");
}

/// <summary>The handlers of a hosted <see cref="JetStreamConsumer"/>.</summary>
public sealed class JetStreamConsumerBuilder
{
    private readonly List<Action<JetStreamConsumer, IServiceProvider>> _registrations = [];

    internal JetStreamConsumerBuilder(IServiceCollection services, JetStreamConsumerOptions options)
    {
        Services = services;
        Options = options;
    }

    /// <summary>The container.</summary>
    public IServiceCollection Services { get; }

    internal JetStreamConsumerOptions Options { get; }

    /// <summary>Handles the changes of <typeparamref name="T"/>'s table with <typeparamref name="THandler"/>, resolved in
    /// a scope of its own for each message.</summary>
    public JetStreamConsumerBuilder AddChangeHandler<T, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where T : ISyncTable<T> where THandler : class, IChangeHandler<T>
    {
        Services.TryAddEnumerable(ServiceDescriptor.Scoped<IChangeHandler<T>, THandler>());
        _registrations.Add(static (consumer, services) =>
        {
            var scopes = services.GetRequiredService<IServiceScopeFactory>();
            consumer.On<T>(async (change, cancellationToken) =>
            {
                var scope = scopes.CreateAsyncScope();
                await using (scope.ConfigureAwait(false))
                {
                    foreach (var handler in scope.ServiceProvider.GetServices<IChangeHandler<T>>())
                        await handler.HandleAsync(change, cancellationToken).ConfigureAwait(false);
                }
            });
        });
        return this;
    }

    /// <summary>Configures the consumer when it is created: handlers as delegates.</summary>
    public JetStreamConsumerBuilder ConfigureConsumer(Action<JetStreamConsumer, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        _registrations.Add(configure);
        return this;
    }

    internal JetStreamConsumer Build(IServiceProvider services)
    {
        var options = Options;
        options.LoggerFactory ??= services.GetService<ILoggerFactory>();
        var consumer = new JetStreamConsumer(JetStreamHostingExtensions.Connection(services, "AddJetStreamConsumer"), options);
        foreach (var register in _registrations)
            register(consumer, services);
        return consumer;
    }
}

/// <summary>Runs a consumer from the host's start until its stop; an error logs and stops the application.</summary>
internal sealed class JetStreamConsumerService(IServiceProvider services, JetStreamConsumerBuilder builder) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var logger = (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("DBSync.Nats");
        try
        {
            await builder.Build(services).RunAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!stoppingToken.IsCancellationRequested)
        {
            DBSync.Nats.Log.ConsumerFailed(logger, builder.Options.Name, builder.Options.Stream, e);
            Environment.ExitCode = Environment.ExitCode == 0 ? 1 : Environment.ExitCode;
            services.GetService<IHostApplicationLifetime>()?.StopApplication();
        }
    }
}
