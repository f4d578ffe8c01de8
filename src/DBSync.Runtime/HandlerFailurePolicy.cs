namespace DBSync;

/// <summary>What happens when a handler throws.</summary>
public enum HandlerFailurePolicy
{
    /// <summary>The stream stops: <c>RunAsync</c> throws the handler's exception. Nothing past the last transaction whose
    /// handlers all completed is confirmed, so the failed transaction is delivered again, whole, on the next run.</summary>
    Stop,

    /// <summary>The failed handler is called again with the same argument, after a wait that doubles from
    /// <see cref="DBSyncOptions.HandlerRetryDelay"/> up to <see cref="DBSyncOptions.MaxHandlerRetryDelay"/>, up to
    /// <see cref="DBSyncOptions.HandlerMaxAttempts"/> calls in all; then the stream stops as with <see cref="Stop"/>.
    /// The stream waits meanwhile (later changes are not delivered before this one) and nothing is confirmed past it.</summary>
    Retry,
}
