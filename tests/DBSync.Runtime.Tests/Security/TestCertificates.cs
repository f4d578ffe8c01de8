using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace DBSync.Runtime.Tests.Security;

/// <summary>Server certificates for localhost that the tests present or hash: self-signed with a real algorithm, or
/// naming any signature algorithm (for those .NET cannot sign with: MD5, SHA-224, Ed25519).</summary>
internal static class TestCertificates
{
    /// <summary>A self-signed certificate with its private key, signed as <paramref name="kind"/> says: "RSA SHA-256",
    /// "RSA SHA-384", "RSA SHA-512", "RSA-PSS SHA-384", "ECDSA P-384 SHA-384".</summary>
    public static X509Certificate2 SelfSigned(string kind)
    {
        CertificateRequest request;
        if (kind.StartsWith("ECDSA", StringComparison.Ordinal))
        {
            request = new CertificateRequest("CN=localhost", ECDsa.Create(ECCurve.NamedCurves.nistP384), HashAlgorithmName.SHA384);
        }
        else
        {
            var hash = kind switch
            {
                _ when kind.EndsWith("SHA-384", StringComparison.Ordinal) => HashAlgorithmName.SHA384,
                _ when kind.EndsWith("SHA-512", StringComparison.Ordinal) => HashAlgorithmName.SHA512,
                _ => HashAlgorithmName.SHA256,
            };
            request = new CertificateRequest("CN=localhost", RSA.Create(2048), hash, kind.StartsWith("RSA-PSS", StringComparison.Ordinal) ? RSASignaturePadding.Pss : RSASignaturePadding.Pkcs1);
        }
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>A certificate with its private key whose signatureAlgorithm is <paramref name="oid"/>; the signature is
    /// RSA with SHA-256 whatever the name says (nothing here checks it: SSL Mode=Require does not).</summary>
    public static X509Certificate2 SignedAs(string oid)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.Create(new X500DistinguishedName("CN=test CA"), new NamedSignature(oid, key), DateTimeOffset.UtcNow.AddDays(-1),
            DateTimeOffset.UtcNow.AddDays(1), [1, 2, 3, 4]);
        // Exported and imported again: a TLS server on Linux needs a key it can hand to OpenSSL, not the ephemeral one.
        using var withKey = certificate.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pfx), null);
    }

    /// <summary>Signs with RSA but names <paramref name="oid"/> as the algorithm, so a test can have any algorithm's name.</summary>
    private sealed class NamedSignature(string oid, RSA key) : X509SignatureGenerator
    {
        public override byte[] GetSignatureAlgorithmIdentifier(HashAlgorithmName hashAlgorithm)
        {
            var writer = new AsnWriter(AsnEncodingRules.DER);
            using (writer.PushSequence())
                writer.WriteObjectIdentifier(oid);
            return writer.Encode();
        }

        public override byte[] SignData(byte[] data, HashAlgorithmName hashAlgorithm) => key.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);

        protected override PublicKey BuildPublicKey() => CreateForRSA(key, RSASignaturePadding.Pkcs1).PublicKey;
    }
}
