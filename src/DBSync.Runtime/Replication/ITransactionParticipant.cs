namespace DBSync.Replication;

/// <summary>
/// State kept across the handlers of one transaction outside the stream, such as the hosting package's dependency
/// injection scope per transaction. It ends after the transaction handlers, just before the transaction is acknowledged.
/// </summary>
internal interface ITransactionParticipant
{
    /// <summary>Every handler of the transaction being delivered completed, transaction handlers included (also for
    /// DBSync's own watermark transactions, whose snapshot rows have no transaction handlers).</summary>
    ValueTask OnTransactionEndAsync();

    /// <summary>Drops what was kept: a new session starts, and a transaction cut off in the last one is delivered again
    /// from its start; or the run ended.</summary>
    ValueTask ResetAsync();
}
