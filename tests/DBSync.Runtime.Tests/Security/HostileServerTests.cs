using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using DBSync.IntegrationTests.Infrastructure;
using DBSync.Replication.Transport;
using Npgsql;

namespace DBSync.Runtime.Tests.Security;

/// <summary>
/// DBSync's own replication connection against a server that attacks it (<see cref="HostileServer"/>): each attack on
/// the authentication order, the channel binding, the message lengths and the framing ends in a clear error, the
/// password is never sent in cleartext (checked on every byte the server received), and a refused login is not tried
/// again. Also the channel binding that a server can check: the certificate's hash for each signature algorithm.
/// </summary>
[Trait("Category", "Security")]
[Collection(SecurityCollection.Name)]
public sealed class HostileServerTests
{
    private const int AuthenticationOk = 0;
    private const int CleartextPassword = 3;
    private const int Md5Password = 5;
    private const int SaslContinue = 11;
    private const int SaslFinal = 12;
    private const string BothMechanisms = "SCRAM-SHA-256-PLUS,SCRAM-SHA-256";

    private static readonly StreamTimings s_timings = StreamTimings.From(new DBSyncOptions());
    private static readonly Lazy<X509Certificate2> s_certificate = new(() => TestCertificates.SelfSigned("RSA SHA-256"));

