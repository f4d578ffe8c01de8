namespace DBSync.Replication;

/// <summary>
/// Where a <see cref="PostgresApplier"/> takes its changes from: a <see cref="DBSyncClient"/> streaming a replication
/// slot, or a consumer of a stream the changes were published to (the JetStream consumer). Either delivers each source
/// transaction's changes in commit order to the handlers, then ends the transaction at the sinks, and confirms nothing
/// that a sink has not committed.
/// </summary>
internal interface IChangeSource
{
    /// <summary>For messages: which slot, stream or consumer this is.</summary>
    string Description { get; }

    /// <summary>Whether a failing change is retried where it failed (so the applier puts each change behind a savepoint),
    /// rather than delivered again from its transaction's start.</summary>
    bool RetriesFailedChange { get; }

    /// <summary>Adds a handler for the changes of the table <typeparamref name="T"/> maps.</summary>
    void AddHandler<T>(Func<Change<T>, CancellationToken, ValueTask> handler) where T : ISyncTable<T>;

    /// <summary>Adds a sink whose commit the source waits for before it confirms a transaction.</summary>
    void AddSink(ICommitGroupSink sink);
}
