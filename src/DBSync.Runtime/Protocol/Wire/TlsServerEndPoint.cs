using System.Formats.Asn1;
using System.Globalization;
using System.Security.Cryptography;

namespace DBSync.Protocol.Wire;

/// <summary>
/// The <c>tls-server-end-point</c> channel binding of RFC 5929, section 4.1, the only one PostgreSQL offers: a hash of
/// the server's certificate, with the hash function of the certificate's signature, SHA-256 in place of MD5 and SHA-1.
/// Pure: the certificate's bytes in, the binding out.
/// </summary>
internal static class TlsServerEndPoint
{
    /// <summary>The channel binding type named in the GS2 header.</summary>
    public const string Name = "tls-server-end-point";

    private const string Sha1 = "1.3.14.3.2.26";
    private const string Sha256 = "2.16.840.1.101.3.4.2.1";
    private const string Sha384 = "2.16.840.1.101.3.4.2.2";
    private const string Sha512 = "2.16.840.1.101.3.4.2.3";
    private const string RsaPss = "1.2.840.113549.1.1.10";
    private const string Sha3Signatures = "2.16.840.1.101.3.4.3.";

    /// <summary>The hash of <paramref name="certificate"/> (DER), or null with the reason when its signature algorithm
    /// defines none (Ed25519, Ed448) or is one .NET cannot compute.</summary>
    public static byte[]? Compute(byte[] certificate, out string? problem)
    {
        string algorithm;
        HashAlgorithmName? hash;
        try
        {
            (algorithm, hash) = SignatureHash(certificate);
        }
        catch (AsnContentException e)
        {
            problem = $"its certificate cannot be parsed ({e.Message})";
            return null;
        }
        if (hash is not { } name)
        {
            problem = $"its certificate's signature algorithm ({Describe(algorithm)}) defines no hash for {Name} binding";
            return null;
        }
        problem = null;
        return name.Name switch
        {
            "SHA384" => SHA384.HashData(certificate),
            "SHA512" => SHA512.HashData(certificate),
            _ => SHA256.HashData(certificate),
        };
    }

    /// <summary>An algorithm that gives no binding, by name and OID (the OID alone when it is not one of these).</summary>
    private static string Describe(string oid) => oid switch
    {
        "1.3.101.112" => $"Ed25519, {oid}",
        "1.3.101.113" => $"Ed448, {oid}",
        "1.2.840.113549.1.1.14" => $"RSA with SHA-224, {oid}",
        "1.2.840.10045.4.3.1" => $"ECDSA with SHA-224, {oid}",
        "2.16.840.1.101.3.4.3.1" => $"DSA with SHA-224, {oid}",
        _ when oid.StartsWith(Sha3Signatures, StringComparison.Ordinal) && int.TryParse(oid.AsSpan(Sha3Signatures.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var arc) && arc is >= 9 and <= 16
            => $"a SHA-3 signature, {oid}",
        RsaPss => $"RSASSA-PSS with a hash other than SHA-1 or SHA-2, {oid}",
        _ => oid,
    };

    /// <summary>The certificate's signatureAlgorithm (the outer one, RFC 5280 section 4.1.1.2) and the hash to bind with.</summary>
    private static (string Algorithm, HashAlgorithmName? Hash) SignatureHash(byte[] certificate)
    {
        var outer = new AsnReader(certificate, AsnEncodingRules.DER).ReadSequence();
        outer.ReadEncodedValue(); // tbsCertificate
        var identifier = outer.ReadSequence();
        var algorithm = identifier.ReadObjectIdentifier();
        var hash = algorithm switch
        {
            "1.2.840.113549.1.1.4" or "1.2.840.113549.1.1.5" or "1.2.840.10045.4.1" or "1.2.840.10040.4.3" => HashAlgorithmName.SHA256, // MD5, SHA-1
            "1.2.840.113549.1.1.11" or "1.2.840.10045.4.3.2" or "2.16.840.1.101.3.4.3.2" => HashAlgorithmName.SHA256,
            "1.2.840.113549.1.1.12" or "1.2.840.10045.4.3.3" => HashAlgorithmName.SHA384,
            "1.2.840.113549.1.1.13" or "1.2.840.10045.4.3.4" => HashAlgorithmName.SHA512,
            RsaPss => PssHash(identifier),
            _ => (HashAlgorithmName?)null,
        };
        return (algorithm, hash);
    }

    /// <summary>RSASSA-PSS names its hash in its parameters (RFC 4055, section 3.1): <c>[0] hashAlgorithm</c>, SHA-1 when absent.</summary>
    private static HashAlgorithmName? PssHash(AsnReader identifier)
    {
        if (!identifier.HasData)
            return HashAlgorithmName.SHA256;
        var parameters = identifier.ReadSequence();
        var context0 = new Asn1Tag(TagClass.ContextSpecific, 0, isConstructed: true);
        if (!parameters.HasData || !parameters.PeekTag().HasSameClassAndValue(context0))
            return HashAlgorithmName.SHA256; // the default, SHA-1, binds with SHA-256
        var hash = parameters.ReadSequence(context0).ReadSequence().ReadObjectIdentifier();
        return hash switch
        {
            Sha1 or Sha256 => HashAlgorithmName.SHA256,
            Sha384 => HashAlgorithmName.SHA384,
            Sha512 => HashAlgorithmName.SHA512,
            _ => null,
        };
    }
}
