using System.Buffers.Binary;
using System.Text;
using DBSync.Protocol.Wire;
using DBSync.Replication.Transport;
using Npgsql;

namespace DBSync.Runtime.Tests;

/// <summary>The direct replication connection's pure parts: SCRAM, the messages it writes and reads, and which
/// connection strings it serves.</summary>
public sealed class WireProtocolTests
{
    [Fact]
    public void Scram_MatchesTheRfc7677Example()
    {
        // RFC 7677, section 3: user "user", password "pencil", the client nonce fixed.
        var scram = new ScramSha256Client("user", "rOprNGfwEbeRWgbNEkqO");
        Assert.Equal("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", Encoding.UTF8.GetString(scram.ClientFirst()));
        var final = scram.ClientFinal("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"u8, "pencil");
        Assert.Equal("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", Encoding.UTF8.GetString(final));
        scram.VerifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="u8);
    }

    [Fact]
    public void Scram_ServerThatDoesNotKnowThePassword_IsNotTrusted()
    {
        var scram = new ScramSha256Client("user", "rOprNGfwEbeRWgbNEkqO");
        scram.ClientFinal("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"u8, "pencil");
        var error = Assert.Throws<ProtocolException>(() => scram.VerifyServerFinal("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="u8));
        Assert.Contains("signature is wrong", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Security")]
    public void Scram_ServerAskingForAnIterationCountThatWouldHoldTheClientForMinutes_IsRefusedAtOnce()
    {
        var scram = new ScramSha256Client("user", "rOprNGfwEbeRWgbNEkqO");
        var started = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.Throws<ProtocolException>(() => scram.ClientFinal("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2147483647"u8, "pencil"));
        Assert.Contains("2147483647 SCRAM-SHA-256 iterations", error.Message, StringComparison.Ordinal);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), "the key was derived before the count was refused");
    }

    [Fact]
    public void Scram_ServerNonceMustExtendTheClients()
    {
        var scram = new ScramSha256Client("user", "clientnonce");
        var error = Assert.Throws<ProtocolException>(() => scram.ClientFinal("r=othernonce123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"u8, "pencil"));
        Assert.Contains("nonce", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [Trait("Category", "Security")]
    [InlineData("plain text, \"quoted\", é ü 日本", "plain text, \"quoted\", é ü 日本")]
    [InlineData("line\nbreak\r\n", @"line\nbreak\r\n")]
    [InlineData("tab\tnul\0escape\u001b[31mbell\a", @"tab\tnul\0escape\u001b[31mbell\u0007")]
    [InlineData("next line\u0085separators\u2028\u2029", @"next line\u0085separators\u2028\u2029")]
    [InlineData("bidi\u202eevil\u2066\u200f", @"bidi\u202eevil\u2066\u200f")]
    public void ServerText_EscapesWhatCouldBreakALineOrReorderText(string text, string expected)
    {
        Assert.Equal(expected, ServerText.Escape(text));
        Assert.Equal(expected, ServerText.Escape(ServerText.Escape(text))); // escaping again changes nothing
        Assert.Equal($"\"{expected}\"", ServerText.Quote(text));
    }

    [Fact]
    [Trait("Category", "Security")]
    public void ErrorResponse_FieldsWithLineBreaks_AreEscaped()
    {
        var body = Encoding.UTF8.GetBytes("SERROR\0C28P01\0Mbad\nFATAL: forged\0Dline one\nline two\0\0");
        var error = BackendMessages.ReadError(body);
        Assert.Equal((@"bad\nFATAL: forged", @"line one\nline two"), (error.MessageText, error.Detail));
        Assert.DoesNotContain("\nFATAL", error.Message, StringComparison.Ordinal); // Npgsql's own format puts DETAIL on lines of its own
    }

    [Fact]
    public void StandbyStatus_IsWrittenAsThePostgresProtocolSays()
    {
        var message = new byte[FrontendMessages.StandbyStatusLength];
        var now = new DateTime(2000, 1, 1, 0, 0, 1, DateTimeKind.Utc);
        FrontendMessages.WriteStandbyStatus(message, 0x30, 0x20, 0x10, now, replyRequested: true);
        Assert.Equal((byte)'d', message[0]);
        Assert.Equal(38, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(1)));
        Assert.Equal((byte)'r', message[5]);
        Assert.Equal((0x30UL, 0x20UL, 0x10UL), (BinaryPrimitives.ReadUInt64BigEndian(message.AsSpan(6)), BinaryPrimitives.ReadUInt64BigEndian(message.AsSpan(14)),
            BinaryPrimitives.ReadUInt64BigEndian(message.AsSpan(22))));
        Assert.Equal(1_000_000L, BinaryPrimitives.ReadInt64BigEndian(message.AsSpan(30)));
        Assert.Equal(1, message[38]);
    }

    [Fact]
    public void Startup_CarriesTheParametersAndProtocol3()
    {
        var message = FrontendMessages.Startup([new("user", "u"), new("replication", "database")]);
        Assert.Equal(message.Length, BinaryPrimitives.ReadInt32BigEndian(message));
        Assert.Equal(196608, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(4)));
        Assert.Equal("user\0u\0replication\0database\0\0", Encoding.UTF8.GetString(message.AsSpan(8)));
        Assert.Throws<ArgumentException>(() => FrontendMessages.Password("a\0b"));
    }

