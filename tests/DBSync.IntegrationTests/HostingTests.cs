using System.Diagnostics;
using DBSync.Hosting;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>
/// <c>services.AddDBSync(...)</c> in a real generic host against a real server: options bound from configuration and
/// validated at start, handlers resolved from dependency injection in one scope per transaction, DBSync's logs in the
/// host's logging, and the hosted service's life: the start waits until the slot streams (a setup error stops the
/// application once the host has started, or fails the start), a stop finishes the transaction in flight and confirms
/// exactly its end (or, past the host's shutdown timeout, cancels the handlers and confirms nothing more), an error while
/// streaming stops the application, and a host start that gives up during setup is told from the setup's own error.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Ecosystem")]
public sealed class HostingTests(PostgresFixture fixture)
{
    private const string Password = "Pa55-hosted-never-logged-3Z";

    [Fact]
    public async Task HostedService_StreamsIntoHandlersFromDI_InOneScopePerTransaction()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var withPassword = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Password = Password }.ConnectionString;
        var recorder = new ChangeRecorder();
        var logs = new LogCapture();
        using var host = BuildHost(withPassword, recorder, logs: logs, settings: new() { ["DBSync:StatusInterval"] = "00:00:02" });

        await host.StartAsync(); // returns once the slot streams
        Assert.True(host.Services.GetRequiredService<DBSyncClient>().Streaming.IsCompletedSuccessfully);
        Assert.Equal(TimeSpan.FromSeconds(2), host.Services.GetRequiredService<IOptions<DBSyncOptions>>().Value.StatusInterval);
        await db.ExecuteAsync("""
            BEGIN;
            INSERT INTO Restaurant (id, name) VALUES ('r-1', 'a'), ('r-2', 'b');
            INSERT INTO Users (id, first_name, user_name, email) VALUES (1, 'u', 'u', 'u@example.com');
            INSERT INTO Visit (user_id, restaurant_id, amount_spent) VALUES (1, 'r-1', 2.50);
            COMMIT
            """);
        await db.ExecuteAsync("BEGIN; UPDATE Restaurant SET rating = 3 WHERE id = 'r-2'; DELETE FROM Visit; COMMIT");
        await recorder.WaitUntilAsync(r => r.All.OfType<TransactionHandled>().Count() == 2, "both transactions");
        await host.StopAsync();

        var events = recorder.All.ToList();
        var transactions = events.OfType<TransactionHandled>().ToList();
        var handled = events.OfType<ChangeHandled>().ToList();
        Assert.Equal(["r-1", "r-2", "1/r-1", "r-2", "1/r-1"], handled.Select(h => h.Key));
        var (first, second) = (transactions[0], transactions[1]);
        Assert.NotEqual(first.Scope, second.Scope);
        Assert.All(handled.Take(3), h => Assert.Equal((first.Transaction.Xid, first.Scope), (h.Xid, h.Scope)));
        Assert.All(handled.Skip(3), h => Assert.Equal((second.Transaction.Xid, second.Scope), (h.Xid, h.Scope)));
        // Each scope ends after its transaction handler, before the next transaction's first change.
        var firstDisposed = events.IndexOf(new ScopeDisposed(first.Scope));
        Assert.InRange(firstDisposed, events.IndexOf(first) + 1, events.IndexOf(handled[3]) - 1);
        Assert.Contains(new ScopeDisposed(second.Scope), events);

        // DBSync logs through the host's logging, and never the password.
        Assert.True(logs.Has(1000) && logs.Has(2001) && logs.Has(2002), "DBSync's start and stop were not in the host's logs");
        Assert.All(logs.Entries, e => Assert.DoesNotContain(Password, e.Text, StringComparison.Ordinal));
    }

    [Fact]
    public async Task HostStop_InTheMiddleOfATransaction_FinishesIt_AndConfirmsExactlyItsEnd()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var recorder = new ChangeRecorder();
        var handling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var behavior = new HandlerBehavior
        {
            // Each change takes a while, on the token the handlers get: a cancelled token would fail the transaction.
            BeforeAsync = async (key, cancellationToken) =>
            {
                handling.TrySetResult();
                if (key.StartsWith("slow-", StringComparison.Ordinal))
                    await Task.Delay(200, cancellationToken);
            },
        };
        using var host = BuildHost(db.ConnectionString, recorder, behavior);
        await host.StartAsync();

        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) SELECT 'slow-' || i, 'n' FROM generate_series(1, 5) i");
        await handling.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var stop = host.StopAsync();
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('after-stop', 'n')");
        await stop.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(Enumerable.Range(1, 5).Select(i => $"slow-{i}"), recorder.All.OfType<ChangeHandled>().Select(h => h.Key));
        var transaction = Assert.Single(recorder.All.OfType<TransactionHandled>()).Transaction;
        Assert.Equal(transaction.EndLsn, await db.SlotConfirmedAsync());
        Assert.Equal(0, await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE active"));

        // The next start goes on right after it: the row written during the stop, nothing of the finished transaction.
        var next = new ChangeRecorder();
        using var again = BuildHost(db.ConnectionString, next);
        await again.StartAsync();
        await next.WaitUntilAsync(r => r.All.OfType<TransactionHandled>().Any(), "the transaction written during the stop");
        await again.StopAsync();
        Assert.Equal(["after-stop"], next.All.OfType<ChangeHandled>().Select(h => h.Key));
    }

    [Fact]
    public async Task HostStop_PastTheShutdownTimeout_CancelsTheHandlers_AndConfirmsNothingMore()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var recorder = new ChangeRecorder();
        var logs = new LogCapture();
        var stuck = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var behavior = new HandlerBehavior
        {
            BeforeAsync = async (_, cancellationToken) =>
            {
                stuck.TrySetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    recorder.Add("handler cancelled");
                    throw;
                }
            },
        };
        using var host = BuildHost(db.ConnectionString, recorder, behavior, logs,
            configure: b => b.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(1)));
        await host.StartAsync();
        var beforeWrite = NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(await db.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text"));

        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('stuck', 'n')");
        await stuck.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var watch = Stopwatch.StartNew();
        await host.StopAsync();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"the stop took {watch.Elapsed} with a 1 s shutdown timeout");
        Assert.True(logs.Has(5003), "the stop past the shutdown timeout was not logged");
        await recorder.WaitUntilAsync(r => r.All.Contains("handler cancelled"), "the handler's token to be cancelled");

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE active") > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the slot stayed active after the handler gave up");
            await Task.Delay(50);
        }
        Assert.Empty(recorder.All.OfType<TransactionHandled>());
        Assert.True(await db.SlotConfirmedAsync() <= beforeWrite, "the unfinished transaction was confirmed");
    }

    [Fact]
    public async Task InvalidOptions_FailTheHostStart_NamingTheOptionAndItsConfigurationKey()
    {
        using (var host = BuildHost("Host=localhost;Database=app", new ChangeRecorder(), settings: new() { ["DBSync:SlotName"] = "Orders-Sync" }))
        {
            var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
            Assert.Contains("DBSyncOptions.SlotName 'Orders-Sync' is not valid: use 1 to 63 lower-case letters", error.Message, StringComparison.Ordinal);
            Assert.Contains("(configuration key 'DBSync:SlotName')", error.Message, StringComparison.Ordinal);
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddDBSync(o =>
        {
            o.ConnectionString = "Host=localhost;Database=app";
            o.SnapshotChunkSize = 0;
        }).AddChangeHandler<Restaurant, RestaurantHandler>();
        using var configuredInCode = builder.Build();
        var codeError = await Assert.ThrowsAsync<OptionsValidationException>(() => configuredInCode.StartAsync());
        Assert.Equal("DBSyncOptions.SnapshotChunkSize must be at least 1 (was 0).", Assert.Single(codeError.Failures));
    }

    [Fact]
    public async Task SetupError_IsLoggedOnce_StopsTheApplication_AndSetsAFailureExitCode_WithoutThrowing()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        var logs = new LogCapture();
        using var host = BuildHost(db.ConnectionString, new ChangeRecorder(), logs: logs);
        var stopping = StoppingOf(host);
        using var exitCode = new ExitCodeScope();
        // As host.RunAsync() would: start, wait for the stop, stop. Nothing throws, so the process is not aborted.
        await host.StartAsync();
        await stopping.WaitAsync(TimeSpan.FromSeconds(30));
        await host.StopAsync();

        Assert.Equal(1, Environment.ExitCode);
        var reported = Assert.Single(logs.Entries, e => e.Text.Contains("DBSyncConfigurationException", StringComparison.Ordinal));
        Assert.Equal(5001, reported.Id.Id);
        Assert.Contains("stopping the application with exit code 1", reported.Text, StringComparison.Ordinal);
        Assert.Contains("DBSync.DBSyncConfigurationException: Table public.restaurant", reported.Text, StringComparison.Ordinal);
        Assert.Contains("   at DBSync.Replication.ReplicationSetup", reported.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SetupError_WithStopApplicationOnErrorOff_FailsTheHostStart_WithItsMessage()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        using var host = BuildHost(db.ConnectionString, new ChangeRecorder(), settings: new() { ["DBSync:StopApplicationOnError"] = "false" });
        using var exitCode = new ExitCodeScope();
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => host.StartAsync());
        Assert.Contains("restaurant", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, Environment.ExitCode);
    }

    [Fact]
    public async Task SetupError_WithAHostedServiceAfterDBSyncThatHonoursItsToken_EndsWithExitCode1_WithoutThrowing()
    {
        // The host starts the services after DBSync whatever DBSync's start did; stopping the application during the
        // host's start would cancel their token, and this one would throw on it, failing the host's start (exit 134).
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        var logs = new LogCapture();
        var recorder = new ChangeRecorder();
        using var host = BuildHost(db.ConnectionString, recorder, logs: logs, configure: b => b.Services.AddHostedService<TokenHonouringService>());
        using var exitCode = new ExitCodeScope();
        // As Main does: RunAsync starts the host, waits for the stop and stops it; whatever it throws ends the process.
        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, Environment.ExitCode);
        var reported = Assert.Single(logs.Entries, e => e.Id.Id == 5001);
        Assert.Contains("DBSync.DBSyncConfigurationException: Table public.restaurant", reported.Text, StringComparison.Ordinal);
        Assert.Equal(["later service started", "later service stopped"], recorder.All.OfType<string>());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task HostStartGivingUpWhileTheSetupFails_ReportsTheSetupsOwnError_NotTheCancellation(bool stopApplicationOnError)
    {
        // The checkpoint store is read during setup; the host gives up starting while it is (as its startup timeout
        // would), and the read then fails of an error of its own. Without StopApplicationOnError that error fails the
        // host's start (not the cancellation, which would hide it); with it, it is reported (5001) and the host's start,
        // given up, ends as cancelled.
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var store = new SlowCheckpointStore(_ => new UnauthorizedAccessException("Access to the checkpoint file is denied."));
        var logs = new LogCapture();
        using var host = BuildHost(db.ConnectionString, new ChangeRecorder(), logs: logs, settings: new() { ["DBSync:StopApplicationOnError"] = stopApplicationOnError.ToString() },
            configure: b => b.Services.Configure<DBSyncOptions>(o => o.CheckpointStore = store));
        using var giveUp = new CancellationTokenSource();
        using var exitCode = new ExitCodeScope();
        var start = host.StartAsync(giveUp.Token);
        await store.Reading.WaitAsync(TimeSpan.FromSeconds(30));
        await giveUp.CancelAsync();

        if (stopApplicationOnError)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start.WaitAsync(TimeSpan.FromSeconds(30)));
            var reported = Assert.Single(logs.Entries, e => e.Id.Id == 5001);
            Assert.Contains("Access to the checkpoint file is denied.", reported.Text, StringComparison.Ordinal);
            Assert.Equal(1, Environment.ExitCode);
        }
        else
        {
            var error = await Assert.ThrowsAsync<UnauthorizedAccessException>(() => start.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal("Access to the checkpoint file is denied.", error.Message);
            Assert.DoesNotContain(logs.Entries, e => e.Id.Id is 5001 or 5002);
            Assert.Equal(0, Environment.ExitCode);
        }
    }

    [Fact]
    public async Task HostStartGivingUpWhileTheSetupWaits_WithAnErrorThatWrapsTheCancellation_IsNoError()
    {
        // A checkpoint store that reports its cancelled read as an error of its own, around the cancellation: still the
        // host giving up, not DBSync failing. Nothing is reported, the exit code stays 0.
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var store = new SlowCheckpointStore(cancelled => new InvalidOperationException("The checkpoint could not be read.", cancelled));
        var logs = new LogCapture();
        using var host = BuildHost(db.ConnectionString, new ChangeRecorder(), logs: logs, configure: b => b.Services.Configure<DBSyncOptions>(o => o.CheckpointStore = store));
        using var giveUp = new CancellationTokenSource();
        using var exitCode = new ExitCodeScope();
        var start = host.StartAsync(giveUp.Token);
        await store.Reading.WaitAsync(TimeSpan.FromSeconds(30));
        await giveUp.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.DoesNotContain(logs.Entries, e => e.Id.Id is 5001 or 5002);
        Assert.Equal(0, Environment.ExitCode);
    }

    [Fact]
    public async Task HostStartGivingUpWhileTheSetupWaits_IsNoError_NothingLogged_NoFailureExitCode()
    {
        // Creating the slot waits for the transactions running at that moment; the host gives up meanwhile (as its
        // startup timeout would). The query is cancelled, which is the run's end, not an error of DBSync's.
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var running = await db.OpenAsync();
        await using (var begin = new NpgsqlCommand("BEGIN; INSERT INTO Restaurant (id, name) VALUES ('held', 'n')", running))
            await begin.ExecuteNonQueryAsync();
        var logs = new LogCapture();
        using var host = BuildHost(db.ConnectionString, new ChangeRecorder(), logs: logs);
        using var giveUp = new CancellationTokenSource();
        using var exitCode = new ExitCodeScope();
        var start = host.StartAsync(giveUp.Token);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await db.ScalarAsync<long>(
                   "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_create_logical_replication_slot%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()") == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the slot's creation never waited");
            await Task.Delay(50);
        }
        await giveUp.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(0, Environment.ExitCode);
        Assert.DoesNotContain(logs.Entries, e => e.Id.Id is 5001 or 5002);
    }

    [Fact]
    public void TheRunsOwnCancellation_IsRecognised_WrappedOrAsACancelledQuery()
    {
        var cancelled = new OperationCanceledException();
        var queryCanceled = new PostgresException("canceling statement due to user request", "ERROR", "ERROR", PostgresErrorCodes.QueryCanceled);
        Assert.True(Hosting.Internal.DBSyncHostedService.IsCancellation(cancelled));
        Assert.True(Hosting.Internal.DBSyncHostedService.IsCancellation(queryCanceled));
        Assert.True(Hosting.Internal.DBSyncHostedService.IsCancellation(new InvalidOperationException("wrapped", cancelled)));
        Assert.True(Hosting.Internal.DBSyncHostedService.IsCancellation(new NpgsqlException("wrapped", queryCanceled)));
        Assert.True(Hosting.Internal.DBSyncHostedService.IsCancellation(new AggregateException(cancelled, queryCanceled)));
        Assert.False(Hosting.Internal.DBSyncHostedService.IsCancellation(new AggregateException(cancelled, new TimeoutException())));
        Assert.False(Hosting.Internal.DBSyncHostedService.IsCancellation(new NpgsqlException("timed out", new TimeoutException())));
        Assert.False(Hosting.Internal.DBSyncHostedService.IsCancellation(new PostgresException("permission denied", "ERROR", "ERROR", PostgresErrorCodes.InsufficientPrivilege)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ErrorWhileStreaming_IsLogged_AndStopsTheApplication_UnlessConfiguredNotTo(bool stopApplication)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var logs = new LogCapture();
        var behavior = new HandlerBehavior
        {
            BeforeAsync = (key, _) => key == "bad" ? throw new InvalidOperationException("the handler refuses 'bad'") : Task.CompletedTask,
        };
        using var host = BuildHost(db.ConnectionString, new ChangeRecorder(), behavior, logs,
            settings: new() { ["DBSync:StopApplicationOnError"] = stopApplication.ToString() });
        await host.StartAsync();
        var stopping = StoppingOf(host);
        using var exitCode = new ExitCodeScope();
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('bad', 'n')");
        if (stopApplication)
        {
            await stopping.WaitAsync(TimeSpan.FromSeconds(30));
            // The host's stop does not throw (the process would end as an unhandled exception, exit code 134, with the
            // stack trace printed again): the process ends with exit code 1.
            await host.StopAsync();
            Assert.Equal(1, Environment.ExitCode);
        }
        else
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!logs.Has(5002))
            {
                Assert.True(DateTime.UtcNow < deadline, "the error was not logged");
                await Task.Delay(50);
            }
            await Task.Delay(200);
            Assert.False(stopping.IsCompleted, "the application was stopped");
            await host.StopAsync();
            Assert.Equal(0, Environment.ExitCode);
        }

        // Reported once with its stack trace (5001 or 5002); the stream's own entry (2004) names it without the trace.
        var reported = Assert.Single(logs.Entries, e => e.Text.Contains("   at ", StringComparison.Ordinal));
        Assert.Equal(stopApplication ? 5001 : 5002, reported.Id.Id);
        Assert.Contains("the handler refuses 'bad'", reported.Text, StringComparison.Ordinal);
        var streamFailed = Assert.Single(logs.Entries, e => e.Id.Id == 2004);
        Assert.Contains("(InvalidOperationException: the handler refuses 'bad')", streamFailed.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostStoppedBeforeTheSlotStreams_StopsCleanly()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        foreach (var delay in new[] { 0, 20, 100, 300 })
        {
            using var host = BuildHost(db.ConnectionString, new ChangeRecorder(), settings: new() { ["DBSync:WaitUntilStreaming"] = "false" });
            await host.StartAsync();
            await Task.Delay(delay);
            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));

            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (await db.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE active") > 0)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the slot was still active 5 s after a stop {delay} ms after the start");
                await Task.Delay(50);
            }
        }
    }

    /// <summary>Completes when the host's application is stopping.</summary>
    private static Task StoppingOf(IHost host)
    {
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(() => stopping.TrySetResult());
        return stopping.Task;
    }

    /// <summary>A generic host with DBSync configured from a "DBSync" configuration section, handlers for restaurant and
    /// visit changes and for transactions, and a scoped <see cref="UnitOfWork"/> they share.</summary>
    /// <summary>Two hosts of the same pipeline (replicas): the second one's start returns with it standing by (the
    /// hosted service's default, <see cref="SlotInUse.Wait"/>), it delivers nothing while the first streams, and takes
    /// over when the first host stops.</summary>
    [Fact]
    [Trait("Category", "Standby")]
    public async Task SecondHostOfThePipeline_StartsStandingBy_TakesOverWhenTheFirstStops()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var (firstRecorder, secondRecorder) = (new ChangeRecorder(), new ChangeRecorder());
        var fast = new Dictionary<string, string?> { ["DBSync:StandbyPollInterval"] = "00:00:00.05" };
        using var metrics = new MetricsCapture("dbsync_test");
        static void WithHealthChecks(HostApplicationBuilder builder) => builder.Services.AddHealthChecks().AddDBSync();
        using var first = BuildHost(db.ConnectionString, firstRecorder, settings: fast, configure: WithHealthChecks);
        await first.StartAsync();
        using var second = BuildHost(db.ConnectionString, secondRecorder, settings: fast, configure: WithHealthChecks);
        try
        {
            await second.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
            var standby = second.Services.GetRequiredService<DBSyncClient>();
            Assert.Equal(SlotInUse.Wait, standby.Options.WhenSlotInUse);
            Assert.Equal(DBSyncRole.Standby, standby.Role);
            // Both healthy, each with its role; the gauge says which one streams.
            foreach (var (host, role) in new[] { (first, "Active"), (second, "Standby") })
            {
                var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
                Assert.Equal(HealthStatus.Healthy, report.Status);
                Assert.Equal(role, report.Entries["dbsync"].Data["role"]);
            }
            metrics.Observe();
            Assert.Equal(1, metrics.Sum(DBSyncDiagnostics.Metrics.Active));
            Assert.Equal(2, metrics.Count(DBSyncDiagnostics.Metrics.Active));

            await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-1', 'a')");
            await firstRecorder.WaitUntilAsync(r => r.All.OfType<ChangeHandled>().Any(h => h.Key == "r-1"), "the first host delivering r-1");
            await first.StopAsync();
            await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('r-2', 'b')");
            await secondRecorder.WaitUntilAsync(r => r.All.OfType<ChangeHandled>().Any(h => h.Key == "r-2"), "the second host delivering r-2 after taking over",
                timeout: TimeSpan.FromSeconds(30));
            Assert.Equal(DBSyncRole.Active, standby.Role);
            Assert.Equal("Active", (await second.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["dbsync"].Data["role"]);
            Assert.Equal(HealthStatus.Unhealthy, (await first.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Status); // stopped
            Assert.DoesNotContain(secondRecorder.All.OfType<ChangeHandled>(), h => h.Key == "r-1");
        }
        finally
        {
            // Neither host may outlive the test standing by for the slot (slot names are the server's, shared by the tests).
            await second.StopAsync();
            await first.StopAsync();
        }
    }

    private static IHost BuildHost(string connectionString, ChangeRecorder recorder, HandlerBehavior? behavior = null, LogCapture? logs = null,
        Dictionary<string, string?>? settings = null, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["DBSync:ConnectionString"] = connectionString,
            ["DBSync:SlotName"] = "dbsync_test",
            ["DBSync:PublicationName"] = "dbsync_test",
            ["DBSync:InitialSnapshot"] = "false",
            ["DBSync:ReplicationTransport"] = TestTransport.Current.ToString(),
        });
        if (settings is not null)
            builder.Configuration.AddInMemoryCollection(settings);
        if (logs is not null)
            builder.Logging.AddProvider(logs);
        builder.Services.AddSingleton(recorder);
        builder.Services.AddSingleton(behavior ?? new HandlerBehavior());
        builder.Services.AddScoped<UnitOfWork>();
        builder.Services.AddDBSync(builder.Configuration.GetSection("DBSync"))
            .AddChangeHandler<Restaurant, RestaurantHandler>()
            .AddChangeHandler<Visit, VisitHandler>()
            .AddTransactionHandler<TransactionHandler>();
        configure?.Invoke(builder);
        return builder.Build();
    }

    /// <summary>A checkpoint store whose read waits until the read is cancelled, then fails with the error
    /// <paramref name="failure"/> makes of the cancellation.</summary>
    private sealed class SlowCheckpointStore(Func<OperationCanceledException, Exception> failure) : ICheckpointStore
    {
        private readonly TaskCompletionSource _reading = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes once DBSync reads.</summary>
        public Task Reading => _reading.Task;

        public async Task<byte[]?> LoadAsync(string slotName, CancellationToken cancellationToken)
        {
            _reading.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException e)
            {
                throw failure(e);
            }
            return null;
        }

        public Task SaveAsync(string slotName, ReadOnlyMemory<byte> checkpoint, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>A hosted service registered after DBSync whose start does its work on the host's start token, as any
    /// that does I/O does.</summary>
    private sealed class TokenHonouringService(ChangeRecorder recorder) : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            await Task.Delay(10, cancellationToken);
            recorder.Add("later service started");
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            recorder.Add("later service stopped");
            return Task.CompletedTask;
        }
    }

    private sealed record ChangeHandled(string Key, ChangeKind Kind, uint Xid, int Scope);

    private sealed record TransactionHandled(CommittedTransaction Transaction, int Scope);

    private sealed record ScopeDisposed(int Scope);

    /// <summary>What the handlers do before recording a change, per test.</summary>
    private sealed class HandlerBehavior
    {
        public Func<string, CancellationToken, Task> BeforeAsync { get; init; } = (_, _) => Task.CompletedTask;
    }

    /// <summary>A scoped service, as a DbContext would be: the handlers of one transaction share one.</summary>
    private sealed class UnitOfWork(ChangeRecorder recorder) : IAsyncDisposable
    {
        private static int s_created;

        public int Id { get; } = Interlocked.Increment(ref s_created);

        public ValueTask DisposeAsync()
        {
            recorder.Add(new ScopeDisposed(Id));
            return ValueTask.CompletedTask;
        }
    }

    private sealed class RestaurantHandler(UnitOfWork work, ChangeRecorder recorder, HandlerBehavior behavior) : IChangeHandler<Restaurant>
    {
        public async ValueTask HandleAsync(Change<Restaurant> change, CancellationToken cancellationToken)
        {
            await behavior.BeforeAsync(change.Row!.Id, cancellationToken);
            recorder.Add(new ChangeHandled(change.Row!.Id, change.Kind, change.Xid, work.Id));
        }
    }

    private sealed class VisitHandler(UnitOfWork work, ChangeRecorder recorder, HandlerBehavior behavior) : IChangeHandler<Visit>
    {
        public async ValueTask HandleAsync(Change<Visit> change, CancellationToken cancellationToken)
        {
            var key = $"{change.Row!.UserId}/{change.Row.RestaurantId}";
            await behavior.BeforeAsync(key, cancellationToken);
            recorder.Add(new ChangeHandled(key, change.Kind, change.Xid, work.Id));
        }
    }

    private sealed class TransactionHandler(UnitOfWork work, ChangeRecorder recorder) : ITransactionHandler
    {
        public ValueTask HandleAsync(CommittedTransaction transaction, CancellationToken cancellationToken)
        {
            recorder.Add(new TransactionHandled(transaction, work.Id));
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Sets <see cref="Environment.ExitCode"/> to 0 for a test that checks what the host sets, and puts the
    /// process's own back afterwards.</summary>
    private sealed class ExitCodeScope : IDisposable
    {
        private readonly int _saved = Environment.ExitCode;

        public ExitCodeScope() => Environment.ExitCode = 0;

        public void Dispose() => Environment.ExitCode = _saved;
    }

    [Fact]
    public async Task SchemaChangeHandlerFromDI_SeesTheDdl_BeforeTheRowChangesAfterIt_InItsTransactionsScope()
    {
        // Without CaptureSchemaChanges the host's start fails, naming the option and its configuration key.
        static void WithSchemaLog(HostApplicationBuilder builder)
            => builder.Services.AddDBSync(builder.Configuration.GetSection("DBSync")).AddSchemaChangeHandler<SchemaChangeRecorder>();
        using (var without = BuildHost("Host=localhost;Database=app", new ChangeRecorder(), configure: WithSchemaLog))
        {
            var error = await Assert.ThrowsAsync<OptionsValidationException>(() => without.StartAsync());
            var failure = Assert.Single(error.Failures);
            Assert.StartsWith("DBSyncOptions.CaptureSchemaChanges is false, but schema change handlers are registered (AddSchemaChangeHandler<SchemaChangeRecorder>())", failure, StringComparison.Ordinal);
            Assert.EndsWith("(configuration key 'DBSync:CaptureSchemaChanges')", failure, StringComparison.Ordinal);
        }

        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        var recorder = new ChangeRecorder();
        using var host = BuildHost(db.ConnectionString, recorder, configure: WithSchemaLog,
            settings: new() { ["DBSync:CaptureSchemaChanges"] = "true", ["DBSync:SnapshotAfterRewrite"] = "false" });
        await host.StartAsync();
        var options = host.Services.GetRequiredService<DBSyncClient>().Options;
        Assert.True(options.CaptureSchemaChanges && !options.SnapshotAfterRewrite, "CaptureSchemaChanges and SnapshotAfterRewrite were not bound from configuration");

        await db.ExecuteAsync("ALTER TABLE restaurant ADD COLUMN opened date");
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name, opened) VALUES ('r-opened', 'n', '2024-05-01')");
        await recorder.WaitUntilAsync(r => r.All.OfType<ChangeHandled>().Any(h => h.Key == "r-opened"), "the insert after the DDL");
        await host.StopAsync();

        // DBSync's own first checkpoint save creates its table, which the trigger reports too.
        var events = recorder.All
            .Where(e => e is ChangeHandled or TransactionHandled || e is SchemaChangeHandled s && s.Change.Table != "public.dbsync_checkpoint")
            .ToList();
        var schema = Assert.Single(events.OfType<SchemaChangeHandled>());
        var added = schema.Change;
        Assert.Equal((SchemaChangeKind.ColumnAdded, "public.restaurant", "opened", null, "date", false), (added.Kind, added.Table, added.Column, added.Before, added.After, added.Rewritten));
        Assert.Equal((typeof(Restaurant), "ALTER TABLE", "ALTER TABLE restaurant ADD COLUMN opened date"), (added.EntityType, added.CommandTag, added.Statement));
        var insert = Assert.Single(events.OfType<ChangeHandled>());
        Assert.Equal(("r-opened", ChangeKind.Insert), (insert.Key, insert.Kind));
        Assert.True(events.IndexOf(schema) < events.IndexOf(insert), $"the insert was handled before the schema change: {string.Join(", ", events)}");
        // The DDL's transaction is one of its own, with its own scope, shared with its transaction handler.
        var ddlTransaction = Assert.Single(events.OfType<TransactionHandled>(), t => t.Transaction.Xid == added.Xid);
        Assert.Equal((ddlTransaction.Transaction.CommitLsn, ddlTransaction.Scope), (added.CommitLsn, schema.Scope));
        Assert.NotEqual(schema.Scope, insert.Scope);
        Assert.InRange(events.IndexOf(ddlTransaction), events.IndexOf(schema) + 1, events.IndexOf(insert) - 1);
    }

    private sealed record SchemaChangeHandled(SchemaChange Change, int Scope);

    private sealed class SchemaChangeRecorder(UnitOfWork work, ChangeRecorder recorder) : ISchemaChangeHandler
    {
        public ValueTask HandleAsync(SchemaChange change, CancellationToken cancellationToken)
        {
            recorder.Add(new SchemaChangeHandled(change, work.Id));
            return ValueTask.CompletedTask;
        }
    }
}
