using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DBSync.Protocol.Wire;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>
/// The direct transport's TLS: the SSLRequest, the server's answer, the handshake and the check of the server's
/// certificate as the connection string's SSL Mode asks.
/// </summary>
internal static class TlsNegotiation
{
    /// <summary>TLS per the connection string's SSL Mode: Disable sends none; Prefer uses it when the server offers it;
    /// Require insists on it without checking the certificate (as Npgsql); VerifyCA and VerifyFull check the chain, and
    /// VerifyFull the host name too.</summary>
    public static Stream Negotiate(Socket socket, DirectSettings settings)
    {
        Stream stream = new NetworkStream(socket, ownsSocket: false);
        if (settings.SslMode == SslMode.Disable || settings.IsUnixSocket)
            return stream;

        stream.Write(FrontendMessages.SslRequest());
        var answer = stream.ReadByte();
        if (answer == 'N')
        {
            if (settings.SslMode == SslMode.Prefer)
                return stream;
            throw new DBSyncConfigurationException(
                $"The server at {settings.Host}:{settings.Port} does not accept TLS connections, and the connection string says SSL Mode={settings.SslMode}. " +
                "Enable ssl on the server, or lower SSL Mode to Prefer or Disable.");
        }
        if (answer != 'S')
            throw new ProtocolException($"The server at {settings.Endpoint} answered the TLS request with {(answer < 0 ? "nothing" : BackendMessageBuffer.Describe((byte)answer))} instead of 'S' or 'N'.");

        var check = new CertificateCheck(settings);
        var tls = new SslStream(stream, leaveInnerStreamOpen: false);
        try
        {
            tls.AuthenticateAsClient(check.Options());
            return tls;
        }
        catch (AuthenticationException e) when (check.Problem is { } problem)
        {
            tls.Dispose();
            throw new DBSyncConfigurationException(
                $"The certificate of the server at {settings.Endpoint} does not pass SSL Mode={settings.SslMode}: {problem}. " +
                $"Check that {(settings.RootCertificate is { } root ? $"the Root Certificate file {root}" : "the system's certificate store")} holds the CA that signed it" +
                (settings.SslMode == SslMode.VerifyFull ? $" and that the certificate names the Host {settings.Host}" : "") +
                "; SSL Mode=Require encrypts without checking the certificate.", e);
        }
        catch
        {
            tls.Dispose();
            throw;
        }
    }

    /// <summary>The server certificate's check for one handshake, and what it found wrong.</summary>
    private sealed class CertificateCheck(DirectSettings settings)
    {
        /// <summary>Why the certificate was refused, once it was.</summary>
        public string? Problem { get; private set; }

        public SslClientAuthenticationOptions Options()
        {
            var options = new SslClientAuthenticationOptions
            {
                TargetHost = settings.Host,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            };
            if (settings.SslMode is SslMode.Prefer or SslMode.Require)
            {
                options.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
                return options;
            }
            if (settings.RootCertificate is { } path)
            {
                // The chain is built by SslStream with this policy, from the certificates the server sent: its leaf and
                // any intermediate CAs, up to one of these roots.
                var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
                policy.CustomTrustStore.AddRange(ReadRoots(path));
                options.CertificateChainPolicy = policy;
            }
            options.RemoteCertificateValidationCallback = Validate;
            return options;
        }

        private bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (settings.SslMode == SslMode.VerifyCA)
                errors &= ~SslPolicyErrors.RemoteCertificateNameMismatch;
            if (errors == SslPolicyErrors.None)
                return true;
            var problems = new List<string>();
            if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
                problems.Add("the server sent no certificate");
            if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
                problems.Add($"the certificate ({ServerText.Escape(certificate?.Subject ?? "")}) does not carry the name {settings.Host}");
            if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
            {
                var statuses = chain?.ChainStatus.Select(s => $"{s.Status} ({s.StatusInformation.Trim()})").Distinct().ToList() ?? [];
                problems.Add($"its chain does not lead to a trusted CA: {(statuses.Count == 0 ? "unknown reason" : string.Join("; ", statuses))}");
            }
            Problem = string.Join(", and ", problems);
            return false;
        }

        private static X509Certificate2Collection ReadRoots(string path)
        {
            try
            {
                var roots = new X509Certificate2Collection();
                roots.ImportFromPemFile(path);
                if (roots.Count == 0)
                    throw new CryptographicException("it holds no PEM certificate");
                return roots;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                throw new DBSyncConfigurationException(
                    $"The root certificate file {path} (the connection string's Root Certificate, PGSSLROOTCERT or ~/.postgresql/root.crt) cannot be read: {e.Message} " +
                    "Point Root Certificate at the PEM file of the CA that signed the server's certificate.", e);
            }
        }
    }
}
