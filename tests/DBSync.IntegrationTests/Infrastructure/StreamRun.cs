using DBSync.Sample;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>Records everything a client delivers, in delivery order.</summary>
public sealed class ChangeRecorder
{
    private readonly List<object> _events = [];

    public void Add(object item)
    {
        lock (_events)
            _events.Add(item);
    }

    public IReadOnlyList<object> All
    {
        get
        {
            lock (_events)
                return [.. _events];
        }
    }

    public IReadOnlyList<Change<T>> Of<T>() where T : ISyncTable<T> => All.OfType<Change<T>>().ToList();

    public IReadOnlyList<CommittedTransaction> Transactions => All.OfType<CommittedTransaction>().ToList();

    public IReadOnlyList<SnapshotProgress> Progress => All.OfType<SnapshotProgress>().ToList();

    public int Count
    {
        get
        {
            lock (_events)
                return _events.Count;
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds; fails the test with <paramref name="what"/> after the timeout.</summary>
    public async Task WaitUntilAsync(Func<ChangeRecorder, bool> condition, string what, Task? run = null, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (!condition(this))
        {
            if (run is { IsCompleted: true })
                await run; // surface the stream's error instead of timing out
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"Timed out waiting for {what}; recorded {Count} events: {string.Join("; ", All.Take(50))}");
            await Task.Delay(20);
        }
    }
}

/// <summary>A client running in the background against a test database, recording what it delivers.</summary>
public sealed class StreamRun : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();

    private StreamRun(DBSyncClient client, ChangeRecorder recorder)
    {
        Client = client;
        Recorder = recorder;
    }

    public DBSyncClient Client { get; }

    public ChangeRecorder Recorder { get; }

    public Task Run { get; private set; } = Task.CompletedTask;

    /// <summary>Registers recording handlers for the seed tables (or what <paramref name="register"/> says), starts the
    /// client and waits until it streams.</summary>
    public static async Task<StreamRun> StartAsync(string connectionString, Action<DBSyncClient, ChangeRecorder>? register = null,
        ChangeRecorder? recorder = null, string slot = "dbsync_test", Action<DBSyncOptions>? configure = null)
    {
        // Tests ask for the snapshots they test; the initial snapshot has tests of its own.
        var options = new DBSyncOptions
        {
            ConnectionString = connectionString, SlotName = slot, PublicationName = slot, InitialSnapshot = false, ReplicationTransport = TestTransport.Current,
            SnapshotParallelism = TestSnapshotParallelism.Current,
        };
        configure?.Invoke(options);
        var client = new DBSyncClient(options);
        recorder ??= new ChangeRecorder();
        (register ?? RegisterSeedTables)(client, recorder);
        client.OnTransaction((tx, _) =>
        {
            recorder.Add(tx);
            return ValueTask.CompletedTask;
        });
        client.OnSnapshotProgress(recorder.Add);

        var run = new StreamRun(client, recorder);
        run.Run = client.RunAsync(run._stop.Token);
        var first = await Task.WhenAny(client.Streaming, run.Run, Task.Delay(TimeSpan.FromSeconds(60)));
        if (first == run.Run)
            await run.Run;
        if (client.Streaming.IsFaulted)
            await client.Streaming; // a setup error can complete Streaming a moment before RunAsync itself
        Assert.True(client.Streaming.IsCompletedSuccessfully, "The client did not start streaming within 60 seconds.");
        return run;
    }

    public static void RegisterSeedTables(DBSyncClient client, ChangeRecorder recorder)
    {
        client.On<User>(c => recorder.Add(c));
        client.On<Restaurant>(c => recorder.Add(c));
        client.On<Visit>(c => recorder.Add(c));
    }

    public Task WaitUntilAsync(Func<ChangeRecorder, bool> condition, string what, TimeSpan? timeout = null)
        => Recorder.WaitUntilAsync(condition, what, Run, timeout);

    /// <summary>Stops the client gracefully and waits for it to return.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        var finished = await Task.WhenAny(Run, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(finished == Run, "The client did not stop within 30 seconds of cancellation.");
        await Run;
    }

    public async ValueTask DisposeAsync()
    {
        if (!Run.IsCompleted)
        {
            await _stop.CancelAsync();
            await Task.WhenAny(Run, Task.Delay(TimeSpan.FromSeconds(30)));
        }
        _stop.Dispose();
    }
}
