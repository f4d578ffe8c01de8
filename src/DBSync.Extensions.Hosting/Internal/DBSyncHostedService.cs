using System.Runtime.ExceptionServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace DBSync.Hosting.Internal;

/// <summary>
/// Runs the container's <see cref="DBSyncClient"/> while the host runs. The start waits until the slot streams (or
/// returns at once, <see cref="DBSyncHostOptions.WaitUntilStreaming"/>), never for the stream itself; the stop finishes
/// the transaction being delivered and confirms it (<see cref="DBSyncClient.StopAsync"/>) within the host's shutdown
/// timeout; an error that stops the stream is logged and, by default, stops the application and fails the host's stop.
/// </summary>
internal sealed class DBSyncHostedService(IServiceProvider services, IOptions<DBSyncHostOptions> options, IHostApplicationLifetime lifetime) : IHostedService, IDisposable
{
    private readonly DBSyncHostOptions _options = options.Value;
    private readonly ILogger _logger = (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("DBSync.Hosting");
    private readonly CancellationTokenSource _cancel = new();
    private DBSyncClient? _client;
    private Task? _run;
    private Exception? _failure;
    private volatile bool _stopping;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Resolved here, after the host validated the options (ValidateOnStart), not when the host resolved its services.
        var client = services.GetRequiredService<DBSyncClient>();
        _client = client;
        _run = Task.Run(() => RunAsync(client), CancellationToken.None);
        if (!_options.WaitUntilStreaming)
            return;
        try
        {
            await Task.WhenAny(client.Streaming, _run).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host gave up starting before the slot streamed: nothing was delivered, so the run simply ends.
            await _cancel.CancelAsync().ConfigureAwait(false);
            await _run.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw;
        }
        if (!client.Streaming.IsCompletedSuccessfully)
            await _run.ConfigureAwait(false); // the setup error (wal_level, privileges, a missing table) fails the host's start
    }

    private async Task RunAsync(DBSyncClient client)
    {
        try
        {
            await client.RunAsync(_cancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping || _cancel.IsCancellationRequested)
        {
            // Stopped during setup, which surfaces as cancellation.
        }
        catch (Exception) when (_options.WaitUntilStreaming && !client.Streaming.IsCompletedSuccessfully)
        {
            throw; // before streaming: StartAsync reports it and the host does not start
        }
        catch (Exception e)
        {
            _failure = e;
            if (_options.StopApplicationOnError)
            {
                Log.FailedStoppingApplication(_logger, e, client.Options.SlotName);
                lifetime.StopApplication();
            }
            else
            {
                Log.FailedContinuing(_logger, e, client.Options.SlotName);
            }
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        if (_run is not { } run || _client is not { } client)
            return; // never started
        if (!run.IsCompleted)
        {
            try
            {
                await client.StopAsync(cancellationToken).ConfigureAwait(false);
                // A run that had not begun when the stop came (StopAsync found nothing to stop) ends at its first step.
                await _cancel.CancelAsync().ConfigureAwait(false);
                await run.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                Log.StopTimedOut(_logger, client.Options.SlotName);
                return;
            }
            catch (Exception) when (run.IsFaulted)
            {
                // A setup error, which the start reported.
            }
        }
        if (_failure is { } failure && _options.StopApplicationOnError)
            ExceptionDispatchInfo.Throw(failure); // the host's stop (and RunAsync) fail with it: the process exits with an error
    }

    public void Dispose() => _cancel.Dispose();
}
