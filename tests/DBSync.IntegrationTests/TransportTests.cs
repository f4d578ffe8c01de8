using System.Diagnostics;
using System.Security.Authentication;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Replication.Transport;
using DBSync.Sample;
using DBSync.Testing;
using Npgsql;
using Xunit.Abstractions;

namespace DBSync.IntegrationTests;

/// <summary>
/// DBSync's own replication connection: how it connects (TCP, Unix socket, TLS modes, each password method), what it
/// refuses and why, when Auto leaves the stream to Npgsql, and frames larger than its read buffer.
/// </summary>
[Trait("Category", "Transport")]
public sealed class TransportTests(TlsServerFixture tls, ITestOutputHelper output) : IClassFixture<TlsServerFixture>
{
    private const int StreamStartedEvent = 2001;
    private const int DirectNotUsedEvent = 2013;
    private const int DirectFellBackEvent = 2019;

    [Theory]
    [InlineData("scram_user", TlsServerFixture.ScramPassword, SslMode.VerifyFull, "localhost", true)]
    [InlineData("scram_user", TlsServerFixture.ScramPassword, SslMode.Prefer, "127.0.0.1", true)]
    [InlineData("md5_user", TlsServerFixture.Md5Password, SslMode.Disable, "127.0.0.1", false)]
    [InlineData("clear_user", TlsServerFixture.CleartextPassword, SslMode.Require, "127.0.0.1", true)]
    [InlineData("clear_user", TlsServerFixture.CleartextPassword, SslMode.VerifyCA, "127.0.0.1", true)]
    public async Task Direct_AuthenticatesWithEachMethod_AndStreams(string user, string password, SslMode sslMode, string host, bool expectTls)
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        var connectionString = new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor(db.Name, user, password))
        {
            Host = host,
            SslMode = sslMode,
            RootCertificate = tls.RootCertificate,
        }.ConnectionString;
        await using var run = await StreamOneRowAsync(db, connectionString, ReplicationTransport.Direct, "direct");

        // The walsender's own view of its connection: TLS or not, and the role that logged in.
        await using var admin = await db.OpenAsync();
        await using var query = new NpgsqlCommand(
            "SELECT s.ssl, a.usename::text FROM pg_replication_slots r JOIN pg_stat_ssl s ON s.pid = r.active_pid JOIN pg_stat_activity a ON a.pid = r.active_pid WHERE r.slot_name = 'dbsync_test'", admin);
        await using var reader = await query.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), "the slot has no active walsender");
        Assert.Equal((expectTls, user), (reader.GetBoolean(0), reader.GetString(1)));
    }

    [Fact]
    public async Task Auto_ChoosesTheDirectConnection_WhereItServes()
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        var logs = new LogCapture();
        await using var run = await StreamOneRowAsync(db, db.ConnectionString, ReplicationTransport.Auto, "direct", logs);
        Assert.False(logs.Has(DirectNotUsedEvent));
    }

    [Fact]
    public async Task Direct_OverUnixSocket_Streams()
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        var connectionString = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Host = tls.Server.SocketDirectory }.ConnectionString;
        await using var run = await StreamOneRowAsync(db, connectionString, ReplicationTransport.Direct, "direct");
        var clientAddress = await db.ScalarAsync<string?>(
            "SELECT coalesce(host(client_addr), 'local') FROM pg_stat_activity WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'dbsync_test')");
        Assert.Equal("local", clientAddress);
    }

    [Theory]
    [InlineData("md5_user", SslMode.Disable, ReplicationTransport.Auto)]
    [InlineData("scram_user", SslMode.Require, ReplicationTransport.Auto)]
    [InlineData("scram_user", SslMode.Require, ReplicationTransport.Direct)]
    public async Task WrongPassword_OnTheReplicationConnection_IsTriedOnce_AndSaysWhatToCheck(string user, SslMode sslMode, ReplicationTransport transport)
    {
        const string wrong = "not-the-password-Z8q";
        var connectionString = new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor("postgres", user, wrong)) { Host = "127.0.0.1", SslMode = sslMode }.ConnectionString;
        var attempts = FailedLogins(user);
        var logs = new LogCapture();
        var options = new DBSyncOptions { ConnectionString = connectionString, ReplicationTransport = transport };

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => ReplicationTransports.OpenAsync(options, logs.CreateLogger("test"), CancellationToken.None));

        // The server logs a refused login before it answers, so every attempt is in the log by now: one, not a second
        // through Npgsql's connection.
        Assert.Equal(attempts + 1, FailedLogins(user));
        Assert.Empty(logs.Entries);
        Assert.Contains($"The server at 127.0.0.1:{tls.Server.Port} refused the login of role \"{user}\" to database \"postgres\": " +
                        $"password authentication failed for user \"{user}\" (SQLSTATE 28P01). Check the password of role \"{user}\"", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(wrong, error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("md5_user", SslMode.Disable)]
    [InlineData("scram_user", SslMode.Require)]
    public async Task WrongPassword_OnTheSetupConnection_IsAConfigurationError_NamingRoleAndServer(string user, SslMode sslMode)
    {
        const string wrong = "not-the-password-Z8q";
        var connectionString = new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor("postgres", user, wrong)) { Host = "127.0.0.1", SslMode = sslMode }.ConnectionString;
        var logs = new LogCapture();
        var client = new DBSyncClient(new DBSyncOptions { ConnectionString = connectionString, SlotName = "dbsync_test", PublicationName = "dbsync_test", LoggerFactory = logs });
        client.On<Restaurant>(_ => { });

        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => client.RunAsync());
        Assert.Equal(
            $"The server at 127.0.0.1:{tls.Server.Port} refused the login of role \"{user}\" to database \"postgres\": password authentication failed for user \"{user}\" " +
            $"(SQLSTATE 28P01). Check the password of role \"{user}\": the connection string's Password (without one, PGPASSWORD or the password file). " +
            $"A superuser can set a new one with ALTER ROLE \"{user}\" PASSWORD '...';", error.Message);
        Assert.Equal(PostgresErrorCodes.InvalidPassword, Assert.IsType<PostgresException>(error.InnerException).SqlState);
        Assert.DoesNotContain(wrong, error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(logs.Entries, e => e.Text.Contains(wrong, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Direct_VerifyFull_TrustsAServerWhoseChainRunsThroughAnIntermediateCa()
    {
        // The root file holds the root alone; the server sends its certificate and the intermediate CA that signed it.
        Assert.Equal(1, Pems(tls.RootCertificate));
        Assert.Equal(2, Pems(tls.ServerChain));
        var settings = Settings(new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor("postgres", "scram_user", TlsServerFixture.ScramPassword))
        {
            Host = "localhost", SslMode = SslMode.VerifyFull, RootCertificate = tls.RootCertificate,
        });
        await using var transport = await ConnectDirectAsync(settings);
        Assert.True(transport.IsEncrypted);
    }

    [Fact]
    public async Task Direct_VerifyFull_RefusesACertificateForAnotherName()
    {
        // The certificate names localhost; 127.0.0.1 is the same server under a name the certificate does not carry.
        var settings = Settings(new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor("postgres", "scram_user", TlsServerFixture.ScramPassword))
        {
            Host = "127.0.0.1", SslMode = SslMode.VerifyFull, RootCertificate = tls.RootCertificate,
        });
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => ConnectDirectAsync(settings));
        Assert.Contains($"The certificate of the server at 127.0.0.1:{tls.Server.Port} does not pass SSL Mode=VerifyFull: the certificate (CN=localhost) does not carry the name 127.0.0.1",
            error.Message, StringComparison.Ordinal);
        Assert.IsType<AuthenticationException>(error.InnerException);
    }

    [Fact]
    public async Task Direct_VerifyCA_RefusesAServerSignedByAnotherCa()
    {
        var settings = Settings(new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor("postgres", "scram_user", TlsServerFixture.ScramPassword))
        {
            Host = "localhost", SslMode = SslMode.VerifyCA, RootCertificate = tls.OtherRootCertificate,
        });
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => ConnectDirectAsync(settings));
        Assert.Contains("does not pass SSL Mode=VerifyCA: its chain does not lead to a trusted CA", error.Message, StringComparison.Ordinal);
        Assert.Contains(tls.OtherRootCertificate, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ChannelBinding.Require, "SCRAM-SHA-256-PLUS")]
    [InlineData(ChannelBinding.Prefer, "SCRAM-SHA-256-PLUS")]
    [InlineData(ChannelBinding.Disable, "SCRAM-SHA-256")]
    public async Task ChannelBinding_WithAuto_IsServedByTheDirectConnection(ChannelBinding channelBinding, string mechanism)
    {
        // PostgreSQL offers SCRAM-SHA-256-PLUS over TLS and checks the binding: a wrong certificate hash is a refused login.
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        var connectionString = new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor(db.Name, "scram_user", TlsServerFixture.ScramPassword))
        {
            Host = "localhost", SslMode = SslMode.VerifyFull, RootCertificate = tls.RootCertificate, ChannelBinding = channelBinding,
        }.ConnectionString;
        var logs = new LogCapture();
        await using var run = await StreamOneRowAsync(db, connectionString, ReplicationTransport.Auto, "direct", logs);
        Assert.DoesNotContain(logs.Entries, e => e.Id.Id is DirectNotUsedEvent or DirectFellBackEvent);

        await using var transport = await ConnectDirectAsync(Settings(new NpgsqlConnectionStringBuilder(connectionString)));
        Assert.Equal(mechanism, transport.AuthenticationMethod);
        var ssl = await db.ScalarAsync<bool>($"SELECT ssl FROM pg_stat_ssl WHERE pid = {transport.BackendPid}");
        Assert.True(ssl);
    }

    [Fact]
    public async Task Direct_RequireTlsFromAServerWithoutIt_SaysHowToFixIt()
    {
        await using var plain = await PostgresServer.StartAsync(forceLocal: true);
        var settings = Settings(new NpgsqlConnectionStringBuilder(plain.ConnectionString) { SslMode = SslMode.Require });
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => ConnectDirectAsync(settings));
        Assert.Contains("does not accept TLS", error.Message, StringComparison.Ordinal);
        Assert.Contains("SSL Mode=Require", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Auto_WithAPassfile_LeavesTheStreamToNpgsql_AndDirectSaysWhy()
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        var passfile = Path.Combine(Path.GetTempPath(), $"dbsync-pgpass-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(passfile, "");
        try
        {
            var connectionString = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Passfile = passfile }.ConnectionString;
            var logs = new LogCapture();
            await using (var run = await StreamOneRowAsync(db, connectionString, ReplicationTransport.Auto, "npgsql", logs))
                await run.StopAsync();
            Assert.Contains(logs.Entries, e => e.Id.Id == DirectNotUsedEvent && e.Text.Contains("Passfile", StringComparison.Ordinal));

            var client = new DBSyncClient(new DBSyncOptions
            {
                ConnectionString = connectionString, SlotName = "dbsync_test", PublicationName = "dbsync_test", InitialSnapshot = false,
                ReplicationTransport = ReplicationTransport.Direct,
            });
            client.On<Restaurant>(_ => { });
            var refused = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => client.RunAsync());
            Assert.Contains("Passfile", refused.Message, StringComparison.Ordinal);
            Assert.Contains("ReplicationTransport to Auto", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(passfile);
        }
    }

    [Fact]
    public async Task Npgsql_WhenAsked_CarriesTheStream()
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        await using var run = await StreamOneRowAsync(db, db.ConnectionString, ReplicationTransport.Npgsql, "npgsql");
    }

    [Theory]
    [InlineData(ReplicationTransport.Direct)]
    [InlineData(ReplicationTransport.Npgsql)]
    public async Task FramesLargerThanTheReadBuffer_ArriveWhole(ReplicationTransport transport)
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        await db.ExecuteAsync("ALTER TABLE Restaurant ALTER COLUMN description SET STORAGE EXTERNAL");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, configure: o => o.ReplicationTransport = transport);

        // 3 MiB of text in one column: one pgoutput frame of three times the direct transport's 1 MiB read buffer,
        // between small ones.
        await db.ExecuteAsync("""
            INSERT INTO Restaurant (id, name) VALUES ('before', 'b');
            INSERT INTO Restaurant (id, name, description) SELECT 'large', 'l', string_agg(md5(i::text), '') FROM generate_series(1, 98304) i;
            INSERT INTO Restaurant (id, name) VALUES ('after', 'a');
            """);
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 3, "three inserts", TimeSpan.FromSeconds(60));
        var expected = await db.ScalarAsync<string>("SELECT description FROM Restaurant WHERE id = 'large'");
        Assert.Equal(3 * 1024 * 1024, expected.Length);
        var changes = run.Recorder.Of<Restaurant>();
        Assert.Equal(["before", "large", "after"], changes.Select(c => c.New!.Id));
        Assert.Equal(expected, changes[1].New!.Description);
    }

    [Theory]
    [InlineData(ReplicationTransport.Direct)]
    [InlineData(ReplicationTransport.Npgsql)]
    public async Task ReadOnAQuietSlot_EndsAtOnce_WhenItsTokenIsCancelled(ReplicationTransport transport)
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        var slot = $"dbsync_cancel_{transport.ToString().ToLowerInvariant()}";
        await db.ExecuteAsync($"CREATE PUBLICATION {slot} FOR ALL TABLES");
        await db.ExecuteAsync($"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')");
        var options = new DBSyncOptions { ConnectionString = db.ConnectionString, SlotName = slot, ReplicationTransport = transport };
        await using var stream = await ReplicationTransports.OpenAsync(options, new LogCapture().CreateLogger("test"), CancellationToken.None);
        await stream.StartAsync(slot, 0, [new("proto_version", "1"), new("publication_names", slot)], CancellationToken.None);
        using var cancellation = new CancellationTokenSource();

        // Nothing is written: only the token can end the read this soon (ReceiveTimeout is a minute). The read starts off
        // the reader thread, where the call returns at once and the wait is in the task.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        cancellation.CancelAfter(TimeSpan.FromMilliseconds(300));
        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Task.Run(() => stream.ReadFrameAsync(cancellation.Token).AsTask()).WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"the read ended {watch.Elapsed} after its token was cancelled");
        Assert.Equal(cancellation.Token, error.CancellationToken);
    }

    /// <summary>A run of <paramref name="transport"/> through <paramref name="proxy"/>, without TLS (so the proxy can tell
    /// replication connections by their startup message), logging into <paramref name="logs"/>.</summary>
    private static Task<StreamRun> StartThroughAsync(TcpProxy proxy, TestDatabase db, ReplicationTransport transport, LogCapture logs,
        Action<DBSyncOptions>? configure = null, int? connectTimeout = null)
    {
        var builder = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, SslMode = SslMode.Disable };
        if (connectTimeout is { } timeout)
            builder.Timeout = timeout;
        return StreamRun.StartAsync(builder.ConnectionString, configure: o =>
        {
            o.ReplicationTransport = transport;
            o.LoggerFactory = logs;
            configure?.Invoke(o);
        });
    }

    [Theory]
    [InlineData(ReplicationTransport.Direct)]
    [InlineData(ReplicationTransport.Npgsql)]
    public async Task SilentNetwork_IsGivenUpAfterReceiveTimeout_AndTheStreamResumes(ReplicationTransport transport)
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        await using var proxy = TcpProxy.Start("127.0.0.1", tls.Server.Port);
        var logs = new LogCapture();
        await using var run = await StartThroughAsync(proxy, db, transport, logs, o =>
        {
            o.ReceiveTimeout = TimeSpan.FromSeconds(3);
            o.StatusInterval = TimeSpan.FromMilliseconds(500);
            o.ReconnectDelay = TimeSpan.FromMilliseconds(300);
        });
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('before', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 1, "the change before the network went silent");

        // The network now drops everything on the replication connection, without closing it: no error, no FIN, no RST.
        var silenced = DateTime.UtcNow;
        proxy.SilenceExisting();
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('during', 'n')");
        for (var giveUpDeadline = DateTime.UtcNow.AddSeconds(30); !logs.Has(2007); await Task.Delay(20))
        {
            if (run.Run.IsCompleted)
                await run.Run;
            Assert.True(DateTime.UtcNow < giveUpDeadline, "The silent connection was not given up within 30 s. The log:\n" +
                string.Join("\n", logs.Entries.Select(e => $"{e.Id.Id} {e.Text}")));
        }
        var givenUpAfter = DateTime.UtcNow - silenced;
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New!.Id == "during"), "the change written during the silence, over a new connection", TimeSpan.FromSeconds(30));

        Assert.InRange(givenUpAfter, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(15));
        Assert.Equal(["before", "during"], run.Recorder.Of<Restaurant>().Select(c => c.New!.Id));
        Assert.True(logs.Has(2008), "The stream did not report reconnecting.");
    }

    [Theory]
    [InlineData(ReplicationTransport.Direct)]
    [InlineData(ReplicationTransport.Npgsql)]
    public async Task WholeNetworkSilent_StopEndsTheRunWellWithinTheHostsShutdownTimeout(ReplicationTransport transport)
    {
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        await using var proxy = TcpProxy.Start("127.0.0.1", tls.Server.Port);
        var logs = new LogCapture();
        await using var run = await StartThroughAsync(proxy, db, transport, logs);
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('before', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 1, "the change before the network went silent");

        // Every connection open now, and every new one, gets no answer (no FIN, no RST): the pod's network is gone when
        // it is told to stop. The stop must still end well within the 30 s a host gives its services (HostOptions'
        // ShutdownTimeout): the stream's end waits 5 s (Npgsql's connection: its cancel request, up to the connection
        // string's Timeout, 15 s by default), then the check that the walsender let go of the slot gives up after 5 s.
        proxy.Silence();
        var watch = Stopwatch.StartNew();
        await run.Client.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var stoppedAfter = watch.Elapsed;
        await run.Run.WaitAsync(TimeSpan.FromSeconds(5));
        output.WriteLine($"{transport}: stopped {stoppedAfter.TotalSeconds:0.0} s after the stop was asked for. The log:\n" +
            string.Join("\n", logs.Entries.Select(e => $"{e.Id.Id} {e.Text}")));
        var bound = TimeSpan.FromSeconds(transport == ReplicationTransport.Direct ? 15 : 25);
        Assert.True(stoppedAfter < bound, $"The run stopped {stoppedAfter.TotalSeconds:0.0} s after the stop was asked for (at most {bound.TotalSeconds} s expected).");
    }

    [Fact]
    public async Task Direct_ReconnectWhoseFirstAttemptTimesOut_IsTriedAgain_AndTheStreamResumes()
    {
        // The direct connection's connect timeout is a lost connection, as Npgsql's (an NpgsqlException around a
        // TimeoutException) always was. Npgsql's own replication connection is left out here: after a swallowed startup
        // it sometimes opens a second connection inside the same Open, so the timeout is not always seen.
        const ReplicationTransport transport = ReplicationTransport.Direct;
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        await using var proxy = TcpProxy.Start("127.0.0.1", tls.Server.Port);
        var logs = new LogCapture();
        await using var run = await StartThroughAsync(proxy, db, transport, logs, o => o.ReconnectDelay = TimeSpan.FromMilliseconds(300), connectTimeout: 2);
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('before', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 1, "the change before the walsender was terminated");

        // The walsender is terminated; the first replication connection after it gets no answer at all (its startup
        // message is swallowed), so it times out after the connection string's Timeout; the next one passes.
        proxy.SilenceNextReplicationConnections(1);
        await db.ExecuteAsync(ReliabilityTests.TerminateWalSender);
        await db.ExecuteAsync("INSERT INTO Restaurant (id, name) VALUES ('after', 'n')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Any(c => c.New!.Id == "after"), "the change written after the loss, over the second new connection", TimeSpan.FromSeconds(60));

        Assert.Equal(["before", "after"], run.Recorder.Of<Restaurant>().Select(c => c.New!.Id));
        var losses = logs.Entries.Where(e => e.Id.Id == 2007).ToList();
        Assert.True(losses.Count >= 2, $"{losses.Count} lost connection(s) logged");
        Assert.Contains(losses, e => e.Text.Contains("TimeoutException", StringComparison.Ordinal));
        Assert.False(run.Run.IsCompleted, "the run ended");
    }

    [Fact]
    public async Task FirstStartThatCannotConnect_IsReported_NotTriedForever()
    {
        // Nothing answers: the setup connection times out, and the run ends with that error instead of retrying.
        await using var db = await TestDatabase.CreateAsync(tls.Server);
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0); // accepts, never answers
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var unanswered = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Host = "127.0.0.1", Port = port, SslMode = SslMode.Disable, Timeout = 2 }.ConnectionString;
        var client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = unanswered, SlotName = "dbsync_test", PublicationName = "dbsync_test", ReplicationTransport = ReplicationTransport.Direct,
        });
        client.On<Restaurant>(_ => { });

        var error = await Assert.ThrowsAnyAsync<Exception>(() => client.RunAsync().WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.IsNotType<TimeoutException>(error); // the test's own wait did not run out
        Assert.Contains("Timeout", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Starts a run on <paramref name="transport"/>, streams one inserted row and checks which replication
    /// connection carried it (<paramref name="carriedBy"/>: "direct" or "npgsql"); the run stays open for more checks.</summary>
    private static async Task<StreamRun> StreamOneRowAsync(TestDatabase db, string connectionString, ReplicationTransport transport, string carriedBy, LogCapture? logs = null)
    {
        logs ??= new LogCapture();
        var run = await StreamRun.StartAsync(connectionString, configure: o =>
        {
            o.ReplicationTransport = transport;
            o.LoggerFactory = logs;
        });
        await db.ExecuteAsync($"INSERT INTO Restaurant (id, name) VALUES ('r-1', 'carried by {carriedBy}')");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 1, "the insert");
        Assert.Equal($"carried by {carriedBy}", run.Recorder.Of<Restaurant>()[0].New!.Name);
        Assert.Contains(logs.Entries, e => e.Id.Id == StreamStartedEvent && e.Text.Contains($"over the {carriedBy} replication connection", StringComparison.Ordinal));
        return run;
    }

    /// <summary>The logins of <paramref name="user"/> the server refused for a wrong password, from its log.</summary>
    private int FailedLogins(string user)
    {
        using var log = new StreamReader(new FileStream(tls.ServerLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        var text = log.ReadToEnd();
        var line = $"password authentication failed for user \"{user}\"";
        var count = 0;
        for (var at = text.IndexOf(line, StringComparison.Ordinal); at >= 0; at = text.IndexOf(line, at + line.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    private static int Pems(string path) => File.ReadAllText(path).Split("-----BEGIN CERTIFICATE-----").Length - 1;

    private static Task<DirectTransport> ConnectDirectAsync(DirectSettings settings)
        => DirectTransport.ConnectAsync(settings, StreamTimings.From(new DBSyncOptions()), CancellationToken.None);

    private static DirectSettings Settings(NpgsqlConnectionStringBuilder builder)
        => DirectSettings.TryCreate(builder.ConnectionString, out var unsupported) ?? throw new InvalidOperationException(unsupported);
}
