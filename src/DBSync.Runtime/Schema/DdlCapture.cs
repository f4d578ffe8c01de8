using DBSync.Internal;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Schema;

/// <summary>Installs, checks and removes the DDL capture trigger (<see cref="DdlCaptureSql"/>) on a database: for
/// <see cref="DBSyncOptions.CaptureSchemaChanges"/> at start, and for the CLI's <c>dbsync ddl</c> commands.</summary>
internal static class DdlCapture
{
    private const string InsufficientPrivilege = "42501";

    /// <summary>The installed trigger's version, or null when it is not installed (or only partly: an event trigger
    /// missing counts as not installed).</summary>
    public static async Task<int?> InstalledVersionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(DdlCaptureSql.InstalledVersionQuery, connection);
        var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return value is null or DBNull ? null : Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Installs the trigger (again).</summary>
    public static Task InstallAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
        => RunLockedAsync(connection, DdlCaptureSql.Install, cancellationToken);

    /// <summary>Removes the trigger, its functions and its table.</summary>
    public static Task UninstallAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
        => RunLockedAsync(connection, DdlCaptureSql.Uninstall, cancellationToken);

    /// <summary>Runs <paramref name="sql"/> in one transaction, serialized with other installers by an advisory lock.</summary>
    private static async Task RunLockedAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('dbsync.ddl_capture'))", connection, transaction))
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await using (var command = new NpgsqlCommand(sql, connection, transaction))
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>At start with <see cref="DBSyncOptions.CaptureSchemaChanges"/>: the trigger of this version is there, or
    /// is installed now; a role that may not install it gets an error with what a DBA runs.</summary>
    /// <exception cref="DBSyncConfigurationException">The trigger is missing or older and the role may not install it, or
    /// a newer DBSync installed a newer one.</exception>
    public static async Task EnsureInstalledAsync(NpgsqlConnection connection, string database, string user, ILogger logger, CancellationToken cancellationToken)
    {
        var installed = await InstalledVersionAsync(connection, cancellationToken).ConfigureAwait(false);
        if (installed == DdlCaptureSql.Version)
            return;
        if (installed > DdlCaptureSql.Version)
        {
            throw new DBSyncConfigurationException(
                $"Database \"{database}\" has version {installed} of the DDL capture trigger, installed by a newer DBSync; this one reads version {DdlCaptureSql.Version}. " +
                "Upgrade this DBSync, or turn DBSyncOptions.CaptureSchemaChanges off.");
        }
        try
        {
            await InstallAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == InsufficientPrivilege)
        {
            throw new DBSyncConfigurationException(
                $"DBSyncOptions.CaptureSchemaChanges needs the DDL capture trigger on database \"{database}\", which is " +
                (installed is null ? "not installed" : $"at version {installed}, older than this DBSync's {DdlCaptureSql.Version}") +
                $", and role \"{user}\" may not install it ({e.MessageText}): event triggers need a superuser (on managed services rds_superuser, " +
                "cloudsqlsuperuser, azure_pg_admin or their peers). Have such a role run `dbsync ddl install` against the database, or the SQL that " +
                "`dbsync ddl print` prints (docs/schema-changes.md lists it), then start again; or turn CaptureSchemaChanges off.", e);
        }
        Log.DdlCaptureInstalled(logger, DdlCaptureSql.Version, database);
    }
}
