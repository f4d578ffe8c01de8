// DBSync hosted sample: the seed schema (Users, Restaurant, Visit) streamed by DBSync's hosted service in a .NET generic
// host. Options come from appsettings.json's "DBSync" section, handlers from dependency injection (one scope per
// transaction), logs go to the console. A background service writes changes, applies a migration partway through
// (a column added to restaurant, then its default set: each DDL statement reaches the schema change handler at its
// place among the row changes, CaptureSchemaChanges), waits for them, takes a snapshot and stops the host, so the sample
// ends by itself; DBSync then finishes the transaction in flight and confirms it.
//
//   dotnet run --project samples/DBSync.HostedSample        (or ./build.sh hosted-sample)
//
// With POSTGRES_HOST/PORT/USER/PASSWORD/NAME set it uses that server (wal_level must be logical; the role must be able
// to create a database and use replication, and, for CaptureSchemaChanges' event trigger, be a superuser, or the trigger
// installed by one with `dbsync ddl install`); otherwise it starts a throwaway local PostgreSQL and removes it at the end.
//
// The same program as a service you run several replicas of: with a connection string configured (for example the
// environment variable DBSync__ConnectionString, on a database with the seed schema) it only streams, until stopped
// (Ctrl+C, SIGTERM). A second replica on the same slot stands by and takes over when the first goes:
//
//   dotnet run --project samples/DBSync.HostedSample -- --pair   (or ./build.sh hosted-sample-pair)
//
// runs two replicas as processes of their own, kills the active one with SIGKILL and shows the other taking over
// (InstancePair.cs).
using DBSync;
using DBSync.HostedSample;
using DBSync.Sample;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

if (args.Contains("--pair"))
    return await InstancePair.RunAsync();

var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddScoped<TransactionBatch>();
builder.Services.AddSingleton<SampleProgress>();
// The rest of the options come from appsettings.json (or DBSync__* environment variables, or the command line).
builder.Services.AddDBSync(builder.Configuration.GetSection("DBSync"))
    .AddChangeHandler<User, UserHandler>()
    .AddChangeHandler<Restaurant, RestaurantHandler>()
    .AddChangeHandler<Visit, VisitHandler>()
    .AddTransactionHandler<TransactionLog>()
    .AddSchemaChangeHandler<SchemaLog>() // needs CaptureSchemaChanges (appsettings.json)
    .AddSnapshotProgressHandler<SnapshotLog>();

if (!string.IsNullOrEmpty(builder.Configuration["DBSync:ConnectionString"]))
{
    // A replica of the service: it streams, or stands by while another replica holds the slot, until it is stopped.
    using var replica = builder.Build();
    await replica.RunAsync();
    return Environment.ExitCode;
}

await SeedDatabase.RunAsync("dbsync_hosted_sample", async (server, database) =>
{
    builder.Configuration["DBSync:ConnectionString"] = server.ConnectionStringFor(database);
    builder.Services.AddHostedService<SampleWriter>(); // after AddDBSync: it starts once the slot streams

    using var host = builder.Build();
    var client = host.Services.GetRequiredService<DBSyncClient>(); // the pipeline's client: snapshots, control, ConfirmedLsn
    await host.RunAsync();
    Console.WriteLine($"Stopped; the slot's confirmed position is {client.ConfirmedLsn}.");
});
return Environment.ExitCode;
