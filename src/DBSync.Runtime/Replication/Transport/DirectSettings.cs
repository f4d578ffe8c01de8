using System.Net;
using System.Runtime.InteropServices;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>
/// What <see cref="DirectTransport"/> takes from an Npgsql connection string, or why it cannot serve it. It speaks TCP
/// or a Unix socket to one host, TLS per <see cref="SslMode"/> (Prefer, Require: no certificate check, as in Npgsql;
/// VerifyCA, VerifyFull: against <c>Root Certificate</c>, <c>PGSSLROOTCERT</c>, <c>~/.postgresql/root.crt</c> or the
/// system's store), and trust, password, MD5, SCRAM-SHA-256 and SCRAM-SHA-256-PLUS authentication (per
/// <see cref="ChannelBinding"/>) with the connection string's password or <c>PGPASSWORD</c>. Anything else (several
/// hosts, client certificates, Kerberos/GSS, a password file, direct TLS negotiation) is left to Npgsql.
/// </summary>
internal sealed record DirectSettings(
    string Host,
    int Port,
    string Username,
    string? Password,
    string Database,
    SslMode SslMode,
    string? RootCertificate,
    ChannelBinding ChannelBinding,
    string ApplicationName,
    string? Options,
    TimeSpan ConnectTimeout,
    bool TcpKeepAlive,
    int TcpKeepAliveTime,
    int TcpKeepAliveInterval)
{
    /// <summary>The largest message body the server may send once streaming (<see cref="DBSyncOptions.MaxMessageSize"/>).</summary>
    public int MaxMessageSize { get; init; } = DBSyncOptions.DefaultMaxMessageSize;

    /// <summary>Whether <see cref="Host"/> is a Unix socket directory.</summary>
    public bool IsUnixSocket => Host.StartsWith('/');

    /// <summary>Where the server listens, for messages: <c>host:port</c>, or the Unix socket's path.</summary>
    public string Endpoint => EndpointOf(Host, Port);

    /// <summary>Where a server listens: <c>host:port</c>, or the socket's path when <paramref name="host"/> is a directory.</summary>
    public static string EndpointOf(string host, int port) => host.StartsWith('/') ? Path.Combine(host, $".s.PGSQL.{port}") : $"{host}:{port}";

    /// <summary>The role a connection string logs in as: its Username, else PGUSER, else the operating system's user.</summary>
    public static string UserOf(NpgsqlConnectionStringBuilder builder)
        => builder.Username ?? Environment.GetEnvironmentVariable("PGUSER") ?? Environment.UserName;

    /// <summary>The settings for <paramref name="connectionString"/>, or null with the reason the direct transport cannot
    /// serve it.</summary>
    public static DirectSettings? TryCreate(string connectionString, out string? unsupported)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        unsupported = Unsupported(builder);
        if (unsupported is not null)
            return null;

        var password = builder.Password ?? Environment.GetEnvironmentVariable("PGPASSWORD");
        return new DirectSettings(
            builder.Host!,
            builder.Port,
            UserOf(builder),
            password,
            builder.Database ?? UserOf(builder),
            builder.SslMode,
            builder.RootCertificate ?? Environment.GetEnvironmentVariable("PGSSLROOTCERT") ?? HomePostgresFile("root.crt"),
            builder.ChannelBinding,
            string.IsNullOrEmpty(builder.ApplicationName) ? "DBSync" : builder.ApplicationName,
            builder.Options,
            builder.Timeout == 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(builder.Timeout),
            builder.TcpKeepAlive,
            builder.TcpKeepAliveTime,
            builder.TcpKeepAliveInterval);
    }

    private static string? Unsupported(NpgsqlConnectionStringBuilder builder)
    {
        if (string.IsNullOrEmpty(builder.Host))
            return "the connection string names no Host";
        if (builder.Host.Contains(',', StringComparison.Ordinal))
            return "it names several hosts";
        if (!builder.Host.StartsWith('/') && builder.Host.Contains(':', StringComparison.Ordinal) && !IPAddress.TryParse(builder.Host, out _))
            return "its Host carries a port or an abstract socket name";
        if (builder.SslMode == SslMode.Allow)
            return "SSL Mode=Allow (try without TLS first) is Npgsql's";
        if (builder.SslNegotiation == SslNegotiation.Direct || Environment.GetEnvironmentVariable("PGSSLNEGOTIATION") is { Length: > 0 } negotiation && negotiation != "postgres")
            return "direct TLS negotiation is requested";
        if (builder.SslCertificate is not null || builder.SslKey is not null || Environment.GetEnvironmentVariable("PGSSLCERT") is not null
            || HomePostgresFile("postgresql.crt") is not null)
        {
            return "a client certificate is configured";
        }
        if (builder.GssEncryptionMode == GssEncryptionMode.Require)
            return "GSS Encryption Mode=Require";
        if (builder.Passfile is not null)
            return "the password comes from a Passfile";
        if (builder.RequireAuth is not null)
            return "Require Auth is set";
        if (builder.TargetSessionAttributes is not null || Environment.GetEnvironmentVariable("PGTARGETSESSIONATTRS") is not null)
            return "Target Session Attributes is set";
        if (builder.KerberosServiceName is { } service && service != "postgres")
            return "a Kerberos service name is given";
        return null;
    }

    private static string? HomePostgresFile(string name)
    {
        var home = Environment.GetEnvironmentVariable(RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "APPDATA" : "HOME");
        if (home is null)
            return null;
        var path = Path.Combine(home, RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "postgresql" : ".postgresql", name);
        return File.Exists(path) ? path : null;
    }
}
