using Microsoft.Extensions.Logging;

namespace DBSync.Hosting.Internal;

/// <summary>The hosted service's log messages. Event ids 5xxx, stable; the runtime's own are 1xxx to 4xxx.</summary>
internal static partial class Log
{
    [LoggerMessage(5001, LogLevel.Critical, "Slot \"{Slot}\" stopped with an error; stopping the application with exit code {ExitCode} (DBSyncHostOptions.StopApplicationOnError)")]
    public static partial void FailedStoppingApplication(ILogger logger, Exception exception, string slot, int exitCode);

    [LoggerMessage(5002, LogLevel.Error, "Slot \"{Slot}\" stopped with an error; the application runs on without it (DBSyncHostOptions.StopApplicationOnError is false)")]
    public static partial void FailedContinuing(ILogger logger, Exception exception, string slot);

    [LoggerMessage(5003, LogLevel.Warning, "Slot \"{Slot}\" did not stop within the host's shutdown timeout; its handlers were cancelled, and the transaction they were handling is delivered again on the next start")]
    public static partial void StopTimedOut(ILogger logger, string slot);
}
