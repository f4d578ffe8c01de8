// DBSync hosted sample: the seed schema (Users, Restaurant, Visit) streamed by DBSync's hosted service in a .NET generic
// host. Options come from appsettings.json's "DBSync" section, handlers from dependency injection (one scope per
// transaction), logs go to the console. A background service writes changes, waits for them, takes a snapshot and
// stops the host, so the sample ends by itself; DBSync then finishes the transaction in flight and confirms it.
//
//   dotnet run --project samples/DBSync.HostedSample        (or ./build.sh hosted-sample)
//
// With POSTGRES_HOST/PORT/USER/PASSWORD/NAME set it uses that server (wal_level must be logical; the role must be able
// to create a database and use replication); otherwise it starts a throwaway local PostgreSQL and removes it at the end.
using DBSync;
using DBSync.HostedSample;
using DBSync.Sample;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

await SeedDatabase.RunAsync("dbsync_hosted_sample", async (server, database) =>
{
    var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
    // The rest of the options come from appsettings.json (or DBSync__* environment variables, or the command line).
    builder.Configuration["DBSync:ConnectionString"] = server.ConnectionStringFor(database);

    builder.Services.AddScoped<TransactionBatch>();
    builder.Services.AddSingleton<SampleProgress>();
    builder.Services.AddDBSync(builder.Configuration.GetSection("DBSync"))
        .AddChangeHandler<User, UserHandler>()
        .AddChangeHandler<Restaurant, RestaurantHandler>()
        .AddChangeHandler<Visit, VisitHandler>()
        .AddTransactionHandler<TransactionLog>()
        .AddSnapshotProgressHandler<SnapshotLog>();
    builder.Services.AddHostedService<SampleWriter>(); // after AddDBSync: it starts once the slot streams

    using var host = builder.Build();
    var client = host.Services.GetRequiredService<DBSyncClient>(); // the pipeline's client: snapshots, control, ConfirmedLsn
    await host.RunAsync();
    Console.WriteLine($"Stopped; the slot's confirmed position is {client.ConfirmedLsn}.");
});
return Environment.ExitCode;
