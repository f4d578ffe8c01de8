namespace DBSync.Nats;

/// <summary>Where and how <see cref="JetStreamPublisher"/> publishes.</summary>
public sealed class JetStreamPublisherOptions
{
    /// <summary>The stream's name; by default <c>DBSYNC_</c> and the slot name in upper case. DBSync creates it when
    /// missing. It must be the pipeline's own: DBSync reads its last message to know where it stopped.</summary>
    public string? Stream { get; set; }

    /// <summary>The first token(s) of every subject (default <c>dbsync</c>): messages go to
    /// <c>&lt;prefix&gt;.&lt;schema&gt;.&lt;table&gt;</c>, or <c>&lt;prefix&gt;.&lt;schema&gt;.&lt;table&gt;.&lt;partition&gt;</c>
    /// with <see cref="Partitions"/>. The stream takes <c>&lt;prefix&gt;.&gt;</c>.</summary>
    public string SubjectPrefix { get; set; } = "dbsync";

    /// <summary>0 (the default): one subject per table. N: each table's messages are split into N subjects by a stable
    /// hash of the primary key (FNV-1a of its MessagePack form, modulo N), so that consumers can share a table by key and
    /// still see each key's changes in order. A truncate goes to every partition.</summary>
    public int Partitions { get; set; }

    /// <summary>The stream's replicas (default 1; 3 on a three-node cluster): DBSync creates the stream with them, and
    /// refuses an existing stream that has others.</summary>
    public int Replicas { get; set; } = 1;

    /// <summary>The stream's storage (default <see cref="JetStreamStorage.File"/>): DBSync creates the stream with it, and
    /// refuses an existing stream that has the other.</summary>
    public JetStreamStorage Storage { get; set; } = JetStreamStorage.File;

    /// <summary>The stream's duplicate window (default 2 minutes): JetStream drops a message whose <c>Nats-Msg-Id</c> it
    /// saw within it. DBSync does not rely on it alone: it also starts after the last message it finds in the stream.</summary>
    public TimeSpan DuplicateWindow { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The stream's size limit in bytes when DBSync creates it (default -1: none). A full stream refuses new
    /// messages (DBSync creates it with the <c>new</c> discard policy, so nothing published is dropped): DBSync stops
    /// confirming and retries until there is room.</summary>
    public long MaxBytes { get; set; } = -1;

    /// <summary>The body's format (default <see cref="BodyFormat.MessagePack"/>).</summary>
    public BodyFormat Format { get; set; } = BodyFormat.MessagePack;

    /// <summary>Whether each source transaction is followed by a <c>commit</c> message (default false): one per partition the
    /// transaction touched (one without <see cref="Partitions"/>), on <c>&lt;prefix&gt;._dbsync.commit</c> (and
    /// <c>.&lt;partition&gt;</c>), with an empty body, the transaction's commit and end positions and its number of changes.
    /// A consumer learns from it that it has every change of the transaction: the <see cref="PostgresApplier"/> on a
    /// <see cref="JetStreamConsumer"/> needs it to apply each source transaction in one target transaction. Off by
    /// default: it adds a message to every transaction (twice the messages for single-row transactions).</summary>
    public bool TransactionEnds { get; set; }

    /// <summary>The most messages awaiting JetStream's acknowledgement (default 4096). Past it DBSync waits for them.</summary>
    public int MaxInFlight { get; set; } = 4096;

    /// <summary>How long the acknowledgements of a transaction may be awaited later, while the transactions that follow
    /// are published (default 100 ms). A transaction is confirmed to PostgreSQL only once JetStream acknowledged each of
    /// its messages and those of every transaction before it.</summary>
    public TimeSpan MaxAckDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Throws when a setting is out of range, naming it.</summary>
    public void Validate()
    {
        if (Stream is not null && (Stream.Length == 0 || Stream.AsSpan().IndexOfAny(" \t\r\n.*>/\\") >= 0))
            throw new ArgumentException($"JetStreamPublisherOptions.Stream \"{Stream}\" is not a valid stream name: it may not be empty or contain spaces, '.', '*', '>', '/' or '\\'.", nameof(Stream));
        if (string.IsNullOrEmpty(SubjectPrefix) || SubjectPrefix.StartsWith('.') || SubjectPrefix.EndsWith('.') || SubjectPrefix.Contains("..", StringComparison.Ordinal)
            || SubjectPrefix.AsSpan().IndexOfAny(" \t\r\n*>") >= 0)
            throw new ArgumentException($"JetStreamPublisherOptions.SubjectPrefix \"{SubjectPrefix}\" is not a valid subject prefix: use tokens separated by single dots, without spaces, '*' or '>' (for example \"dbsync\" or \"cdc.orders\").", nameof(SubjectPrefix));
        if (Partitions < 0)
            throw new ArgumentOutOfRangeException(nameof(Partitions), Partitions, "JetStreamPublisherOptions.Partitions must be 0 (one subject per table) or more.");
        if (Replicas is < 1 or > 5)
            throw new ArgumentOutOfRangeException(nameof(Replicas), Replicas, "JetStreamPublisherOptions.Replicas must be 1 to 5 (JetStream's limit).");
        if (DuplicateWindow < TimeSpan.FromMilliseconds(100))
            throw new ArgumentOutOfRangeException(nameof(DuplicateWindow), DuplicateWindow, "JetStreamPublisherOptions.DuplicateWindow must be at least 100 ms (JetStream's minimum).");
        if (MaxBytes is 0 or < -1)
            throw new ArgumentOutOfRangeException(nameof(MaxBytes), MaxBytes, "JetStreamPublisherOptions.MaxBytes must be -1 (no limit) or positive.");
        if (MaxInFlight < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxInFlight), MaxInFlight, "JetStreamPublisherOptions.MaxInFlight must be at least 1.");
        if (MaxAckDelay < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(MaxAckDelay), MaxAckDelay, "JetStreamPublisherOptions.MaxAckDelay cannot be negative.");
    }

    /// <summary>The stream name for <paramref name="slotName"/>: <see cref="Stream"/>, or <c>DBSYNC_</c> and the slot name.</summary>
    internal string StreamFor(string slotName) => Stream ?? "DBSYNC_" + slotName.ToUpperInvariant();
}

/// <summary>Where JetStream keeps a stream's messages.</summary>
public enum JetStreamStorage
{
    /// <summary>On disk: messages survive a restart of the server.</summary>
    File,

    /// <summary>In memory.</summary>
    Memory,
}
