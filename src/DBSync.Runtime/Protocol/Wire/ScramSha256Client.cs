using System.Security.Cryptography;
using System.Text;

namespace DBSync.Protocol.Wire;

/// <summary>
/// The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802 with RFC 7677's hash; channel binding per RFC 5929)
/// as PostgreSQL's SASL authentication uses it: <see cref="ClientFirst"/>, then <see cref="ClientFinal"/> on the server's
/// first message, then <see cref="VerifyServerFinal"/>, which proves that the server knows the password too. Pure: no I/O.
/// </summary>
internal sealed class ScramSha256Client
{
    /// <summary>The most PBKDF2 iterations a server may ask for (about a second or two of one core).</summary>
    public const int MaxIterations = 10_000_000;

    public const string Mechanism = "SCRAM-SHA-256";

    public const string PlusMechanism = "SCRAM-SHA-256-PLUS";

    private readonly string _gs2Header;
    private readonly byte[] _channelBinding;
    private readonly string _clientFirstBare;
    private readonly string _clientNonce;
    private byte[]? _expectedServerSignature;

    /// <param name="user">The SASL user name; PostgreSQL ignores it (the startup message names the role), so it sends none.</param>
    /// <param name="clientNonce">The client nonce; random unless a test fixes it.</param>
    /// <param name="binding">How the exchange binds to the TLS channel (RFC 5802, section 7's gs2-cbind-flag).</param>
    /// <param name="bindingData">With <see cref="ScramBinding.Bound"/>: the <see cref="TlsServerEndPoint"/> hash.</param>
    public ScramSha256Client(string user = "", string? clientNonce = null, ScramBinding binding = ScramBinding.None, byte[]? bindingData = null)
    {
        if ((binding == ScramBinding.Bound) != (bindingData is not null))
            throw new ArgumentException("Binding data goes with a bound exchange, and only with one.", nameof(bindingData));
        _gs2Header = binding switch
        {
            ScramBinding.Bound => $"p={TlsServerEndPoint.Name},,",
            ScramBinding.ClientSupportsBinding => "y,,",
            _ => "n,,",
        };
        _channelBinding = bindingData ?? [];
        _clientNonce = clientNonce ?? Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));
        _clientFirstBare = $"n={user.Replace("=", "=3D", StringComparison.Ordinal).Replace(",", "=2C", StringComparison.Ordinal)},r={_clientNonce}";
    }

    /// <summary>The mechanism this exchange is: <see cref="PlusMechanism"/> when bound to the channel.</summary>
    public string MechanismName => _channelBinding.Length > 0 ? PlusMechanism : Mechanism;

    /// <summary>The client-first-message.</summary>
    public byte[] ClientFirst() => Encoding.UTF8.GetBytes(_gs2Header + _clientFirstBare);

    /// <summary>The client-final-message for the server-first-message, with the proof of the password.</summary>
    public byte[] ClientFinal(ReadOnlySpan<byte> serverFirstMessage, string password)
    {
        var serverFirst = Encoding.UTF8.GetString(serverFirstMessage);
        if (serverFirst.StartsWith("m=", StringComparison.Ordinal))
            throw new ProtocolException("The server's SCRAM-SHA-256 first message demands an extension (m=) that no PostgreSQL uses; the exchange is not trusted.");
        string? nonce = null, salt = null, iterations = null;
        foreach (var attribute in serverFirst.Split(','))
        {
            if (attribute.StartsWith("r=", StringComparison.Ordinal))
                nonce = attribute[2..];
            else if (attribute.StartsWith("s=", StringComparison.Ordinal))
                salt = attribute[2..];
            else if (attribute.StartsWith("i=", StringComparison.Ordinal))
                iterations = attribute[2..];
        }
        if (nonce is null || salt is null || iterations is null)
            throw new ProtocolException($"The server's SCRAM-SHA-256 first message lacks a nonce, salt or iteration count: {ServerText.Quote(serverFirst)}.");
        if (!nonce.StartsWith(_clientNonce, StringComparison.Ordinal) || nonce.Length == _clientNonce.Length)
            throw new ProtocolException("The server's SCRAM-SHA-256 nonce does not extend the client's: the exchange is not trusted.");
        if (!int.TryParse(iterations, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count) || count < 1)
            throw new ProtocolException($"The server's SCRAM-SHA-256 iteration count {ServerText.Quote(iterations)} is not a positive number.");
        // The key derivation runs on the reader thread and cannot be interrupted: a hostile server could ask for minutes of
        // it. PostgreSQL's default is 4096 (scram_iterations); far more is no longer a password hash but an attack.
        if (count > MaxIterations)
        {
            throw new ProtocolException(
                $"The server asks for {count} SCRAM-SHA-256 iterations; DBSync computes at most {MaxIterations} (PostgreSQL's default is 4096). " +
                "A server that asks for more would hold the client for minutes: lower scram_iterations on the server and set the role's password again.");
        }

        byte[] saltBytes;
        try
        {
            saltBytes = Convert.FromBase64String(salt);
        }
        catch (FormatException e)
        {
            throw new ProtocolException($"The server's SCRAM-SHA-256 salt is not base64: {e.Message}");
        }

        var saltedPassword = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(Normalize(password)), saltBytes, count, HashAlgorithmName.SHA256, 32);
        var clientKey = HMACSHA256.HashData(saltedPassword, "Client Key"u8);
        var storedKey = SHA256.HashData(clientKey);
        // c= carries the GS2 header again, and with -PLUS the channel's binding: the server compares both with its own.
        var clientFinalWithoutProof = $"c={Convert.ToBase64String([.. Encoding.ASCII.GetBytes(_gs2Header), .. _channelBinding])},r={nonce}";
        var authMessage = Encoding.UTF8.GetBytes($"{_clientFirstBare},{serverFirst},{clientFinalWithoutProof}");
        var clientSignature = HMACSHA256.HashData(storedKey, authMessage);
        var proof = new byte[clientKey.Length];
        for (var i = 0; i < proof.Length; i++)
            proof[i] = (byte)(clientKey[i] ^ clientSignature[i]);

        var serverKey = HMACSHA256.HashData(saltedPassword, "Server Key"u8);
        _expectedServerSignature = HMACSHA256.HashData(serverKey, authMessage);
        return Encoding.UTF8.GetBytes($"{clientFinalWithoutProof},p={Convert.ToBase64String(proof)}");
    }

    /// <summary>Checks the server-final-message: the server must prove it holds the password's keys.</summary>
    public void VerifyServerFinal(ReadOnlySpan<byte> serverFinalMessage)
    {
        var serverFinal = Encoding.UTF8.GetString(serverFinalMessage);
        if (serverFinal.StartsWith("e=", StringComparison.Ordinal))
            throw new ProtocolException($"The server rejected the SCRAM-SHA-256 exchange: {ServerText.Quote(serverFinal[2..])}.");
        var expected = _expectedServerSignature ?? throw new InvalidOperationException("ClientFinal must come before VerifyServerFinal.");
        var signature = serverFinal.Split(',').FirstOrDefault(a => a.StartsWith("v=", StringComparison.Ordinal))?[2..];
        byte[] actual;
        try
        {
            actual = signature is null ? [] : Convert.FromBase64String(signature);
        }
        catch (FormatException)
        {
            actual = [];
        }
        if (!CryptographicOperations.FixedTimeEquals(actual, expected))
            throw new ProtocolException("The server's SCRAM-SHA-256 signature is wrong: it does not know the password, so the connection is not trusted.");
    }

    /// <summary>
    /// SASLprep's effect on the passwords people use: compatibility normalization (NFKC) and non-ASCII spaces as spaces.
    /// A password that is not valid Unicode is used as it is, as PostgreSQL itself does.
    /// </summary>
    private static string Normalize(string password)
    {
        if (password.All(char.IsAscii))
            return password;
        try
        {
            var mapped = new StringBuilder(password.Length);
            foreach (var c in password)
                mapped.Append(c != ' ' && char.IsWhiteSpace(c) && c > 0x7F ? ' ' : c);
            return mapped.ToString().Normalize(NormalizationForm.FormKC);
        }
        catch (ArgumentException)
        {
            return password;
        }
    }
}

/// <summary>The GS2 channel binding flag of a SCRAM exchange.</summary>
internal enum ScramBinding
{
    /// <summary>"n": the client does not bind (no TLS, or Channel Binding=Disable, or no hash for the certificate).</summary>
    None,

    /// <summary>"y": the client could bind but the server did not offer -PLUS; a server that supports it refuses this,
    /// which unmasks a man in the middle who removed -PLUS from the offer.</summary>
    ClientSupportsBinding,

    /// <summary>"p=tls-server-end-point": SCRAM-SHA-256-PLUS, bound to the server's certificate.</summary>
    Bound,
}

