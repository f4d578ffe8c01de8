namespace DBSync.Replication.Transport;

/// <summary>
/// One replication connection in streaming mode, as the session needs it: frames in order, the position to confirm,
/// and an end. Two implementations: <see cref="DirectTransport"/> speaks the protocol on its own socket with batched
/// reads on a dedicated thread; <see cref="NpgsqlTransport"/> uses Npgsql's replication connection, for what the first
/// does not support (see <see cref="DirectSettings"/>).
/// </summary>
internal interface IReplicationTransport : IAsyncDisposable
{
    /// <summary>What carries the stream, for the log: "direct" or "npgsql".</summary>
    string Name { get; }

    /// <summary>The walsender's process id.</summary>
    int BackendPid { get; }

    /// <summary>The server's WAL position as of the last frame or keepalive handed to the session: every frame before it
    /// has been returned by <see cref="ReadFrameAsync"/>.</summary>
    ulong LastReceivedLsn { get; }

    /// <summary>The payload of the frame the last <see cref="ReadFrameAsync"/> returned (one pgoutput message); valid until
    /// the next call.</summary>
    ReadOnlySpan<byte> Frame { get; }

    /// <summary>The WAL position of that frame.</summary>
    ulong FrameLsn { get; }

    /// <summary>Sends START_REPLICATION for a logical slot.</summary>
    /// <param name="slot">The slot (a validated name).</param>
    /// <param name="start">Where this process confirmed last: the server skips transactions that committed before it,
    /// even when the slot stands earlier because the last status update was lost with a connection.</param>
    /// <param name="pluginOptions">pgoutput's options (validated names; values are quoted here).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    ValueTask StartAsync(string slot, ulong start, IReadOnlyList<KeyValuePair<string, string>> pluginOptions, CancellationToken cancellationToken);

    /// <summary>Waits for the next frame. False when the stream ended: after <see cref="EndStreamAsync"/>, or because the
    /// server ended it. A lost connection throws.</summary>
    /// <param name="cancellationToken">Cancels the wait: the read ends at once with an
    /// <see cref="OperationCanceledException"/>, and the stream cannot go on (to end it gracefully, use
    /// <see cref="EndStreamAsync"/>).</param>
    ValueTask<bool> ReadFrameAsync(CancellationToken cancellationToken);

    /// <summary>Takes the next frame only if it was received already, never waiting: true with a frame, as from
    /// <see cref="ReadFrameAsync"/>; false when none is at hand (the next <see cref="ReadFrameAsync"/> waits for it, or says
    /// that the stream ended). A lost connection throws.</summary>
    bool TryReadReceivedFrame(CancellationToken cancellationToken);

    /// <summary>The position to report as confirmed from now on (sent with the next status update).</summary>
    void SetConfirmed(ulong lsn);

    /// <summary>Sends the confirmed position now. A connection that is already gone is not an error: the server keeps
    /// the last position it received.</summary>
    Task FlushStatusAsync();

    /// <summary>Ends the stream while the session waits for a frame: the confirmed position is sent, and the pending or
    /// next <see cref="ReadFrameAsync"/> ends (false, or an <see cref="OperationCanceledException"/>). Before the server
    /// started the stream, a pending <see cref="StartAsync"/> ends at once (the direct transport throws
    /// <see cref="OperationCanceledException"/>; Npgsql's sends nothing until the first read).</summary>
    Task EndStreamAsync(bool flushStatus);
}

/// <summary>The stream's clocks: how often the confirmed position is reported, how long the server may stay silent, and
/// the direct transport's batching pause.</summary>
internal readonly record struct StreamTimings(TimeSpan StatusInterval, TimeSpan ReceiveTimeout, TimeSpan BatchDelay)
{
    public static StreamTimings From(DBSyncOptions options) => new(options.StatusInterval, options.ReceiveTimeout, options.ReceiveBatchDelay);
}
