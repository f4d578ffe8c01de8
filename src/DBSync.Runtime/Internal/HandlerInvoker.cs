using Microsoft.Extensions.Logging;

namespace DBSync.Internal;

/// <summary>
/// Calls user handlers under <see cref="DBSyncOptions.HandlerFailure"/>. With <see cref="HandlerFailurePolicy.Stop"/>
/// a call is the handler's own ValueTask, nothing added; with retries, a handler that completes synchronously costs a
/// try block, and only a failure or a pending task goes through an async method.
/// </summary>
internal sealed class HandlerInvoker(DBSyncOptions options, ILogger logger)
{
    private readonly bool _retry = options.HandlerFailure == HandlerFailurePolicy.Retry;

    public ValueTask InvokeAsync<TArgument>(Func<TArgument, CancellationToken, ValueTask> handler, TArgument argument,
        CancellationToken cancellationToken)
    {
        if (!_retry)
            return handler(argument, cancellationToken);
        ValueTask call;
        try
        {
            call = handler(argument, cancellationToken);
        }
        catch (Exception e) when (IsRetryable(e, cancellationToken))
        {
            return RetryAsync(handler, argument, e, cancellationToken);
        }
        if (!call.IsCompletedSuccessfully)
            return AwaitAsync(call, handler, argument, cancellationToken);
        call.GetAwaiter().GetResult(); // a ValueTask is consumed once, even a completed one (it may return a pooled source)
        return default;
    }

    /// <summary>Calls <paramref name="handlers"/> one after the other, in order.</summary>
    public async ValueTask InvokeAllAsync<TArgument>(IReadOnlyList<Func<TArgument, CancellationToken, ValueTask>> handlers, TArgument argument,
        CancellationToken cancellationToken)
    {
        foreach (var handler in handlers)
            await InvokeAsync(handler, argument, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask AwaitAsync<TArgument>(ValueTask call, Func<TArgument, CancellationToken, ValueTask> handler, TArgument argument,
        CancellationToken cancellationToken)
    {
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (Exception e) when (IsRetryable(e, cancellationToken))
        {
            await RetryAsync(handler, argument, e, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask RetryAsync<TArgument>(Func<TArgument, CancellationToken, ValueTask> handler, TArgument argument,
        Exception failure, CancellationToken cancellationToken)
    {
        // Described only on failure: the hot path formats nothing.
        var what = argument?.ToString() ?? typeof(TArgument).Name;
        for (var attempt = 1; ; attempt++)
        {
            if (attempt >= options.HandlerMaxAttempts)
            {
                Log.HandlerGaveUp(logger, failure, what, attempt);
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
            var delay = Backoff.Delay(options.HandlerRetryDelay, options.MaxHandlerRetryDelay, attempt);
            Log.HandlerRetrying(logger, failure, what, attempt, options.HandlerMaxAttempts, (long)delay.TotalMilliseconds);
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            try
            {
                await handler(argument, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (IsRetryable(e, cancellationToken))
            {
                failure = e;
            }
        }
    }

    // A handler that gives up because the run is stopping is not a failure to retry, nor is a lost connection (an
    // applier's target): the run reconnects and delivers the transaction again from its start. Nor is a configuration
    // error (a message larger than the broker takes, say), which no retry mends.
    private static bool IsRetryable(Exception e, CancellationToken cancellationToken)
        => !(e is OperationCanceledException && cancellationToken.IsCancellationRequested) && e is not StreamInterruptedException and not DBSyncConfigurationException;
}
