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
/// timeout. An error that ends the run (at setup or while streaming) is logged once and, by default, stops the
/// application with a failure exit code; it is never thrown out of the host's start or stop, where it would end the
/// process as an unhandled exception (exit code 134) with its stack trace printed again.
/// </summary>
internal sealed class DBSyncHostedService(IServiceProvider services, IOptions<DBSyncHostOptions> options, IHostApplicationLifetime lifetime) : IHostedService, IDisposable
{
    /// <summary>The process's exit code after an error that stopped the application (unless the application set another).</summary>
    internal const int FailureExitCode = 1;

    private readonly DBSyncHostOptions _options = options.Value;
    private readonly ILogger _logger = (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("DBSync.Hosting");
    private readonly CancellationTokenSource _cancel = new();
    private DBSyncClient? _client;
    private Task? _run;
    private Exception? _setupFailure;
    private volatile bool _stopping;
    private volatile bool _failed;

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
            await _run.ConfigureAwait(false);
            if (_failed)
                return; // the run failed and stopped the application, which cancelled the host's start: reported already
            throw;
        }
        if (_setupFailure is { } failure)
            ExceptionDispatchInfo.Throw(failure); // StopApplicationOnError is false: the setup error fails the host's start
    }

    /// <summary>Runs the client to its end; never throws: an error is reported here, once.</summary>
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
        catch (Exception e) when (!_options.StopApplicationOnError && _options.WaitUntilStreaming && !client.Streaming.IsCompletedSuccessfully)
        {
            _setupFailure = e; // StartAsync throws it: the host does not start, and the application decides
        }
        catch (Exception e) when (_options.StopApplicationOnError)
        {
            _failed = true;
            Log.FailedStoppingApplication(_logger, e, client.Options.SlotName, FailureExitCode);
            // An exit code the application set itself is left alone.
            if (Environment.ExitCode == 0)
                Environment.ExitCode = FailureExitCode;
            lifetime.StopApplication();
        }
        catch (Exception e)
        {
            Log.FailedContinuing(_logger, e, client.Options.SlotName);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        if (_run is not { } run || _client is not { } client || run.IsCompleted)
            return; // never started, or already ended (an error was reported when it did)
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
        }
    }

    public void Dispose() => _cancel.Dispose();
}
