using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using DBSync.Protocol.Wire;
using DBSync.Replication.Transport;
using Npgsql;

namespace DBSync.Runtime.Tests.Security;

/// <summary>
/// tls-server-end-point (RFC 5929, section 4.1) for the signature algorithms a server certificate may carry, including
/// those no TLS test server here can present (MD5, SHA-1, Ed25519), and what the authentication state machine does
/// with a certificate that gives no binding. Driven without a server.
/// </summary>
[Trait("Category", "Security")]
public sealed class ChannelBindingTests
{
    private const string Ed25519 = "1.3.101.112";

    [Theory]
    [InlineData("1.2.840.113549.1.1.4", "SHA256")] // md5WithRSAEncryption: MD5 is replaced by SHA-256
    [InlineData("1.2.840.113549.1.1.5", "SHA256")] // sha1WithRSAEncryption: so is SHA-1
    [InlineData("1.2.840.10045.4.1", "SHA256")] // ecdsa-with-SHA1
    [InlineData("1.2.840.113549.1.1.11", "SHA256")]
    [InlineData("1.2.840.10045.4.3.3", "SHA384")]
    [InlineData("1.2.840.113549.1.1.13", "SHA512")]
    [InlineData("1.2.840.113549.1.1.10", "SHA256")] // RSASSA-PSS without parameters: SHA-1, so SHA-256
    [InlineData(Ed25519, null)] // no hash of its own: no binding defined
    public void TlsServerEndPoint_HashesTheCertificate_WithItsSignaturesHash(string signatureOid, string? hash)
    {
        var certificate = CertificateSignedAs(signatureOid);
        var binding = TlsServerEndPoint.Compute(certificate, out var problem);
        var expected = hash switch
        {
            null => null,
            "SHA384" => SHA384.HashData(certificate),
            "SHA512" => SHA512.HashData(certificate),
            _ => SHA256.HashData(certificate),
        };
        Assert.Equal(expected, binding);
        Assert.Equal(hash is null, problem?.Contains(signatureOid, StringComparison.Ordinal) == true);
    }

    [Theory]
    [InlineData(ChannelBinding.Prefer)]
    [InlineData(ChannelBinding.Require)]
    public void CertificateWithoutABinding_PrefersPlainScram_AndRequireRefuses(ChannelBinding mode)
    {
        var channel = TlsChannel.For(CertificateSignedAs(Ed25519));
        var authentication = new ClientAuthentication("u", "secret", mode, "db.example:5432", channel);
        var offer = SaslOffer("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256");
        if (mode == ChannelBinding.Require)
        {
            var error = Assert.Throws<DBSyncConfigurationException>(() => authentication.Handle(offer));
            Assert.Contains($"its certificate's signature algorithm (Ed25519, {Ed25519}) defines no hash", error.Message, StringComparison.Ordinal);
            return;
        }
        // SASLInitialResponse: the mechanism, then the client-first-message, whose GS2 header says "n": not bound. ("y"
        // would make a server that offered -PLUS refuse the login.)
        var answer = Encoding.UTF8.GetString(authentication.Handle(offer)!);
        Assert.Contains("SCRAM-SHA-256\0", answer, StringComparison.Ordinal);
        Assert.Contains("n,,n=,r=", answer, StringComparison.Ordinal);
        // Not silently: the transport warns with why (as Npgsql does; libpq refuses).
        Assert.Equal(
            "the server at db.example:5432 offers SCRAM-SHA-256-PLUS, but its certificate's signature algorithm (Ed25519, 1.3.101.112) defines no hash for " +
            "tls-server-end-point binding, so the login of role \"u\" uses SCRAM-SHA-256 without channel binding: it is not bound to the TLS channel, " +
            "and Channel Binding=Require would refuse this server", authentication.UnboundReason);
    }

    [Theory]
    [InlineData(ChannelBinding.Disable, "SCRAM-SHA-256-PLUS,SCRAM-SHA-256")]
    [InlineData(ChannelBinding.Prefer, "SCRAM-SHA-256")]
    public void UnboundLogin_ThatBindingCouldNotHaveProtected_IsNoWarning(ChannelBinding mode, string offered)
    {
        // Disable asks for no binding; a server without -PLUS offers none (the "y" flag covers a stripped offer).
        var authentication = new ClientAuthentication("u", "secret", mode, "db.example:5432", TlsChannel.For(CertificateSignedAs(Ed25519)));
        authentication.Handle(SaslOffer(offered.Split(',')));
        Assert.Null(authentication.UnboundReason);
    }

    private static byte[] SaslOffer(params string[] mechanisms)
    {
        var names = Encoding.UTF8.GetBytes(string.Concat(mechanisms.Select(m => m + "\0")) + "\0");
        var body = new byte[4 + names.Length];
        BinaryPrimitives.WriteInt32BigEndian(body, 10);
        names.CopyTo(body, 4);
        return body;
    }

    /// <summary>A certificate whose signatureAlgorithm is <paramref name="oid"/> (the signature itself is not checked here).</summary>
    private static byte[] CertificateSignedAs(string oid)
    {
        using var certificate = TestCertificates.SignedAs(oid);
        return certificate.RawData;
    }
}
