namespace DBSync.Hosting;

/// <summary>How the hosted service runs DBSync with the host (<see cref="DBSyncBuilder.ConfigureHost"/>, or the same
/// configuration section as <see cref="DBSyncOptions"/>).</summary>
public sealed class DBSyncHostOptions
{
    /// <summary>
    /// Whether the host's start waits until the slot streams (the database checked, publication and slot created), or
    /// until this instance stands by because another holds the slot (<see cref="SlotInUse.Wait"/>, the default under the
    /// host), so hosted services registered after DBSync start only once it got that far, and a configuration error (<c>wal_level</c>,
    /// privileges, a missing table) is known before the start returns: handled as <see cref="StopApplicationOnError"/>
    /// says (the services after DBSync then start once the error is reported, and the application stops as soon as the
    /// host has started), or, when that is false, failing the host's start with its message (they do not start). When
    /// false, the start returns at once. Either way the host's start never waits for the stream itself. Default true.
    /// </summary>
    public bool WaitUntilStreaming { get; set; } = true;

    /// <summary>
    /// Whether an error that ends DBSync's run, at setup (<c>wal_level</c>, privileges, a missing table) or while streaming
    /// (a handler failure under <see cref="HandlerFailurePolicy.Stop"/>, a lost slot, a schema mismatch), stops the
    /// application: it is logged once, with its stack trace (event 5001), <see cref="Environment.ExitCode"/> is set to 1
    /// (unless the application set another), and the application is stopped, as soon as the host has started (during the
    /// host's start that would cancel the start token of the hosted services after DBSync, and one that throws on it
    /// would fail the host's start). Neither the host's start nor its stop throws it, so <c>host.RunAsync()</c> returns
    /// and the process exits with that code (a <c>Main</c> that returns an <c>int</c> must return
    /// <see cref="Environment.ExitCode"/> to keep it), instead of dying of an unhandled exception. A stop or a host start
    /// that gives up (its startup timeout) during setup is not such an error, even when the setup fails because of it.
    /// When false, a setup error fails the host's start (with <see cref="WaitUntilStreaming"/>; also when the host's start
    /// gives up while the setup is failing: the setup's error, not the cancellation) and an error while streaming is
    /// logged (event 5002) while the application runs on without DBSync. Default true.
    /// </summary>
    public bool StopApplicationOnError { get; set; } = true;
}
