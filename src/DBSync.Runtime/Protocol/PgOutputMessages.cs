namespace DBSync.Protocol;

// The pgoutput logical replication message formats, one type per message. Field names follow
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html. Positions are raw LSNs (ulong);
// times are UTC. Spans point into the frame and are valid only while the frame buffer is.

/// <summary>The first byte of a pgoutput message.</summary>
internal enum PgOutputMessageKind : byte
{
    Begin = (byte)'B',
    Message = (byte)'M',
    Commit = (byte)'C',
    Origin = (byte)'O',
    Relation = (byte)'R',
    Type = (byte)'Y',
    Insert = (byte)'I',
    Update = (byte)'U',
    Delete = (byte)'D',
    Truncate = (byte)'T',
    StreamStart = (byte)'S',
    StreamStop = (byte)'E',
    StreamCommit = (byte)'c',
    StreamAbort = (byte)'A',
    BeginPrepare = (byte)'b',
    Prepare = (byte)'P',
    CommitPrepared = (byte)'K',
    RollbackPrepared = (byte)'r',
    StreamPrepare = (byte)'p',
}

/// <summary>Which old tuple an Update or Delete carries.</summary>
internal enum OldTupleKind : byte
{
    None = 0,
    /// <summary>'K': the replica identity (key) columns.</summary>
    Key = (byte)'K',
    /// <summary>'O': the whole old row (REPLICA IDENTITY FULL).</summary>
    Full = (byte)'O',
}

internal readonly record struct BeginMessage(ulong FinalLsn, DateTime CommitTime, uint Xid);

internal readonly record struct CommitMessage(byte Flags, ulong CommitLsn, ulong EndLsn, DateTime CommitTime);

internal readonly record struct OriginMessage(ulong CommitLsn, string Name);

internal readonly record struct TypeMessage(uint Xid, uint TypeOid, string Namespace, string Name);

internal readonly record struct RelationColumn(bool IsKey, string Name, uint TypeOid, int TypeModifier);

/// <summary>Relation ('R'). <see cref="ReplicaIdentity"/> is 'd' (default), 'n' (nothing), 'f' (full) or 'i' (index).</summary>
internal sealed record RelationMessage(uint Xid, uint RelationId, string Namespace, string Name, char ReplicaIdentity, RelationColumn[] Columns);

/// <summary>Insert ('I'): <see cref="NewTuple"/> is the TupleData section, starting at its Int16 column count.</summary>
internal readonly ref struct InsertMessage(uint xid, uint relationId, ReadOnlySpan<byte> newTuple)
{
    public uint Xid { get; } = xid;
    public uint RelationId { get; } = relationId;
    public ReadOnlySpan<byte> NewTuple { get; } = newTuple;
}

/// <summary>Update ('U'): an optional old tuple ('K' or 'O') and the new tuple.</summary>
internal readonly ref struct UpdateMessage(uint xid, uint relationId, OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ReadOnlySpan<byte> newTuple)
{
    public uint Xid { get; } = xid;
    public uint RelationId { get; } = relationId;
    public OldTupleKind OldKind { get; } = oldKind;
    public ReadOnlySpan<byte> OldTuple { get; } = oldTuple;
    public ReadOnlySpan<byte> NewTuple { get; } = newTuple;
}

/// <summary>Delete ('D'): the old key ('K') or old row ('O').</summary>
internal readonly ref struct DeleteMessage(uint xid, uint relationId, OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple)
{
    public uint Xid { get; } = xid;
    public uint RelationId { get; } = relationId;
    public OldTupleKind OldKind { get; } = oldKind;
    public ReadOnlySpan<byte> OldTuple { get; } = oldTuple;
}

[Flags]
internal enum TruncateOptions : byte
{
    None = 0,
    Cascade = 1,
    RestartIdentity = 2,
}

internal readonly record struct TruncateMessage(uint Xid, TruncateOptions Options, uint[] RelationIds);

/// <summary>Message ('M') from <c>pg_logical_emit_message</c>. <see cref="Prefix"/> is UTF-8 without the terminator.</summary>
internal readonly ref struct LogicalDecodingMessage(uint xid, bool transactional, ulong lsn, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> content)
{
    public uint Xid { get; } = xid;
    public bool Transactional { get; } = transactional;
    public ulong Lsn { get; } = lsn;
    public ReadOnlySpan<byte> Prefix { get; } = prefix;
    public ReadOnlySpan<byte> Content { get; } = content;
}

internal readonly record struct StreamStartMessage(uint Xid, bool IsFirstSegment);

internal readonly record struct StreamCommitMessage(uint Xid, byte Flags, ulong CommitLsn, ulong EndLsn, DateTime CommitTime);

/// <summary>Stream Abort ('A'). Protocol 4 adds the abort LSN and time; they are zero when absent.</summary>
internal readonly record struct StreamAbortMessage(uint Xid, uint SubXid, ulong AbortLsn, DateTime AbortTime);
