using System.Runtime.ExceptionServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DBSync.Hosting.Internal;

/// <summary>
/// Runs the container's <see cref="DBSyncClient"/> while the host runs. The start waits until the slot streams (or
/// returns at once, <see cref="DBSyncHostOptions.WaitUntilStreaming"/>), never for the stream itself; the stop finishes
/// the transaction being delivered and confirms it (<see cref="DBSyncClient.StopAsync"/>) within the host's shutdown
/// timeout. An error that ends the run (at setup or while streaming) is logged once and, by default, stops the
/// application with a failure exit code; it is never thrown out of the host's start or stop, where it would end the
/// process as an unhandled exception (exit code 134) with its stack trace printed again.
/// </summary>
/// <remarks>
/// The application is stopped only once the host has started (at once when it has). The host's start goes on to the
/// hosted services registered after this one whatever happens here (nothing but an exception stops it, and an exception
/// would end the process); stopping the application before would cancel their start token, and one that throws on it
/// would make the host's start throw after all.
/// </remarks>
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
            // Streaming, or standing by while another instance holds the slot.
            await Task.WhenAny(client.Started, _run).WaitAsync(cancellationToken).ConfigureAwait(false);
            // Started ends with the setup's error before RunAsync has recorded it: without a start, the run's end
            // (which never throws) is what says whether there is a failure to throw here.
            if (!client.Started.IsCompletedSuccessfully)
                await _run.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host gave up starting (its startup timeout, a stop) before the slot streamed: nothing was delivered, so
            // the run simply ends. If it ended with an error of its own rather than the cancellation, that error is
            // what failed (reported by RunAsync with StopApplicationOnError, thrown here without).
            await _cancel.CancelAsync().ConfigureAwait(false);
            await _run.ConfigureAwait(false);
            if (_setupFailure is { } realFailure)
                ExceptionDispatchInfo.Throw(realFailure);
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
        catch (Exception e) when (EndedByOwnCancellation(e))
        {
            // Stopped, or the host gave up starting, during setup: that surfaces as cancellation, not as an error.
        }
        catch (Exception e) when (!_options.StopApplicationOnError && _options.WaitUntilStreaming && !client.Started.IsCompletedSuccessfully)
        {
            _setupFailure = e; // StartAsync throws it: the host does not start, and the application decides
        }
        catch (Exception e) when (_options.StopApplicationOnError)
        {
            Log.FailedStoppingApplication(_logger, e, client.Options.SlotName, FailureExitCode);
            // An exit code the application set itself is left alone.
            if (Environment.ExitCode == 0)
                Environment.ExitCode = FailureExitCode;
            lifetime.ApplicationStarted.Register(static state => ((IHostApplicationLifetime)state!).StopApplication(), lifetime);
        }
        catch (Exception e)
        {
            Log.FailedContinuing(_logger, e, client.Options.SlotName);
        }
    }

    /// <summary>Whether the run ended because this service cancelled it (the host's stop, or its start giving up), not
    /// of an error of its own.</summary>
    private bool EndedByOwnCancellation(Exception exception) => (_stopping || _cancel.IsCancellationRequested) && IsCancellation(exception);

    /// <summary>An <see cref="OperationCanceledException"/>, or an error caused by one: an exception that wraps it, or
    /// PostgreSQL's "canceling statement due to user request" (57014) from a cancelled query.</summary>
    internal static bool IsCancellation(Exception exception) => exception switch
    {
        OperationCanceledException or PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } => true,
        AggregateException aggregate => aggregate.InnerExceptions.Count > 0 && aggregate.InnerExceptions.All(IsCancellation),
        { InnerException: { } inner } => IsCancellation(inner),
        _ => false,
    };

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

    /// <summary>A host disposed without being stopped (a test that failed, an application that skips the stop) ends the
    /// run too, as a cancelled one: otherwise it would go on streaming, or standing by for the slot, with nobody to stop it.</summary>
    public void Dispose()
    {
        _cancel.Cancel();
        _cancel.Dispose();
    }
}
