using DBSync.Sample;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DBSync.HostedSample;

/// <summary>
/// The sample's workload, so that it ends by itself: once DBSync streams (it is registered after AddDBSync, so it starts
/// after DBSync's start returned) it writes the seed changes, with a migration between the inserts and the updates,
/// waits until the handlers saw them all, takes a snapshot of the three tables through the DBSyncClient from the
/// container, and stops the host, which stops DBSync gracefully.
/// </summary>
public sealed partial class SampleWriter(DBSyncClient client, IOptions<DBSyncOptions> options, SampleProgress progress,
    IHostApplicationLifetime lifetime, ILogger<SampleWriter> logger) : BackgroundService
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    /// <summary>Applied while DBSync streams, in one transaction, after this many seed statements: a column Restaurant does
    /// not map (so the entity keeps working), then its default. Neither rewrites the table's rows.</summary>
    private const int MigrationAfter = 3;

    private static readonly string[] s_migration =
    [
        "ALTER TABLE restaurant ADD COLUMN opened_on date",
        "ALTER TABLE restaurant ALTER COLUMN opened_on SET DEFAULT current_date",
    ];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            // The slot is new, so DBSync first snapshots the (still empty) tables.
            await progress.FirstSnapshotsCompleted.WaitAsync(s_timeout, stoppingToken);
            LogWriting(logger, SeedChanges.Statements.Length);
            await using (var connection = new NpgsqlConnection(options.Value.ConnectionString))
            {
                await connection.OpenAsync(stoppingToken);
                for (var i = 0; i < SeedChanges.Statements.Length; i++)
                {
                    if (i == MigrationAfter)
                        await MigrateAsync(connection, stoppingToken);
                    await using var command = new NpgsqlCommand(SeedChanges.Statements[i], connection);
                    await command.ExecuteNonQueryAsync(stoppingToken);
                }
            }
            await progress.WhenAsync(p => p.Changes >= SeedChanges.Count).WaitAsync(s_timeout, stoppingToken);

            // The full current state, read in chunks while the stream runs: each row arrives as a Read change.
            await client.SnapshotAsync([SnapshotTable.Of<User>(), SnapshotTable.Of<Restaurant>(), SnapshotTable.Of<Visit>()], stoppingToken).WaitAsync(s_timeout, stoppingToken);
            LogDone(logger, progress.Changes, progress.Reads);
        }
        catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            LogFailed(logger, e);
            Environment.ExitCode = 1;
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    /// <summary>The migration, as a migration tool runs one: its statements in one transaction.</summary>
    private async Task MigrateAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        LogMigrating(logger, string.Join("; ", s_migration));
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var sql in s_migration)
        {
            await using var command = new NpgsqlCommand(sql, connection, transaction);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    [LoggerMessage(11, LogLevel.Information, "Streaming; writing {Statements} transactions to the seed tables")]
    private static partial void LogWriting(ILogger logger, int statements);

    [LoggerMessage(12, LogLevel.Information, "Handled all {Changes} changes and {Reads} snapshot rows; stopping the host")]
    private static partial void LogDone(ILogger logger, int changes, int reads);

    [LoggerMessage(13, LogLevel.Error, "The sample did not complete")]
    private static partial void LogFailed(ILogger logger, Exception exception);

    [LoggerMessage(14, LogLevel.Information, "Applying a migration while DBSync streams: {Migration}")]
    private static partial void LogMigrating(ILogger logger, string migration);
}
