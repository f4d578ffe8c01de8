// A publisher for the broker crash test. Environment:
//   DBSYNC_PUBLISH_SOURCE    connection string of the source database (seed schema)
//   DBSYNC_PUBLISH_NATS      NATS URL(s), comma-separated
//   DBSYNC_PUBLISH_REPLICAS  the stream's replicas (1)
// It publishes every change of the seed tables (an initial snapshot included: chunks of 10 rows, 50 ms apart) to
// stream DBSYNC_DBSYNC_CRASH_PUBLISH until killed, and prints "streaming" once it streams.
using System.Globalization;
using DBSync;
using DBSync.Nats;
using DBSync.Sample;
using NATS.Client.Core;

var source = Environment.GetEnvironmentVariable("DBSYNC_PUBLISH_SOURCE") ?? throw new InvalidOperationException("DBSYNC_PUBLISH_SOURCE is not set.");
var url = Environment.GetEnvironmentVariable("DBSYNC_PUBLISH_NATS") ?? throw new InvalidOperationException("DBSYNC_PUBLISH_NATS is not set.");
var replicas = int.Parse(Environment.GetEnvironmentVariable("DBSYNC_PUBLISH_REPLICAS") ?? "1", CultureInfo.InvariantCulture);

await using var connection = new NatsConnection(new NatsOpts { Url = url, Name = "crash publisher", MaxReconnectRetry = -1 });
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
await using var publisher = new JetStreamPublisher(client, connection, new JetStreamPublisherOptions { Replicas = replicas });
var run = client.RunAsync();
await Task.WhenAny(client.Streaming, run);
Console.WriteLine("streaming");
await run;
return 0;
