// A process for the broker crash tests, killed with SIGKILL by them. Environment:
//   DBSYNC_PUBLISH_NATS      NATS URL(s), comma-separated
//   DBSYNC_CRASH_MODE        "publish" (the default) or "apply"
// publish: DBSYNC_PUBLISH_SOURCE (connection string of the source database, seed schema) and DBSYNC_PUBLISH_REPLICAS
//   (the stream's replicas, 1). Publishes every change of the seed tables, each transaction ended by a commit message (an initial snapshot included: chunks of 10
//   rows, 50 ms apart) to stream DBSYNC_DBSYNC_CRASH_PUBLISH until killed.
// apply: DBSYNC_APPLY_TARGET (connection string of the target database, seed schema and a table
//   applied_change (commit_lsn pg_lsn, idx int, kind text)) and DBSYNC_APPLY_STREAM. Reads the whole stream with the
//   durable consumer "crash_apply" and applies restaurant's changes with a PostgresApplier (generated statements), each
//   change also recorded in applied_change in the same target transaction, until killed.
// Either prints "streaming" once it runs.
using System.Globalization;
using DBSync;
using DBSync.Nats;
using DBSync.Sample;
using NATS.Client.Core;
using Npgsql;

var url = Environment.GetEnvironmentVariable("DBSYNC_PUBLISH_NATS") ?? throw new InvalidOperationException("DBSYNC_PUBLISH_NATS is not set.");
await using var connection = new NatsConnection(new NatsOpts { Url = url, Name = "crash test process", MaxReconnectRetry = -1 });

if (Environment.GetEnvironmentVariable("DBSYNC_CRASH_MODE") == "apply")
{
    var target = Environment.GetEnvironmentVariable("DBSYNC_APPLY_TARGET") ?? throw new InvalidOperationException("DBSYNC_APPLY_TARGET is not set.");
    var consumer = new JetStreamConsumer(connection, new JetStreamConsumerOptions
    {
        Stream = Environment.GetEnvironmentVariable("DBSYNC_APPLY_STREAM") ?? throw new InvalidOperationException("DBSYNC_APPLY_STREAM is not set."),
        Name = "crash_apply",
        RetryDelay = TimeSpan.FromMilliseconds(100),
        MaxRetryDelay = TimeSpan.FromSeconds(1),
        BatchSize = 64,
    });
    await using var applier = consumer.CreateApplier(target, "crash_apply")
        .MapTable<Restaurant>()
        .Map<Restaurant>(async (change, context, cancellationToken) =>
        {
            await using var record = context.CreateCommand("INSERT INTO applied_change (commit_lsn, idx, kind) VALUES ($1, $2, $3)");
            record.Parameters.Add(new NpgsqlParameter { Value = change.CommitLsn, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.PgLsn });
            record.Parameters.Add(new NpgsqlParameter { Value = change.IndexInTransaction });
            record.Parameters.Add(new NpgsqlParameter { Value = change.Kind.ToString() });
            await record.ExecuteNonQueryAsync(cancellationToken);
        });
    var consuming = consumer.RunAsync();
    Console.WriteLine("streaming");
    await consuming;
    return 0;
}

var source = Environment.GetEnvironmentVariable("DBSYNC_PUBLISH_SOURCE") ?? throw new InvalidOperationException("DBSYNC_PUBLISH_SOURCE is not set.");
var replicas = int.Parse(Environment.GetEnvironmentVariable("DBSYNC_PUBLISH_REPLICAS") ?? "1", CultureInfo.InvariantCulture);
var client = new DBSyncClient(new DBSyncOptions
{
    ConnectionString = source,
    SlotName = "dbsync_crash_publish",
    PublicationName = "dbsync_crash_publish",
    InitialSnapshot = true,
    SnapshotChunkSize = 10,
    SnapshotChunkDelay = TimeSpan.FromMilliseconds(50),
    ReconnectDelay = TimeSpan.FromMilliseconds(200),
    MaxReconnectDelay = TimeSpan.FromSeconds(1),
    ReplicationTransport = Environment.GetEnvironmentVariable("DBSYNC_TEST_TRANSPORT") is { Length: > 0 } transport
        ? Enum.Parse<ReplicationTransport>(transport, ignoreCase: true)
        : ReplicationTransport.Auto,
});
client.On<Restaurant>(_ => { });
client.On<User>(_ => { });
client.On<Visit>(_ => { });
await using var publisher = new JetStreamPublisher(client, connection, new JetStreamPublisherOptions { Replicas = replicas, TransactionEnds = true });
var run = client.RunAsync();
await Task.WhenAny(client.Streaming, run);
Console.WriteLine("streaming");
await run;
return 0;
