using DBSync.Sample;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DBSync.HostedSample;

/// <summary>
/// The sample's workload, so that it ends by itself: once DBSync streams (it is registered after AddDBSync, so it starts
/// after DBSync's start returned) it writes the seed changes, waits until the handlers saw them all, takes a snapshot of
/// the three tables through the DBSyncClient from the container, and stops the host, which stops DBSync gracefully.
/// </summary>
public sealed partial class SampleWriter(DBSyncClient client, IOptions<DBSyncOptions> options, SampleProgress progress,
    IHostApplicationLifetime lifetime, ILogger<SampleWriter> logger) : BackgroundService
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

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
                foreach (var sql in SeedChanges.Statements)
                {
                    await using var command = new NpgsqlCommand(sql, connection);
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

    [LoggerMessage(11, LogLevel.Information, "Streaming; writing {Statements} transactions to the seed tables")]
    private static partial void LogWriting(ILogger logger, int statements);

    [LoggerMessage(12, LogLevel.Information, "Handled all {Changes} changes and {Reads} snapshot rows; stopping the host")]
    private static partial void LogDone(ILogger logger, int changes, int reads);

    [LoggerMessage(13, LogLevel.Error, "The sample did not complete")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
