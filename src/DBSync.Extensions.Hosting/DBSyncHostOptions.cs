namespace DBSync.Hosting;

/// <summary>How the hosted service runs DBSync with the host (<see cref="DBSyncBuilder.ConfigureHost"/>, or the same
/// configuration section as <see cref="DBSyncOptions"/>).</summary>
public sealed class DBSyncHostOptions
{
    /// <summary>
    /// Whether the host's start waits until the slot streams (the database checked, publication and slot created), so a
    /// configuration error (<c>wal_level</c>, privileges, a missing table) fails the host's start with its message. When
    /// false, the start returns at once and such an error is handled as <see cref="StopApplicationOnError"/> says. Either
    /// way the host's start never waits for the stream itself. Default true.
    /// </summary>
    public bool WaitUntilStreaming { get; set; } = true;

    /// <summary>
    /// Whether an error that stops the stream (a handler failure under <see cref="HandlerFailurePolicy.Stop"/>, a lost
    /// slot, a schema mismatch) stops the application: it is logged (event 5001), the application is stopped, and the
    /// host's <c>StopAsync</c> (so <c>RunAsync</c>) throws it, so the process ends with a failure exit code. When false
    /// it is logged (event 5002) and the application runs on without DBSync. Default true.
    /// </summary>
    public bool StopApplicationOnError { get; set; } = true;
}
