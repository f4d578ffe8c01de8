using System.Net;
using System.Runtime.InteropServices;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>
/// What <see cref="DirectTransport"/> takes from an Npgsql connection string, or why it cannot serve it. It speaks TCP
/// or a Unix socket to one host, TLS per <see cref="SslMode"/> (Prefer, Require: no certificate check, as in Npgsql;
/// VerifyCA, VerifyFull: against <c>Root Certificate</c>, <c>PGSSLROOTCERT</c>, <c>~/.postgresql/root.crt</c> or the
/// system's store), and trust, password, MD5 and SCRAM-SHA-256 authentication with the connection string's password or
/// <c>PGPASSWORD</c>. Anything else (several hosts, client certificates, Kerberos/GSS, a password file, channel binding
/// required, direct TLS negotiation) is left to Npgsql.
/// </summary>
internal sealed record DirectSettings(
    string Host,
    int Port,
    string Username,
    string? Password,
    string Database,
    SslMode SslMode,
    string? RootCertificate,
    string ApplicationName,
    string? Options,
    TimeSpan ConnectTimeout,
    bool TcpKeepAlive,
    int TcpKeepAliveTime,
    int TcpKeepAliveInterval)
{
    /// <summary>Whether <see cref="Host"/> is a Unix socket directory.</summary>
    public bool IsUnixSocket => Host.StartsWith('/');

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
            builder.Username ?? Environment.GetEnvironmentVariable("PGUSER") ?? Environment.UserName,
            password,
            builder.Database ?? builder.Username ?? Environment.GetEnvironmentVariable("PGUSER") ?? Environment.UserName,
            builder.SslMode,
            builder.RootCertificate ?? Environment.GetEnvironmentVariable("PGSSLROOTCERT") ?? HomePostgresFile("root.crt"),
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
        if (builder.ChannelBinding == ChannelBinding.Require)
            return "Channel Binding=Require";
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
