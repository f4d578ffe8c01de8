using System.Security.Cryptography;
using System.Text;
using DBSync.Protocol.Wire;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>
/// The client's side of PostgreSQL authentication as a strict state machine, without I/O: each Authentication message
/// of the server goes into <see cref="Handle"/>, and the answer to send (if any) comes out. As in libpq and Npgsql, a
/// server only gets what its method's order allows: once SASL starts, SASLContinue, then SASLFinal with a verified
/// signature, then AuthenticationOk; no request for a weaker method in between (the password is never sent in cleartext
/// or MD5 after SCRAM began), no AuthenticationOk before the server proved it knows the password, and with
/// <c>Channel Binding=Require</c> nothing but SCRAM-SHA-256-PLUS bound to the TLS channel.
/// </summary>
internal sealed class ClientAuthentication
{
    private readonly string _user;
    private readonly string? _password;
    private readonly ChannelBinding _binding;
    private readonly string _server;
    private readonly TlsChannel? _tls;
    private State _state;
    private ScramSha256Client? _scram;

    /// <param name="user">The role named in the startup message.</param>
    /// <param name="password">The password, or null when the connection string has none.</param>
    /// <param name="binding">The connection string's Channel Binding.</param>
    /// <param name="server">The server, for error messages ("host:port").</param>
    /// <param name="tls">The TLS channel, or null when the connection is not encrypted.</param>
    public ClientAuthentication(string user, string? password, ChannelBinding binding, string server, TlsChannel? tls)
    {
        _user = user;
        _password = password;
        _binding = binding;
        _server = server;
        _tls = tls;
    }

    private enum State
    {
        /// <summary>Nothing yet: the server chooses the method.</summary>
        Start,

        /// <summary>A cleartext or MD5 password was sent; only Ok may follow.</summary>
        PasswordSent,

        /// <summary>SASLInitialResponse sent; SASLContinue (the server-first-message) expected.</summary>
        SaslStarted,

        /// <summary>The client's proof sent; SASLFinal (the server's signature) expected.</summary>
        SaslProofSent,

        /// <summary>The server's signature verified; Ok expected.</summary>
        SaslVerified,

        /// <summary>AuthenticationOk received.</summary>
        Complete,
    }

    /// <summary>Whether the server accepted the login (AuthenticationOk) in a way these rules allow.</summary>
    public bool IsComplete => _state == State.Complete;

    /// <summary>How the client authenticated: <c>trust</c>, <c>password</c>, <c>md5</c>, <c>SCRAM-SHA-256</c> or
    /// <c>SCRAM-SHA-256-PLUS</c>; null until it did.</summary>
    public string? Method { get; private set; }

    /// <summary>Why the login is not bound to the TLS channel although the server offered binding (Channel Binding=Prefer
    /// and a certificate that defines no <see cref="TlsServerEndPoint"/> hash), or null: the caller warns with it.</summary>
    public string? UnboundReason { get; private set; }

