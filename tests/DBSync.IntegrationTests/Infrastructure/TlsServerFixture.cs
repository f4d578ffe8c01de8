using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DBSync.Testing;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>
/// A throwaway cluster of its own (even when POSTGRES_HOST is set) with TLS on, a certificate for <c>localhost</c> signed
/// by an intermediate CA that a test root CA signed (the server sends both certificates, as servers behind a real CA
/// do; clients trust the root alone), and one role per password method: <c>scram_user</c> (SCRAM-SHA-256, TLS
/// connections only), <c>md5_user</c> (MD5) and <c>clear_user</c> (cleartext password). The superuser keeps trust on
/// loopback. Connections are logged (<c>log_connections</c>), so a test can count login attempts in <see cref="ServerLog"/>.
/// </summary>
public sealed class TlsServerFixture : IAsyncLifetime
{
    public const string ScramPassword = "scram-secret-Ω";
    public const string Md5Password = "md5-secret";
    public const string CleartextPassword = "clear-secret";

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "dbsync-tls-" + Guid.NewGuid().ToString("N")[..12]);

    public PostgresServer Server { get; private set; } = null!;

    /// <summary>The CA that signed the server's certificate, as a PEM file.</summary>
    public string RootCertificate => Path.Combine(_directory, "root.crt");

    /// <summary>A CA that signed nothing of this server, as a PEM file.</summary>
    public string OtherRootCertificate => Path.Combine(_directory, "other-root.crt");

    /// <summary>The certificates the server presents, leaf first (PEM): its own and the intermediate CA's.</summary>
    public string ServerChain => Path.Combine(_directory, "server-chain.crt");

    /// <summary>The server's log file (<c>log_connections</c> is on).</summary>
    public string ServerLog => Path.Combine(Server.SocketDirectory!, "server.log");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        Server = await PostgresServer.StartAsync(new Dictionary<string, string> { ["log_connections"] = "on" }, forceLocal: true);
        using var ca = CreateCa("DBSync test CA");
        using var intermediate = CreateIntermediateCa("DBSync test intermediate CA", ca);
        using var other = CreateCa("DBSync unrelated CA");
        await File.WriteAllTextAsync(RootCertificate, ca.ExportCertificatePem());
        await File.WriteAllTextAsync(OtherRootCertificate, other.ExportCertificatePem());

        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var certificate = request.Create(intermediate, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(20), RandomNumberGenerator.GetBytes(8));
        var chain = certificate.ExportCertificatePem() + "\n" + intermediate.ExportCertificatePem();
        await File.WriteAllTextAsync(ServerChain, chain);
        await Server.EnableTlsAsync(chain, key.ExportPkcs8PrivateKeyPem());

        await Server.ExecuteAsync($"""
            SET password_encryption = 'scram-sha-256';
            CREATE ROLE scram_user LOGIN REPLICATION SUPERUSER PASSWORD '{ScramPassword}';
            CREATE ROLE clear_user LOGIN REPLICATION SUPERUSER PASSWORD '{CleartextPassword}';
            SET password_encryption = 'md5';
            CREATE ROLE md5_user LOGIN REPLICATION SUPERUSER PASSWORD '{Md5Password}';
            """);
        await Server.SetHbaAsync([
            "local all all trust",
            "host all postgres 127.0.0.1/32 trust",
            "hostssl all scram_user 127.0.0.1/32 scram-sha-256",
            "host all md5_user 127.0.0.1/32 md5",
            "host all clear_user 127.0.0.1/32 password",
        ]);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>A CA certificate (with its key) signed by <paramref name="root"/>.</summary>
    private static X509Certificate2 CreateIntermediateCa(string name, X509Certificate2 root)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var certificate = request.Create(root, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(25), RandomNumberGenerator.GetBytes(8));
        return certificate.CopyWithPrivateKey(key);
    }

    private static X509Certificate2 CreateCa(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }
}
