using DBSync.Protocol.Wire;

namespace DBSync.Replication.Transport;

/// <summary>How a login went: the walsender's process id and the authentication used.</summary>
/// <param name="BackendPid">The walsender's process id.</param>
/// <param name="Method">The authentication method (<see cref="ClientAuthentication.Method"/>).</param>
/// <param name="UnboundReason">Why the login is not bound to the TLS channel although the server offered binding, or null.</param>
internal readonly record struct LoginResult(int BackendPid, string Method, string? UnboundReason);

/// <summary>
/// The startup of a replication connection: the startup message, then the server's messages until it is ready for a
/// command, the authentication requests among them answered by <see cref="ClientAuthentication"/> in its strict order.
/// </summary>
internal static class ServerLogin
{
    public static LoginResult Run(WireConnection wire, DirectSettings settings, TlsChannel? channel)
    {
        var parameters = new List<KeyValuePair<string, string>>
        {
            new("user", settings.Username),
            new("database", settings.Database),
            new("replication", "database"),
            new("application_name", settings.ApplicationName),
            new("client_encoding", "UTF8"),
        };
        if (!string.IsNullOrWhiteSpace(settings.Options))
            parameters.Add(new("options", settings.Options));
        wire.Write(FrontendMessages.Startup(parameters));

        var authentication = new ClientAuthentication(settings.Username, settings.Password, settings.ChannelBinding, wire.Endpoint, channel);
        var backendPid = 0;
        while (true)
        {
            var (kind, offset, length) = wire.NextHandshakeMessage();
            var body = wire.Buffer.AsSpan(offset, length);
            switch (kind)
            {
                case BackendMessageKind.Authentication:
                    if (authentication.Handle(body) is { } answer)
                        wire.Write(answer);
                    break;
                case BackendMessageKind.ErrorResponse:
                    throw BackendMessages.ReadError(body);
                case BackendMessageKind.NegotiateProtocolVersion:
                    break;
                case BackendMessageKind.BackendKeyData:
                    authentication.RequireComplete("BackendKeyData");
                    backendPid = BackendMessages.ReadBackendPid(body);
                    break;
                case BackendMessageKind.ParameterStatus or BackendMessageKind.NoticeResponse:
                    authentication.RequireComplete(kind == BackendMessageKind.ParameterStatus ? "ParameterStatus" : "NoticeResponse");
                    break;
                case BackendMessageKind.ReadyForQuery:
                    authentication.RequireComplete("ReadyForQuery");
                    return new LoginResult(backendPid, authentication.Method!, authentication.UnboundReason);
                default:
                    throw new ProtocolException($"Unexpected message {BackendMessageBuffer.Describe(kind)} while connecting the replication stream to {wire.Endpoint}.");
            }
        }
    }
}