    [Fact]
    public void ErrorResponse_BecomesThePostgresExceptionNpgsqlWouldRaise()
    {
        var body = Encoding.UTF8.GetBytes("SERROR\0VERROR\0C55000\0Mcannot read from logical replication slot \"s\"\0DThis slot has been invalidated.\0Fslot.c\0\0");
        var error = BackendMessages.ReadError(body);
        Assert.Equal(("55000", "ERROR", "cannot read from logical replication slot \"s\"", "This slot has been invalidated.", "slot.c"),
            (error.SqlState, error.Severity, error.MessageText, error.Detail, error.File));
    }

    [Fact]
    public void Keepalive_AndXLogDataHeaders_AreRead()
    {
        var keepalive = new byte[18];
        keepalive[0] = (byte)'k';
        BinaryPrimitives.WriteUInt64BigEndian(keepalive.AsSpan(1), 0x1234);
        keepalive[17] = 1;
        Assert.Equal(new KeepaliveMessage(0x1234, true), BackendMessages.ReadKeepalive(keepalive));

        var data = new byte[XLogDataHeader.Length + 1];
        data[0] = (byte)'w';
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(1), 0x10);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(9), 0x20);
        Assert.Equal(new XLogDataHeader(0x10, 0x20), BackendMessages.ReadXLogData(data));
        Assert.Throws<ProtocolException>(() => BackendMessages.ReadXLogData(data.AsSpan(0, 10)));
    }

    [Theory]
    [InlineData("Host=a,b;Database=d;Username=u", "several hosts")]
    [InlineData("Host=h;Database=d;Username=u;SSL Mode=Allow", "Allow")]
    [InlineData("Host=h;Database=d;Username=u;SSL Certificate=/c.crt", "client certificate")]
    [InlineData("Host=h;Database=d;Username=u;Passfile=/p", "Passfile")]
    [InlineData("Host=h;Database=d;Username=u;Require Auth=ScramSHA256", "Require Auth")]
    [InlineData("Host=h;Database=d;Username=u;Target Session Attributes=primary", "Target Session")]
    [InlineData("Host=h;Database=d;Username=u;Kerberos Service Name=pg", "Kerberos")]
    public void ConnectionStrings_TheDirectTransportLeavesToNpgsql_SayWhy(string connectionString, string reason)
    {
        Assert.Null(DirectSettings.TryCreate(connectionString, out var unsupported));
        Assert.Contains(reason, unsupported, StringComparison.Ordinal);
    }

    [Fact]
    public void ConnectionString_TheDirectTransportServes_KeepsItsSettings()
    {
        var settings = DirectSettings.TryCreate(
            "Host=/var/run/postgresql;Port=5433;Database=d;Username=u;Password=p;SSL Mode=VerifyFull;Root Certificate=/ca.crt;Timeout=3;Application Name=app",
            out var unsupported);
        Assert.Null(unsupported);
        Assert.NotNull(settings);
        Assert.True(settings.IsUnixSocket);
        Assert.Equal((5433, "d", "u", "p", SslMode.VerifyFull, "/ca.crt", TimeSpan.FromSeconds(3), "app"),
            (settings.Port, settings.Database, settings.Username, settings.Password, settings.SslMode, settings.RootCertificate, settings.ConnectTimeout, settings.ApplicationName));
    }
}