    /// <summary>The answer to one Authentication ('R') message body, or null when none is due.</summary>
    /// <exception cref="ProtocolException">The server broke the order of its method, or sent a malformed message.</exception>
    /// <exception cref="DBSyncConfigurationException">Channel Binding=Require cannot be met, or a password is needed
    /// and the connection string has none (the message says what to change).</exception>
    /// <exception cref="DirectTransportUnsupportedException">The server asks for a method only Npgsql implements.</exception>
    public byte[]? Handle(ReadOnlySpan<byte> body)
    {
        var request = BackendMessages.ReadAuthentication(body);
        if (!Enum.IsDefined(request))
        {
            // As libpq: a code no PostgreSQL method has is an unsupported method, whatever the state.
            throw new ProtocolException(
                $"The server at {_server} asks for authentication method {(int)request}, which is not supported: PostgreSQL's methods are trust, password, md5, " +
                $"scram-sha-256, gss and sspi. Check the pg_hba.conf line that applies to role \"{_user}\", and that the server is PostgreSQL.");
        }
        switch (_state, request)
        {
            case (State.Start, AuthenticationRequest.Ok):
                RequireNoBindingDemand("let the role in without a password (trust)");
                return Complete("trust");
            case (State.Start, AuthenticationRequest.CleartextPassword):
                RequireNoBindingDemand("asks for the password in cleartext");
                _state = State.PasswordSent;
                Method = "password";
                return FrontendMessages.Password(RequirePassword("password"));
            case (State.Start, AuthenticationRequest.Md5Password):
            {
                RequireNoBindingDemand("asks for an MD5 password");
                var salt = BackendMessages.ReadMd5Salt(body);
                // md5(md5(password || user) as hex || salt), as hex, after "md5".
                var inner = Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(RequirePassword("md5") + _user)));
                var outer = MD5.HashData([.. Encoding.ASCII.GetBytes(inner), .. salt]);
                _state = State.PasswordSent;
                Method = "md5";
                return FrontendMessages.Password("md5" + Convert.ToHexStringLower(outer));
            }
            case (State.Start, AuthenticationRequest.Sasl):
            {
                _scram = StartScram(BackendMessages.ReadSaslMechanisms(body));
                _state = State.SaslStarted;
                return FrontendMessages.SaslInitialResponse(_scram.MechanismName, _scram.ClientFirst());
            }
            case (State.Start, AuthenticationRequest.KerberosV5 or AuthenticationRequest.Gss or AuthenticationRequest.Sspi):
                RequireNoBindingDemand($"asks for {request} authentication");
                throw new DirectTransportUnsupportedException($"the server asks for {request} authentication");
            case (State.SaslStarted, AuthenticationRequest.SaslContinue):
                _state = State.SaslProofSent;
                return FrontendMessages.SaslResponse(_scram!.ClientFinal(body[4..], _password!));
            case (State.SaslProofSent, AuthenticationRequest.SaslFinal):
                _scram!.VerifyServerFinal(body[4..]);
                _state = State.SaslVerified;
                return null;
            case (State.SaslVerified, AuthenticationRequest.Ok):
            case (State.PasswordSent, AuthenticationRequest.Ok):
                return Complete(Method ?? _scram!.MechanismName);
            case (State.SaslStarted or State.SaslProofSent, AuthenticationRequest.Ok):
                throw new ProtocolException(
                    $"The server at {_server} sent AuthenticationOk before the {_scram!.MechanismName} exchange was complete: it never proved that it " +
                    $"knows the password of role \"{_user}\". A server that skips this proof may be an impostor in the middle of the connection, " +
                    "so the connection is refused.");
            case (State.SaslStarted or State.SaslProofSent or State.SaslVerified, AuthenticationRequest.CleartextPassword or AuthenticationRequest.Md5Password):
                throw new ProtocolException(
                    $"The server at {_server} asked for {(request == AuthenticationRequest.Md5Password ? "an MD5 password" : "the password in cleartext")} after " +
                    $"{_scram!.MechanismName} authentication had begun. Switching to a weaker method in the middle of SCRAM is what an impostor in the " +
                    $"middle of the connection does to obtain the password of role \"{_user}\"; it is not sent, and the connection is refused.");
            case (State.Complete, _):
                throw new ProtocolException($"The server at {_server} sent an Authentication message ({Describe(request)}) after authentication had completed.");
            default:
                throw new ProtocolException(
                    $"The server at {_server} sent an Authentication message ({Describe(request)}) out of order, {Expected()}. " +
                    "A server that does not follow its authentication method's order is not trusted, and the connection is refused.");
        }
    }

    /// <summary>Checks that a message other than an Authentication request may come now: only after AuthenticationOk.</summary>
    /// <exception cref="ProtocolException">It came before: a server that skips authentication is not trusted.</exception>
    public void RequireComplete(string message)
    {
        if (_state != State.Complete)
        {
            throw new ProtocolException(
                $"The server at {_server} sent {message} {Expected()}. A server that skips authentication is not trusted, and the connection is refused.");
        }
    }

    private byte[]? Complete(string method)
    {
        _state = State.Complete;
        Method = method;
        return null;
    }

    private string Expected() => _state switch
    {
        State.Start => "before any authentication request",
        State.PasswordSent => "where only AuthenticationOk may follow the password",
        State.SaslStarted => "where SASLContinue (the server's first SCRAM message) was expected",
        State.SaslProofSent => "where SASLFinal (the server's SCRAM signature) was expected",
        State.SaslVerified => "where AuthenticationOk was expected after the SCRAM exchange",
        _ => "after authentication",
    };

    private static string Describe(AuthenticationRequest request) => request.ToString();

    /// <summary>Chooses the mechanism and channel binding: -PLUS over TLS when offered, unless Channel Binding=Disable.</summary>
    private ScramSha256Client StartScram(List<string> mechanisms)
    {
        var plusOffered = mechanisms.Contains(ScramSha256Client.PlusMechanism);
        var plainOffered = mechanisms.Contains(ScramSha256Client.Mechanism);
        if (_binding != ChannelBinding.Disable && plusOffered && _tls is { EndPointHash: { } hash })
        {
            RequirePassword(ScramSha256Client.PlusMechanism);
            return new ScramSha256Client(binding: ScramBinding.Bound, bindingData: hash);
        }
        if (_binding == ChannelBinding.Require)
        {
            var reason = _tls is null ? "the connection is not encrypted (channel binding needs TLS: SSL Mode Prefer or stricter over TCP)"
                : !plusOffered ? $"the server offers only {ServerText.QuoteAll(mechanisms)}, without {ScramSha256Client.PlusMechanism}; a man in the middle may have removed it from the offer"
                : $"{_tls.HashProblem}";
            throw BindingRequired(reason);
        }
        if (!plainOffered)
        {
            if (plusOffered)
                throw new DBSyncConfigurationException($"The server at {_server} offers only {ScramSha256Client.PlusMechanism}, which DBSync cannot use here: " +
                    $"{(_tls is null ? "the connection is not encrypted" : _binding == ChannelBinding.Disable ? "the connection string says Channel Binding=Disable" : _tls.HashProblem)}.");
            throw new DirectTransportUnsupportedException($"the server offers only the SASL mechanisms {ServerText.QuoteAll(mechanisms)}");
        }
        RequirePassword(ScramSha256Client.Mechanism);
        if (_tls is { HashProblem: { } problem } && plusOffered && _binding == ChannelBinding.Prefer)
        {
            // As Npgsql (libpq refuses the connection): plain SCRAM, which the caller logs as a warning.
            UnboundReason = $"the server at {_server} offers {ScramSha256Client.PlusMechanism}, but {problem}, so the login of role \"{_user}\" uses " +
                            $"{ScramSha256Client.Mechanism} without channel binding: it is not bound to the TLS channel, and Channel Binding=Require would refuse this server";
        }
        // "y" over TLS tells a server that supports binding that it was not offered: it refuses, unmasking a stripped offer.
        var flag = _tls is not null && _binding != ChannelBinding.Disable && !plusOffered ? ScramBinding.ClientSupportsBinding : ScramBinding.None;
        return new ScramSha256Client(binding: flag);
    }

    private void RequireNoBindingDemand(string what)
    {
        if (_binding == ChannelBinding.Require)
            throw BindingRequired($"the server {what}");
    }

    private DBSyncConfigurationException BindingRequired(string reason)
        => new($"The connection string says Channel Binding=Require, but the login of role \"{_user}\" at {_server} cannot be bound to the TLS channel: {reason}. " +
               "Nothing was sent that reveals the password. Have the server authenticate with scram-sha-256 over TLS (a hostssl line in pg_hba.conf), " +
               "or set Channel Binding=Prefer to accept servers that cannot bind.");

    private string RequirePassword(string method)
        => _password ?? throw new DirectTransportUnsupportedException(
            $"the server asks for a password ({method}) and neither the connection string nor PGPASSWORD has one (Npgsql may find one in a password file)");
}

/// <summary>What the TLS channel offers for binding: the server certificate's <see cref="TlsServerEndPoint"/> hash, or
/// why there is none.</summary>
internal sealed record TlsChannel(byte[]? EndPointHash, string? HashProblem)
{
    /// <summary>The binding of a connection whose server presented <paramref name="certificate"/> (DER).</summary>
    public static TlsChannel For(byte[]? certificate)
        => certificate is null
            ? new TlsChannel(null, "the server presented no certificate")
            : new TlsChannel(TlsServerEndPoint.Compute(certificate, out var problem), problem);
}
