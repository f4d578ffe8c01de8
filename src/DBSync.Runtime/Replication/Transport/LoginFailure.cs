using DBSync.Protocol.Wire;
using Npgsql;

namespace DBSync.Replication.Transport;

/// <summary>
/// A login the server refused (SQLSTATE class 28: a wrong password, a role that may not log in, no pg_hba.conf line), as
/// the <see cref="DBSyncConfigurationException"/> DBSync raises for other setup problems: which role, which server and
/// database, what to check. The same for the setup connection and both replication connections; never the password
/// (the server's message carries none, and nothing of the connection string but its host, port, role and database is
/// quoted).
/// </summary>
internal static class LoginFailure
{
    private const string InvalidPassword = "28P01";
    private const string InvalidAuthorization = "28000";

    public static bool Is(PostgresException exception) => exception.SqlState.StartsWith("28", StringComparison.Ordinal);

    public static DBSyncConfigurationException Create(PostgresException exception, string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var user = DirectSettings.UserOf(builder);
        var server = DirectSettings.EndpointOf(builder.Host ?? "localhost", builder.Port);
        var database = builder.Database ?? user;
        var check = exception.SqlState switch
        {
            InvalidPassword =>
                $"Check the password of role \"{user}\": the connection string's Password (without one, PGPASSWORD or the password file). " +
                $"A superuser can set a new one with ALTER ROLE \"{user}\" PASSWORD '...';",
            InvalidAuthorization =>
                $"Check that role \"{user}\" exists and may log in (ALTER ROLE \"{user}\" LOGIN;), and that the server's pg_hba.conf has a line " +
                "that admits this role to this database from this host (and over TLS, when the line is hostssl).",
            _ => $"Check the credentials of role \"{user}\" in the connection string and the server's pg_hba.conf.",
        };
        return new DBSyncConfigurationException(
            $"The server at {server} refused the login of role \"{user}\" to database \"{database}\": {ServerText.Escape(exception.MessageText)} (SQLSTATE {ServerText.Escape(exception.SqlState)}). {check}",
            exception);
    }
}
