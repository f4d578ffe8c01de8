using System.Net.Sockets;
using Npgsql;

namespace DBSync.Cli.Database;

/// <summary>
/// The server a command talks to: the connection string from <c>--connection</c> or <c>DBSYNC_CONNECTION</c>, checked
/// before use. Every message that leaves the CLI passes through <see cref="Redact"/>, so the password never shows.
/// </summary>
internal sealed class ServerConnection
{
    public const string EnvironmentVariable = "DBSYNC_CONNECTION";

    private readonly string? _password;

    private ServerConnection(NpgsqlConnectionStringBuilder builder, string? password)
    {
        _password = password;
        Host = builder.Host!;
        Port = builder.Port;
        Database = builder.Database ?? builder.Username ?? "(default)";
        Username = builder.Username ?? Environment.UserName;
        ConnectionString = builder.ConnectionString;
    }

    /// <summary>The connection string to use: the user's, with an application name (shown as the slot's holder) and
    /// no pooling (a command opens a few connections and exits).</summary>
    public string ConnectionString { get; }

    public string Host { get; }

    public int Port { get; }

    public string Database { get; }

    public string Username { get; }

    /// <summary>Where the CLI connects, for messages: never the password.</summary>
    public string Description => $"{Host}:{Port} (database {Database}, user {Username})";

    /// <summary>Takes <paramref name="option"/>, else the environment variable; a missing or malformed connection string
    /// is a usage error that says what to pass.</summary>
    public static ServerConnection Resolve(string? option, Func<string, string?> environment)
    {
        var raw = string.IsNullOrWhiteSpace(option) ? environment(EnvironmentVariable) : option;
        if (string.IsNullOrWhiteSpace(raw))
        {
            throw new CliException(ExitCodes.Usage,
                $"No connection string: pass --connection \"Host=...;Username=...;Database=...\" or set {EnvironmentVariable}.");
        }
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(raw);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            throw new CliException(ExitCodes.Usage,
                $"The connection string is not valid ({Secrets.Redact(CliException.Plain(e), Secrets.PasswordsIn(raw))}). Use Npgsql's keywords, for example \"Host=db;Port=5432;Username=cdc;Password=...;Database=app\".");
        }
        if (string.IsNullOrWhiteSpace(builder.Host))
            throw new CliException(ExitCodes.Usage, "The connection string names no Host. Add Host=<server> (a name, an address or a Unix socket directory).");
        var password = builder.Password;
        if (string.IsNullOrEmpty(builder.ApplicationName))
            builder.ApplicationName = "dbsync-cli";
        builder.Pooling = false;
        return new ServerConnection(builder, password);
    }

    /// <summary>Opens a connection; a failure to reach the server or to log in is a <see cref="ExitCodes.Connection"/> error.</summary>
    public async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        var connection = new NpgsqlConnection(ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch (Exception e) when (e is NpgsqlException or SocketException or TimeoutException or InvalidOperationException or ArgumentException)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw new CliException(ExitCodes.Connection, Redact($"Cannot connect to {Description}: {Describe(e)}"), e);
        }
    }

    /// <summary>Connects once: before a command hands the connection string to the runtime (which opens its own
    /// connections), so that a server out of reach is reported as such.</summary>
    public async Task EnsureReachableAsync(CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Removes the password from <paramref name="text"/>.</summary>
    public string Redact(string text) => Secrets.Redact(text, _password is null ? [] : [_password]);

    /// <summary>An exception's message with its causes (Npgsql puts the socket error in the inner exception).</summary>
    public static string Describe(Exception e)
    {
        var message = e is PostgresException postgres ? $"{postgres.MessageText} (SQLSTATE {postgres.SqlState})" : e.Message;
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (!message.Contains(inner.Message, StringComparison.Ordinal))
                message += $": {inner.Message}";
        }
        return message;
    }
}

/// <summary>Keeps passwords out of what the CLI prints.</summary>
internal static class Secrets
{
    /// <summary>The values of <c>Password=</c> (and its alias <c>PWD=</c>) in a connection string that may not parse.</summary>
    public static string[] PasswordsIn(string connectionString)
        => connectionString.Split(';')
            .Select(part => part.Split('=', 2))
            .Where(pair => pair.Length == 2 && pair[0].Trim().ToUpperInvariant() is "PASSWORD" or "PWD" && pair[1].Trim().Length > 0)
            .Select(pair => pair[1].Trim())
            .ToArray();

    public static string Redact(string text, IEnumerable<string> secrets)
    {
        foreach (var secret in secrets.Where(s => s.Length > 0))
            text = text.Replace(secret, "***", StringComparison.Ordinal);
        return text;
    }
}
