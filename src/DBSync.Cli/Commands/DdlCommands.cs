using System.CommandLine;
using DBSync.Schema;

namespace DBSync.Cli.Commands;

/// <summary><c>ddl</c>: the DDL capture trigger that <c>CaptureSchemaChanges</c> needs (an event trigger, which only a
/// superuser or a managed service's equivalent may create): print its SQL for a DBA, install it, show whether it is there,
/// remove it.</summary>
internal static class DdlCommands
{
    public static Command Create(CommandContext context)
    {
        var print = new Command("print", "Print the SQL that installs the DDL capture trigger (for a DBA to review and run; no connection needed)");
        print.SetAction(async (_, cancellationToken) =>
        {
            await context.Out.WriteLineAsync($"-- DBSync DDL capture trigger, version {DdlCaptureSql.Version}: run as a superuser (or rds_superuser, cloudsqlsuperuser, azure_pg_admin)").ConfigureAwait(false);
            await context.Out.WriteLineAsync("BEGIN;").ConfigureAwait(false);
            await context.Out.WriteLineAsync(DdlCaptureSql.Install.Trim()).ConfigureAwait(false);
            await context.Out.WriteLineAsync("COMMIT;").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var install = new Command("install", "Install (or upgrade) the DDL capture trigger on the database: one serves every pipeline of it");
        context.Handle(install, async (_, server, cancellationToken) =>
        {
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            var before = await DdlCapture.InstalledVersionAsync(connection, cancellationToken).ConfigureAwait(false);
            if (before > DdlCaptureSql.Version)
            {
                throw new CliException(ExitCodes.Refused,
                    $"Database {connection.Database} has version {before} of the DDL capture trigger, installed by a newer DBSync; this dbsync installs version " +
                    $"{DdlCaptureSql.Version}, which the newer DBSync cannot read messages of. Use the newer dbsync.");
            }
            await DdlCapture.InstallAsync(connection, cancellationToken).ConfigureAwait(false);
            await context.Out.WriteLineAsync(before switch
            {
                null => $"Installed the DDL capture trigger (version {DdlCaptureSql.Version}) on database {connection.Database}.",
                var v when v == DdlCaptureSql.Version => $"Installed the DDL capture trigger (version {DdlCaptureSql.Version}) again on database {connection.Database}.",
                var v => $"Replaced version {v} of the DDL capture trigger with version {DdlCaptureSql.Version} on database {connection.Database}.",
            }).ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var status = new Command("status", "Show whether the DDL capture trigger is installed, and its version");
        context.Handle(status, async (_, server, cancellationToken) =>
        {
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            var version = await DdlCapture.InstalledVersionAsync(connection, cancellationToken).ConfigureAwait(false);
            if (version is null)
            {
                await context.Out.WriteLineAsync($"The DDL capture trigger is not installed on database {connection.Database} (dbsync ddl install).").ConfigureAwait(false);
                return ExitCodes.NotFound;
            }
            await context.Out.WriteLineAsync($"The DDL capture trigger is installed on database {connection.Database}: version {version}" +
                (version == DdlCaptureSql.Version ? "." : $", where this dbsync installs version {DdlCaptureSql.Version}.")).ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var yes = new Option<bool>("--yes", "-y") { Description = "Remove without asking for confirmation" };
        var uninstall = new Command("uninstall", "Remove the DDL capture trigger: pipelines with CaptureSchemaChanges install it again when they start") { yes };
        context.Handle(uninstall, async (parse, server, cancellationToken) =>
        {
            await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
            if (await DdlCapture.InstalledVersionAsync(connection, cancellationToken).ConfigureAwait(false) is null)
            {
                await context.Out.WriteLineAsync($"The DDL capture trigger is not installed on database {connection.Database}: nothing to remove.").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            if (!parse.GetValue(yes))
            {
                await context.ConfirmAsync($"Remove the DDL capture trigger from database {connection.Database}? Pipelines running with CaptureSchemaChanges no longer see DDL.",
                    "The DDL capture trigger was not removed", cancellationToken).ConfigureAwait(false);
            }
            await DdlCapture.UninstallAsync(connection, cancellationToken).ConfigureAwait(false);
            await context.Out.WriteLineAsync($"Removed the DDL capture trigger from database {connection.Database}.").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        return new Command("ddl", "The DDL capture trigger that DBSyncOptions.CaptureSchemaChanges needs: print, install, status, uninstall")
        {
            print, install, status, uninstall,
        };
    }
}