    [Theory]
    [InlineData("after the client's first message")]
    [InlineData("after the client's proof")]
    public async Task AuthenticationOkBeforeTheScramExchangeCompleted_IsRefusedAsAnImpostor(string when)
    {
        await using var server = HostileServer.Start(async c =>
        {
            if (when == "after the client's proof")
            {
                await c.ScramUntilFinalAsync();
            }
            else
            {
                await c.OfferSaslAsync("SCRAM-SHA-256");
                await c.ExpectAsync('p');
            }
            await c.SendAuthenticationAsync(AuthenticationOk);
            await c.SendReadyAsync();
        });
        var error = await RefusedAsync<ProtocolException>(server);
        Assert.Contains("sent AuthenticationOk before the SCRAM-SHA-256 exchange was complete", error.Message, StringComparison.Ordinal);
        Assert.Contains("impostor", error.Message, StringComparison.Ordinal);
        Assert.Contains($"role \"{HostileServer.User}\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongServerSignature_IsRefused()
    {
        await using var server = HostileServer.Start(async c =>
        {
            var scram = await c.ScramUntilFinalAsync();
            await c.SendAuthenticationAsync(SaslFinal, scram.ServerFinal(wrongSignature: true));
            await c.SendAuthenticationAsync(AuthenticationOk);
            await c.SendReadyAsync();
        });
        var error = await RefusedAsync<ProtocolException>(server);
        Assert.Contains("signature is wrong", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(CleartextPassword, "after the client's first message")]
    [InlineData(CleartextPassword, "after the client's proof")]
    [InlineData(Md5Password, "after the client's first message")]
    [InlineData(Md5Password, "after the client's proof")]
    public async Task WeakerMethodInTheMiddleOfScram_IsRefused_AndNoPasswordIsSent(int request, string when)
    {
        await using var server = HostileServer.Start(async c =>
        {
            if (when == "after the client's proof")
            {
                await c.ScramUntilFinalAsync();
            }
            else
            {
                await c.OfferSaslAsync("SCRAM-SHA-256");
                await c.ExpectAsync('p');
            }
            await c.SendAuthenticationAsync(request, request == Md5Password ? [1, 2, 3, 4] : []);
        });
        var error = await RefusedAsync<ProtocolException>(server);
        Assert.Contains("after SCRAM-SHA-256 authentication had begun", error.Message, StringComparison.Ordinal);
        Assert.Contains("it is not sent", error.Message, StringComparison.Ordinal);
        // Only the SCRAM messages went out: no PasswordMessage with the password or its MD5 hash.
        var passwords = server.Seen.Single().ClientMessages().Where(m => m.Kind == 'p').ToList();
        Assert.Equal(when == "after the client's proof" ? 2 : 1, passwords.Count);
        Assert.DoesNotContain(passwords, m => Encoding.UTF8.GetString(m.Body).StartsWith("md5", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PlusStrippedFromTheOffer_UnderChannelBindingRequire_IsRefusedBeforeAnyPassword()
    {
        await using var server = HostileServer.Start(c => c.OfferSaslAsync("SCRAM-SHA-256"), s_certificate.Value);
        var error = await RefusedAsync<DBSyncConfigurationException>(server, "SSL Mode=Require;Channel Binding=Require");
        Assert.Contains("Channel Binding=Require", error.Message, StringComparison.Ordinal);
        Assert.Contains("without SCRAM-SHA-256-PLUS", error.Message, StringComparison.Ordinal);
        Assert.Contains("man in the middle", error.Message, StringComparison.Ordinal);
        Assert.True(server.Seen.Single().IsTls);
        Assert.DoesNotContain(server.Seen.Single().ClientMessages(), m => m.Kind == 'p');
    }

    [Theory]
    [InlineData(AuthenticationOk, "let the role in without a password")]
    [InlineData(CleartextPassword, "asks for the password in cleartext")]
    [InlineData(Md5Password, "asks for an MD5 password")]
    public async Task LoginThatCannotBind_UnderChannelBindingRequire_IsRefusedBeforeAnyPassword(int request, string reason)
    {
        await using var server = HostileServer.Start(async c =>
        {
            await c.SendAuthenticationAsync(request, request == Md5Password ? [1, 2, 3, 4] : []);
            await c.SendReadyAsync();
        }, s_certificate.Value);
        var error = await RefusedAsync<DBSyncConfigurationException>(server, "SSL Mode=Require;Channel Binding=Require");
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(server.Seen.Single().ClientMessages(), m => m.Kind == 'p');
    }

    [Fact]
    public async Task ChannelBindingRequire_OverAConnectionWithoutTls_IsRefused()
    {
        // The server refuses TLS (SSL Mode=Prefer accepts that), then offers both mechanisms.
        await using var server = HostileServer.Start(c => c.OfferSaslAsync(BothMechanisms.Split(',')));
        var error = await RefusedAsync<DBSyncConfigurationException>(server, "SSL Mode=Prefer;Channel Binding=Require");
        Assert.Contains("not encrypted", error.Message, StringComparison.Ordinal);
        Assert.False(server.Seen.Single().IsTls);
    }

    [Theory]
    [InlineData('Z', "ReadyForQuery")]
    [InlineData('K', "BackendKeyData")]
    [InlineData('S', "ParameterStatus")]
    public async Task ServerThatSkipsAuthentication_IsRefused(char kind, string name)
    {
        await using var server = HostileServer.Start(async c =>
        {
            await c.SendAsync(kind, kind switch { 'Z' => "I"u8, 'K' => new byte[8], _ => "a\0b\0"u8 });
            await c.SendReadyAsync();
        });
        var error = await RefusedAsync<ProtocolException>(server);
        Assert.Contains($"sent {name} before any authentication request", error.Message, StringComparison.Ordinal);
        Assert.Contains("skips authentication", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SASLContinue first")]
    [InlineData("SASLFinal first")]
    [InlineData("SASLFinal instead of SASLContinue")]
    [InlineData("a second SASL offer")]
    [InlineData("a second MD5 request after the password")]
    public async Task AuthenticationMessagesOutOfOrder_AreRefused(string attack)
    {
        await using var server = HostileServer.Start(async c =>
        {
            switch (attack)
            {
                case "SASLContinue first":
                    await c.SendAuthenticationAsync(SaslContinue, "r=x,s=c2FsdA==,i=1"u8);
                    break;
                case "SASLFinal first":
                    await c.SendAuthenticationAsync(SaslFinal, "v=AAAA"u8);
                    break;
                case "SASLFinal instead of SASLContinue":
                    await c.OfferSaslAsync("SCRAM-SHA-256");
                    await c.ExpectAsync('p');
                    await c.SendAuthenticationAsync(SaslFinal, "v=AAAA"u8);
                    break;
                case "a second SASL offer":
                    await c.OfferSaslAsync("SCRAM-SHA-256");
                    await c.ExpectAsync('p');
                    await c.OfferSaslAsync("SCRAM-SHA-256");
                    break;
                default:
                    await c.SendAuthenticationAsync(Md5Password, [1, 2, 3, 4]);
                    await c.ExpectAsync('p');
                    await c.SendAuthenticationAsync(Md5Password, [5, 6, 7, 8]);
                    break;
            }
        });
        var error = await RefusedAsync<ProtocolException>(server);
        Assert.Contains("out of order", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(6)]
    [InlineData(99)]
    public async Task UnknownAuthenticationMethod_IsReportedAsNotSupported_NotAsOutOfOrder(int request)
    {
        await using var server = HostileServer.Start(c => c.SendAuthenticationAsync(request));
        var error = await RefusedAsync<ProtocolException>(server);
        Assert.StartsWith($"The server at 127.0.0.1:{server.Port} asks for authentication method {request}, which is not supported", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("out of order", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("an ErrorResponse")]
    [InlineData("a refused login")]
    [InlineData("a SASL mechanism name")]
    [InlineData("SCRAM's e= text")]
    [InlineData("a server-first-message")]
    [InlineData("an iteration count")]
    public async Task ServerTextWithLineBreaks_IsEscapedInErrorsAndWarnings(string where)
    {
        // A log line forged by the server: after a line break, what looks like an entry of its own.
        const string forged = "ok\n2026-01-01 00:00:00 [Critical] all data deleted\u202e";
        var forgedBytes = Encoding.UTF8.GetBytes(forged);
        await using var server = HostileServer.Start(async c =>
        {
            switch (where)
            {
                case "an ErrorResponse":
                    await c.SendErrorAsync("XX000", forged);
                    break;
                case "a refused login":
                    await c.SendErrorAsync("28000", forged);
                    break;
                case "a SASL mechanism name":
                    await c.OfferSaslAsync(forged);
                    break;
                case "SCRAM's e= text":
                    await c.ScramUntilFinalAsync();
                    await c.SendAuthenticationAsync(SaslFinal, [.. "e="u8, .. forgedBytes]);
                    break;
                case "a server-first-message":
                    await c.OfferSaslAsync("SCRAM-SHA-256");
                    await c.ExpectAsync('p');
                    await c.SendAuthenticationAsync(SaslContinue, forgedBytes);
                    break;
                default:
                    await c.OfferSaslAsync("SCRAM-SHA-256");
                    var first = Encoding.UTF8.GetString(await c.ExpectAsync('p'));
                    var nonce = first[(first.IndexOf(",r=", StringComparison.Ordinal) + 3)..];
                    await c.SendAuthenticationAsync(SaslContinue, Encoding.UTF8.GetBytes($"r={nonce}x,s=c2FsdA==,i={forged}"));
                    break;
            }
        });
        // Through what the session uses, with Auto: a mechanism only Npgsql might know is a warning, the rest errors.
        var logs = new LogCapture();
        var options = new DBSyncOptions { ConnectionString = server.ConnectionString("Timeout=5"), ReplicationTransport = ReplicationTransport.Auto };
        var error = await Assert.ThrowsAnyAsync<Exception>(() => ReplicationTransports.OpenAsync(options, logs.CreateLogger("test"), CancellationToken.None));
        await server.WhenClosedAsync();
        server.AssertScriptsRan();

        var texts = where == "a SASL mechanism name"
            ? [Assert.Single(logs.Entries, e => e.Id.Id == 2019).Text]
            : new[] { error.Message, error is PostgresException postgres ? postgres.MessageText : error.Message };
        foreach (var text in texts)
        {
            Assert.DoesNotContain('\n', text);
            Assert.DoesNotContain('\u202e', text);
            Assert.Contains(@"ok\n2026-01-01 00:00:00 [Critical] all data deleted\u202e", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ChannelBindingPrefer_WithACertificateThatGivesNoBinding_LogsInUnbound_WithAWarningThatSaysWhy()
    {
        // RSA with SHA-224: RFC 5929 binds with the signature's hash, which .NET cannot compute (as Ed25519 has none).
        using var certificate = TestCertificates.SignedAs("1.2.840.113549.1.1.14");
        ScramServer? scram = null;
        await using var server = HostileServer.Start(async c =>
        {
            scram = await c.ScramUntilFinalAsync(BothMechanisms);
            await c.SendAuthenticationAsync(SaslFinal, scram.ServerFinal());
            await c.SendAuthenticationAsync(AuthenticationOk);
            await c.SendReadyAsync();
        }, certificate);
        var logs = new LogCapture();
        var options = new DBSyncOptions { ConnectionString = server.ConnectionString("SSL Mode=Require"), ReplicationTransport = ReplicationTransport.Direct, SlotName = "orders" };

        await using (var transport = await ReplicationTransports.OpenAsync(options, logs.CreateLogger("test"), CancellationToken.None))
            Assert.Equal("SCRAM-SHA-256", ((DirectTransport)transport).AuthenticationMethod);
        await server.WhenClosedAsync();
        server.AssertScriptsRan();

        Assert.Equal(("SCRAM-SHA-256", "n,,", true), (scram!.Mechanism, scram.Gs2Header, scram.ProofVerified));
        var warning = Assert.Single(logs.Entries, e => e.Id.Id == 2029);
        Assert.Equal(
            $"Slot \"orders\" streams without channel binding: the server at 127.0.0.1:{server.Port} offers SCRAM-SHA-256-PLUS, but its certificate's signature " +
            "algorithm (RSA with SHA-224, 1.2.840.113549.1.1.14) defines no hash for tls-server-end-point binding, so the login of role \"victim\" uses " +
            "SCRAM-SHA-256 without channel binding: it is not bound to the TLS channel, and Channel Binding=Require would refuse this server", warning.Text);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(int.MaxValue - 4)]
    [InlineData(1 << 30)]
    public async Task OversizedLengthInTheHandshake_IsAProtocolError_WithoutAllocatingIt(int length)
    {
        await using var server = HostileServer.Start(async c =>
        {
            var header = new byte[5];
            header[0] = (byte)'R';
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), length);
            await c.SendRawAsync(header);
        });
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var error = await RefusedAsync<ProtocolException>(server);
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;

        Assert.Contains($"Message 'R' from the server at 127.0.0.1:{server.Port} claims a body of {length - 4} bytes", error.Message, StringComparison.Ordinal);
        Assert.Contains("handshake", error.Message, StringComparison.Ordinal);
        Assert.True(allocated < 256 << 20, $"{allocated} bytes allocated while refusing a claimed length of {length}");
    }

    [Fact]
    public async Task OversizedFrameWhileStreaming_IsRefusedAboveMaxMessageSize_WithoutAllocatingIt()
    {
        const int claimed = 512 << 20;
        await using var server = HostileServer.Start(c => StreamThenClaimAFrameAsync(c, claimed));
        var settings = Settings(server) with { MaxMessageSize = 1 << 20 };
        await using var transport = await DirectTransport.ConnectAsync(settings, s_timings, CancellationToken.None);
        await transport.StartAsync("slot", 0, [], CancellationToken.None);

        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var error = await Assert.ThrowsAsync<ProtocolException>(() => transport.ReadFrameAsync(CancellationToken.None).AsTask());
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;

        Assert.Contains($"Message 'd' from the server at 127.0.0.1:{server.Port} claims a body of {claimed} bytes, over the limit of {1 << 20} bytes (DBSyncOptions.MaxMessageSize)",
            error.Message, StringComparison.Ordinal);
        Assert.True(allocated < 256 << 20, $"{allocated} bytes allocated while refusing a frame of {claimed}");
    }

    [Fact]
    public async Task FrameClaimingHalfAGibibyte_ThenAClosedConnection_CostsOnlyWhatWasSent()
    {
        // Under the default MaxMessageSize (1 GiB, PostgreSQL's own limit) the claim is allowed; the buffer grows only
        // with the bytes that arrive, so a server that claims much and sends little gets little memory.
        const int claimed = 512 << 20;
        await using var server = HostileServer.Start(async c =>
        {
            await StreamThenClaimAFrameAsync(c, claimed);
            await c.DisposeAsync();
        });
        await using var transport = await DirectTransport.ConnectAsync(Settings(server), s_timings, CancellationToken.None);
        await transport.StartAsync("slot", 0, [], CancellationToken.None);

        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var error = await Assert.ThrowsAsync<EndOfStreamException>(() => transport.ReadFrameAsync(CancellationToken.None).AsTask());
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;

        Assert.Equal($"The server at 127.0.0.1:{server.Port} closed the replication connection.", error.Message);
        Assert.True(allocated < 64 << 20, $"{allocated} bytes allocated for a frame that sent 69 bytes of the {claimed} it claimed");
    }

    [Fact]
    public async Task ServerSilentAfterStartReplication_IsGivenUpAfterReceiveTimeout_WithAClearError()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = HostileServer.Start(SilentAfterStartReplication(started));
        var timings = new StreamTimings(TimeSpan.FromSeconds(10), ReceiveTimeout: TimeSpan.FromSeconds(2), TimeSpan.Zero);
        await using var transport = await DirectTransport.ConnectAsync(Settings(server), timings, CancellationToken.None);

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var start = transport.StartAsync("orders", 0, [], CancellationToken.None).AsTask();
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var error = await Assert.ThrowsAsync<IOException>(() => start.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(20));
        Assert.Equal($"The server at 127.0.0.1:{server.Port} accepted START_REPLICATION for slot \"orders\" but did not start the stream within ReceiveTimeout (2 s): " +
                     "the connection is given up.", error.Message);
    }

    [Theory]
    [InlineData("its token is cancelled")]
    [InlineData("the stream is ended")]
    public async Task ServerSilentAfterStartReplication_EndsAtOnce_When(string how)
    {
        // ReceiveTimeout is long: only the cancellation or the end can end the wait this soon.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = HostileServer.Start(SilentAfterStartReplication(started));
        await using var transport = await DirectTransport.ConnectAsync(Settings(server), s_timings, CancellationToken.None);
        using var cancellation = new CancellationTokenSource();

        var start = transport.StartAsync("orders", 0, [], cancellation.Token).AsTask();
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        if (how == "its token is cancelled")
            await cancellation.CancelAsync();
        else
            await transport.EndStreamAsync(flushStatus: true);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"the start ended {watch.Elapsed} after it was {how}");
    }

    [Theory]
    [InlineData("while the read waits")]
    [InlineData("before the read")]
    public async Task ServerSilentWhileStreaming_ReadEndsAtOnce_WhenItsTokenIsCancelled(string when)
    {
        // ReceiveTimeout is long: only the token can end the read this soon.
        var streaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = HostileServer.Start(async c =>
        {
            await c.SendAuthenticationAsync(AuthenticationOk);
            await c.SendReadyAsync();
            await c.ExpectAsync('Q');
            await c.SendAsync('W', new byte[3]);
            streaming.TrySetResult();
        });
        await using var transport = await DirectTransport.ConnectAsync(Settings(server), s_timings, CancellationToken.None);
        await transport.StartAsync("orders", 0, [], CancellationToken.None);
        await streaming.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using var cancellation = new CancellationTokenSource();

        var watch = System.Diagnostics.Stopwatch.StartNew();
        if (when == "before the read")
            await cancellation.CancelAsync();
        else
            cancellation.CancelAfter(TimeSpan.FromMilliseconds(300)); // on the reader thread the call itself blocks
        var read = transport.ReadFrameAsync(cancellation.Token).AsTask();
        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"the read ended {watch.Elapsed} after its token was cancelled {when}");
        Assert.Equal(cancellation.Token, error.CancellationToken);
    }

    /// <summary>A server that logs the client in, takes START_REPLICATION, and then says nothing.</summary>
    /// <summary>Logs in, starts the stream, then sends the header of a CopyData frame claiming <paramref name="claimed"/>
    /// bytes and 64 bytes of it.</summary>
    private static async Task StreamThenClaimAFrameAsync(HostileConnection c, int claimed)
    {
        await c.SendAuthenticationAsync(AuthenticationOk);
        await c.SendReadyAsync();
        await c.ExpectAsync('Q');
        await c.SendAsync('W', new byte[3]);
        var header = new byte[5 + 64];
        header[0] = (byte)'d';
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), claimed + 4);
        header[5] = (byte)'w';
        await c.SendRawAsync(header);
    }

    private static Func<HostileConnection, Task> SilentAfterStartReplication(TaskCompletionSource started) => async c =>
    {
        await c.SendAuthenticationAsync(AuthenticationOk);
        await c.SendReadyAsync();
        await c.ExpectAsync('Q');
        started.TrySetResult();
    };

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(8)]
    public async Task Md5RequestWithoutItsFourBytesOfSalt_IsAProtocolError_AndNoPasswordIsSent(int saltLength)
    {
        await using var server = HostileServer.Start(c => c.SendAuthenticationAsync(Md5Password, new byte[saltLength]));
        var error = await RefusedAsync<ProtocolException>(server);
        Assert.Contains($"AuthenticationMD5Password message of {4 + saltLength} bytes", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(server.Seen.Single().ClientMessages(), m => m.Kind == 'p');
    }

    [Fact]
    public async Task MessageCutOffByTheServer_IsAClosedConnection()
    {
        await using var server = HostileServer.Start(async c =>
        {
            await c.SendRawAsync([(byte)'R', 0, 0, 0, 12, 0, 0]);
            await c.DisposeAsync();
        });
        var error = await RefusedAsync<EndOfStreamException>(server);
        Assert.Contains($"The server at 127.0.0.1:{server.Port} closed the connection during the replication handshake", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GarbageFromTheServer_EndsInAProtocolError_NeverACrash()
    {
        // 200 connections, each answered with seeded random bytes: sometimes well-framed messages of random kinds and
        // bodies, sometimes nothing like a message. No password is configured, so no request may reveal one.
        var seed = 0;
        await using var server = HostileServer.Start(async c =>
        {
            var random = new Random(Interlocked.Increment(ref seed));
            for (var i = random.Next(1, 6); i > 0; i--)
                await c.SendRawAsync(Garbage(random));
            await c.DisposeAsync();
        });
        var outcomes = new Dictionary<string, int>();
        for (var i = 0; i < 200; i++)
        {
            try
            {
                await using var transport = await DirectTransport.ConnectAsync(Settings(server, withPassword: false), s_timings, CancellationToken.None);
                outcomes["connected"] = outcomes.GetValueOrDefault("connected") + 1;
            }
            catch (Exception e) when (e is ProtocolException or EndOfStreamException or PostgresException or DirectTransportUnsupportedException
                                          or DBSyncConfigurationException or IOException or SocketException)
            {
                outcomes[e.GetType().Name] = outcomes.GetValueOrDefault(e.GetType().Name) + 1;
            }
        }
        await server.WhenClosedAsync();
        server.AssertScriptsRan();
        Assert.True(outcomes.GetValueOrDefault(nameof(ProtocolException)) > 50, string.Join(", ", outcomes));
    }

    [Fact]
    public async Task GarbageScramMessagesFromTheServer_EndInAProtocolError_NeverACrash()
    {
        // 150 SCRAM logins with the password configured, each answered with a seeded mangled server-first-message
        // (SASLContinue) or, after a correct one, a mangled server-final-message (SASLFinal): random bytes, or the right
        // message cut, with a byte changed, or with text appended. Then Ok, so a message wrongly accepted connects.
        var seed = 0;
        await using var server = HostileServer.Start(async c =>
        {
            var random = new Random(Interlocked.Increment(ref seed));
            await c.OfferSaslAsync("SCRAM-SHA-256");
            var scram = new ScramServer(HostileServer.Password, expectedBinding: null);
            scram.ReadInitialResponse(await c.ExpectAsync('p'));
            if (random.Next(2) == 0)
            {
                await c.SendAuthenticationAsync(SaslContinue, Mangle(random, scram.ServerFirst()));
            }
            else
            {
                await c.SendAuthenticationAsync(SaslContinue, scram.ServerFirst());
                scram.ReadClientFinal(await c.ExpectAsync('p'));
                await c.SendAuthenticationAsync(SaslFinal, Mangle(random, scram.ServerFinal()));
            }
            await c.SendAuthenticationAsync(AuthenticationOk);
            await c.SendReadyAsync();
        });
        var outcomes = new Dictionary<string, int>();
        for (var i = 0; i < 150; i++)
        {
            try
            {
                await using var transport = await DirectTransport.ConnectAsync(Settings(server), s_timings, CancellationToken.None);
                outcomes["connected"] = outcomes.GetValueOrDefault("connected") + 1;
            }
            catch (ProtocolException e)
            {
                outcomes[nameof(ProtocolException)] = outcomes.GetValueOrDefault(nameof(ProtocolException)) + 1;
                Assert.DoesNotContain(HostileServer.Password, e.ToString(), StringComparison.Ordinal);
            }
        }
        await server.WhenClosedAsync();
        server.AssertScriptsRan();
        server.AssertPasswordNeverSentInCleartext();
        Assert.True(outcomes.GetValueOrDefault(nameof(ProtocolException)) > 100, string.Join(", ", outcomes));
    }

    [Fact]
    public async Task WrongPassword_WithAuto_IsTriedOnce_AndNamesRoleAndServer()
    {
        await using var server = HostileServer.Start(async c =>
        {
            await c.SendAuthenticationAsync(Md5Password, [1, 2, 3, 4]);
            await c.ExpectAsync('p');
            await c.SendErrorAsync("28P01", $"password authentication failed for user \"{HostileServer.User}\"");
        });
        var logs = new LogCapture();
        var options = new DBSyncOptions { ConnectionString = server.ConnectionString(), ReplicationTransport = ReplicationTransport.Auto };
        var error = await Assert.ThrowsAsync<DBSyncConfigurationException>(() => ReplicationTransports.OpenAsync(options, logs.CreateLogger("test"), CancellationToken.None));
        await server.WhenClosedAsync();

        Assert.Equal(1, server.Connections);
        Assert.Contains($"The server at 127.0.0.1:{server.Port} refused the login of role \"{HostileServer.User}\" to database \"db\"", error.Message, StringComparison.Ordinal);
        Assert.Contains("(SQLSTATE 28P01). Check the password of role", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(HostileServer.Password, error.ToString(), StringComparison.Ordinal);
        Assert.Empty(logs.Entries);
        server.AssertPasswordNeverSentInCleartext();
    }

    [Fact]
    public async Task MechanismOnlyNpgsqlMightKnow_WithAuto_FallsBackWithAWarningThatSaysWhy()
    {
        // The fallback logs in a second time; the first attempt stopped before sending anything of the password.
        await using var server = HostileServer.Start(c => c.OfferSaslAsync("SCRAM-SHA-512"));
        var logs = new LogCapture();
        var options = new DBSyncOptions { ConnectionString = server.ConnectionString(), ReplicationTransport = ReplicationTransport.Auto };
        await Assert.ThrowsAnyAsync<Exception>(() => ReplicationTransports.OpenAsync(options, logs.CreateLogger("test"), CancellationToken.None));
        await server.WhenClosedAsync();

        Assert.True(server.Connections >= 2, "Npgsql's connection did not try"); // Npgsql may try more than once itself
        var warning = Assert.Single(logs.Entries, e => e.Id.Id == 2019);
        Assert.Contains("the server offers only the SASL mechanisms \"SCRAM-SHA-512\"", warning.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(server.Seen[0].ClientMessages(), m => m.Kind == 'p');
        server.AssertPasswordNeverSentInCleartext();
    }

    public static TheoryData<string, string> SignatureAlgorithms => new()
    {
        { "RSA SHA-256", "SHA256" },
        { "RSA SHA-384", "SHA384" },
        { "RSA SHA-512", "SHA512" },
        { "RSA-PSS SHA-384", "SHA384" },
        { "ECDSA P-384 SHA-384", "SHA384" },
    };

    [Theory]
    [MemberData(nameof(SignatureAlgorithms))]
    public async Task ChannelBindingPrefer_OverTls_BindsToTheCertificate_WithItsSignatureHash(string certificate, string hash)
    {
        using var cert = TestCertificates.SelfSigned(certificate);
        // RFC 5929, section 4.1: the certificate's signature hash, SHA-256 in place of MD5 and SHA-1.
        var expected = hash switch
        {
            "SHA384" => SHA384.HashData(cert.RawData),
            "SHA512" => SHA512.HashData(cert.RawData),
            _ => SHA256.HashData(cert.RawData),
        };
        ScramServer? scram = null;
        await using var server = HostileServer.Start(async c =>
        {
            scram = await c.ScramUntilFinalAsync(BothMechanisms, expected);
            if (!scram.ProofVerified || !scram.BindingVerified)
            {
                await c.SendErrorAsync("28000", "SCRAM channel binding check failed");
                return;
            }
            await c.SendAuthenticationAsync(SaslFinal, scram.ServerFinal());
            await c.SendAuthenticationAsync(AuthenticationOk);
            await c.SendReadyAsync();
        }, cert);

        await using (var transport = await DirectTransport.ConnectAsync(Settings(server, "SSL Mode=Require"), s_timings, CancellationToken.None))
            Assert.Equal("SCRAM-SHA-256-PLUS", transport.AuthenticationMethod);
        Assert.Equal(("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,"), (scram!.Mechanism, scram.Gs2Header));
        await server.WhenClosedAsync();
        server.AssertScriptsRan();
        server.AssertPasswordNeverSentInCleartext();
    }

    [Theory]
    [InlineData("Disable", BothMechanisms, "n,,")]
    [InlineData("Prefer", "SCRAM-SHA-256", "y,,")]
    public async Task WithoutPlus_TheExchangeSaysWhetherTheClientCouldBind(string channelBinding, string offered, string gs2Header)
    {
        // "y" over TLS tells a real server that the client saw no -PLUS in the offer: one that supports it then refuses the
        // login, which unmasks a man in the middle that removed it.
        ScramServer? scram = null;
        await using var server = HostileServer.Start(async c =>
        {
            scram = await c.ScramUntilFinalAsync(offered);
            await c.SendAuthenticationAsync(SaslFinal, scram.ServerFinal());
            await c.SendAuthenticationAsync(AuthenticationOk);
            await c.SendReadyAsync();
        }, s_certificate.Value);

        await using (var transport = await DirectTransport.ConnectAsync(Settings(server, $"SSL Mode=Require;Channel Binding={channelBinding}"), s_timings, CancellationToken.None))
            Assert.Equal("SCRAM-SHA-256", transport.AuthenticationMethod);
        Assert.Equal(("SCRAM-SHA-256", gs2Header, true), (scram!.Mechanism, scram.Gs2Header, scram.ProofVerified));
        await server.WhenClosedAsync();
        server.AssertScriptsRan();
    }

    /// <summary>Connects to <paramref name="server"/>, expects <typeparamref name="TException"/>, and checks what every
    /// refusal must hold: no password in the error, none in cleartext on the wire, the script played as written.</summary>
    private static async Task<TException> RefusedAsync<TException>(HostileServer server, string extra = "") where TException : Exception
    {
        var error = await Assert.ThrowsAsync<TException>(async () =>
        {
            await using var transport = await DirectTransport.ConnectAsync(Settings(server, extra), s_timings, CancellationToken.None);
        });
        await server.WhenClosedAsync();
        server.AssertScriptsRan();
        server.AssertPasswordNeverSentInCleartext();
        Assert.DoesNotContain(HostileServer.Password, error.ToString(), StringComparison.Ordinal);
        return error;
    }

    private static DirectSettings Settings(HostileServer server, string extra = "", bool withPassword = true)
        => DirectSettings.TryCreate(server.ConnectionString(extra, withPassword), out var unsupported) ?? throw new InvalidOperationException(unsupported);

    /// <summary>A message made wrong: random bytes, or <paramref name="right"/> cut short, with one byte changed, or with
    /// letters and punctuation appended.</summary>
    private static byte[] Mangle(Random random, byte[] right)
    {
        switch (random.Next(4))
        {
            case 0:
                var noise = new byte[random.Next(0, 80)];
                random.NextBytes(noise);
                return noise;
            case 1:
                return right[..random.Next(right.Length)];
            case 2:
                var changed = right.ToArray();
                changed[random.Next(changed.Length)] = (byte)random.Next(256);
                return changed;
            default:
                return [.. right, .. Encoding.ASCII.GetBytes(new string(Enumerable.Range(0, random.Next(1, 12)).Select(_ => ",=abcXYZ+/"[random.Next(10)]).ToArray()))];
        }
    }

    private static byte[] Garbage(Random random)
    {
        if (random.Next(3) == 0)
        {
            var noise = new byte[random.Next(1, 64)];
            random.NextBytes(noise);
            return noise;
        }
        // A well-framed message: a kind a server sends during the handshake (or any byte), a body of random bytes, and
        // for 'R' a known request code.
        var kinds = "RRRRREKSZNvd";
        var kind = random.Next(8) == 0 ? (byte)random.Next(256) : (byte)kinds[random.Next(kinds.Length)];
        var body = new byte[random.Next(0, 48)];
        random.NextBytes(body);
        if (kind == 'R' && body.Length >= 4)
            BinaryPrimitives.WriteInt32BigEndian(body, random.Next(0, 14));
        var message = new byte[5 + body.Length];
        message[0] = kind;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), random.Next(10) == 0 ? random.Next() : 4 + body.Length);
        body.CopyTo(message.AsSpan(5));
        return message;
    }
}

/// <summary>The tests that measure the process's allocations run one at a time, and not beside the mutation tests.</summary>
[CollectionDefinition(Name)]
public sealed class SecurityCollection
{
    public const string Name = "Security";
}
