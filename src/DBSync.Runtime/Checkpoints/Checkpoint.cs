using System.Buffers;
using MessagePack;

namespace DBSync.Checkpoints;

/// <summary>
/// The persisted state of one pipeline (one slot): snapshot queue and progress, pause state, the last signal acted on,
/// the outcomes of the last snapshots, and the acknowledged LSN when it was written. <see cref="CheckpointInfo"/> is its
/// public, read-only view.
/// </summary>
internal sealed class Checkpoint
{
    /// <summary>The record layout written by this version. Readers accept this and older ones; newer ones are refused
    /// rather than misread. Version 2 adds <see cref="JobState.DeletesFrom"/>, which an older reader would take for a
    /// snapshot of the whole table: a record is written as version 2 only while such a job is queued. Version 3 adds
    /// <see cref="JobState.Segments"/> (parallel reads), whose progress an older reader would take for the table's: a record
    /// is written as version 3 only while such a job is queued.</summary>
    public const int CurrentVersion = 3;

    public required string Slot { get; init; }

    public ulong ConfirmedLsn { get; init; }

    public DateTime SavedAt { get; init; }

    public bool Paused { get; init; }

    /// <summary>The commit LSN of the last signal-table transaction acted on: a replayed signal is not acted on twice.</summary>
    public ulong LastSignalLsn { get; init; }

    public required IReadOnlyList<JobState> Jobs { get; init; }

    /// <summary>How the last snapshots ended, oldest first (at most <see cref="MaxFinished"/>): what a tool following a
    /// snapshot from another process reads. Field 8, added without a new version: older readers skip it.</summary>
    public IReadOnlyList<FinishedSnapshot> Finished { get; init; } = [];

    /// <summary>How many outcomes <see cref="Finished"/> keeps.</summary>
    public const int MaxFinished = 32;

    /// <summary>The leaf partitions of the mapped partitioned tables at the last reading (<see cref="Replication.PartitionWatcher"/>),
    /// so that the next run, or the instance that takes over, sees what was attached or detached since; null when none
    /// was read (a record of an older DBSync). Field 9, added without a new version: older readers skip it.</summary>
    public IReadOnlyList<SavedPartition>? Partitions { get; init; }

    public byte[] Serialize()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(9);
        writer.Write(Jobs.Any(j => j.Segments is not null) ? 3 : Jobs.Any(j => j.DeletesFrom is not null) ? 2 : 1);
        writer.Write(Slot);
        writer.Write(ConfirmedLsn);
        writer.Write(SavedAt);
        writer.Write(Paused);
        writer.Write(LastSignalLsn);
        writer.WriteArrayHeader(Jobs.Count);
        foreach (var job in Jobs)
            job.Write(ref writer);
        writer.WriteArrayHeader(Finished.Count);
        foreach (var finished in Finished)
            finished.Write(ref writer);
        if (Partitions is null)
        {
            writer.WriteNil();
        }
        else
        {
            writer.WriteArrayHeader(Partitions.Count);
            foreach (var partition in Partitions)
                partition.Write(ref writer);
        }
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <exception cref="DBSyncException">The bytes are not a checkpoint this version can read.</exception>
    public static Checkpoint Deserialize(ReadOnlyMemory<byte> bytes, string source)
    {
        try
        {
            var reader = new MessagePackReader(bytes);
            var fields = reader.ReadArrayHeader();
            var version = reader.ReadInt32();
            if (version > CurrentVersion || version < 1)
            {
                throw new DBSyncException(
                    $"Checkpoint {source} has version {version}; this DBSync reads versions 1 to {CurrentVersion}. It was written by a newer DBSync: upgrade, or delete the checkpoint to start over (a new snapshot).");
            }
            var checkpoint = new Checkpoint
            {
                Slot = reader.ReadString() ?? "",
                ConfirmedLsn = reader.ReadUInt64(),
                SavedAt = reader.ReadDateTime(),
                Paused = reader.ReadBoolean(),
                LastSignalLsn = reader.ReadUInt64(),
                Jobs = ReadJobs(ref reader),
                Finished = fields > 7 ? ReadFinished(ref reader) : [],
                Partitions = fields > 8 ? ReadPartitions(ref reader) : null,
            };
            for (var i = 9; i < fields; i++)
                reader.Skip(); // fields of a later minor layout
            return checkpoint;
        }
        catch (MessagePackSerializationException e)
        {
            throw new DBSyncException($"Checkpoint {source} is damaged ({e.Message}). Delete it to start over; the snapshot in progress then has to be requested again.", e);
        }
        catch (EndOfStreamException e)
        {
            throw new DBSyncException($"Checkpoint {source} is truncated. Delete it to start over; the snapshot in progress then has to be requested again.", e);
        }
    }

    private static JobState[] ReadJobs(ref MessagePackReader reader)
    {
        var jobs = new JobState[reader.ReadArrayHeader()];
        for (var i = 0; i < jobs.Length; i++)
            jobs[i] = JobState.Read(ref reader);
        return jobs;
    }

    private static SavedPartition[]? ReadPartitions(ref MessagePackReader reader)
    {
        if (reader.TryReadNil())
            return null;
        var partitions = new SavedPartition[reader.ReadArrayHeader()];
        for (var i = 0; i < partitions.Length; i++)
            partitions[i] = SavedPartition.Read(ref reader);
        return partitions;
    }

    private static FinishedSnapshot[] ReadFinished(ref MessagePackReader reader)
    {
        var finished = new FinishedSnapshot[reader.ReadArrayHeader()];
        for (var i = 0; i < finished.Length; i++)
            finished[i] = FinishedSnapshot.Read(ref reader);
        return finished;
    }
}

/// <summary>A leaf partition of a mapped partitioned table, as the checkpoint keeps it: enough to tell, at the next
/// reading, a partition attached or detached since (by <paramref name="Oid"/>) and one whose storage was replaced.</summary>
/// <param name="Oid">The partition's oid.</param>
/// <param name="Schema">The mapped table's schema.</param>
/// <param name="Table">The mapped table's name.</param>
/// <param name="Name">The partition's name, as the log shows it.</param>
/// <param name="Qualified">The partition's quoted, schema-qualified name.</param>
/// <param name="Kind">Its <c>relkind</c>.</param>
/// <param name="Bound">Its partition bound, as PostgreSQL prints it.</param>
/// <param name="FileNode">Its <c>relfilenode</c>.</param>
internal sealed record SavedPartition(uint Oid, string Schema, string Table, string Name, string Qualified, char Kind, string? Bound, uint FileNode)
{
    internal void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(8);
        writer.Write(Oid);
        writer.Write(Schema);
        writer.Write(Table);
        writer.Write(Name);
        writer.Write(Qualified);
        writer.Write((ushort)Kind);
        writer.Write(Bound);
        writer.Write(FileNode);
    }

    internal static SavedPartition Read(ref MessagePackReader reader)
    {
        var fields = reader.ReadArrayHeader();
        var partition = new SavedPartition(reader.ReadUInt32(), reader.ReadString() ?? "", reader.ReadString() ?? "", reader.ReadString() ?? "",
            reader.ReadString() ?? "", (char)reader.ReadUInt16(), reader.ReadString(), reader.ReadUInt32());
        for (var i = 8; i < fields; i++)
            reader.Skip();
        return partition;
    }
}

/// <summary>One table's snapshot, queued or under way.</summary>
internal sealed record JobState
{
    public required string Schema { get; init; }

    public required string Name { get; init; }

    public string? Filter { get; init; }

    public IReadOnlyList<string?> FilterParameters { get; init; } = [];

    /// <summary>The surrogate chunk key column, or null for the primary key.</summary>
    public string? ChunkKey { get; init; }

    /// <summary>A table that held rows of this one and left it without delete events (a detached partition, as a quoted
    /// qualified name): its rows that the table no longer has are delivered as <see cref="ChangeKind.Delete"/> changes
    /// instead of the table's rows as Read. Null for a snapshot.</summary>
    public string? DeletesFrom { get; init; }

    /// <summary>The largest chunk key when the table's snapshot started (as text); null before it starts or when empty.</summary>
    public IReadOnlyList<string>? MaxKey { get; init; }

    /// <summary>The last key of the last completed chunk; null before the first.</summary>
    public IReadOnlyList<string>? LastKey { get; init; }

    public bool Started { get; init; }

    public long Chunks { get; init; }

    public long RowsRead { get; init; }

    public long RowsEmitted { get; init; }

    /// <summary>The key range split for parallel reads (<see cref="DBSyncOptions.SnapshotParallelism"/>), in key order,
    /// each with its own progress; null when the table is read as one range from <see cref="LastKey"/>.</summary>
    public IReadOnlyList<SegmentState>? Segments { get; init; }

    public string DisplayName => $"{Schema}.{Name}";

    /// <summary>What the job is about, for logs: the table, or the rows of a table that left it.</summary>
    public string Description => DeletesFrom is null ? DisplayName : $"{DisplayName} (the rows of {DeletesFrom} it no longer has, as deletes)";

    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(Segments is not null ? 13 : DeletesFrom is null ? 11 : 12);
        writer.Write(Schema);
        writer.Write(Name);
        writer.Write(Filter);
        WriteStrings(ref writer, FilterParameters);
        writer.Write(ChunkKey);
        WriteStrings(ref writer, MaxKey);
        WriteStrings(ref writer, LastKey);
        writer.Write(Started);
        writer.Write(Chunks);
        writer.Write(RowsRead);
        writer.Write(RowsEmitted);
        if (DeletesFrom is not null || Segments is not null)
            writer.Write(DeletesFrom);
        if (Segments is not null)
        {
            writer.WriteArrayHeader(Segments.Count);
            foreach (var segment in Segments)
            {
                writer.WriteArrayHeader(3);
                WriteStrings(ref writer, segment.Upper);
                WriteStrings(ref writer, segment.LastKey);
                writer.Write(segment.Done);
            }
        }
    }

    public static JobState Read(ref MessagePackReader reader)
    {
        var fields = reader.ReadArrayHeader();
        var job = new JobState
        {
            Schema = reader.ReadString() ?? "",
            Name = reader.ReadString() ?? "",
            Filter = reader.ReadString(),
            FilterParameters = ReadStrings(ref reader) ?? [],
            ChunkKey = reader.ReadString(),
            MaxKey = ReadStrings(ref reader)!,
            LastKey = ReadStrings(ref reader)!,
            Started = reader.ReadBoolean(),
            Chunks = reader.ReadInt64(),
            RowsRead = reader.ReadInt64(),
            RowsEmitted = reader.ReadInt64(),
        };
        if (fields > 11)
            job = job with { DeletesFrom = reader.ReadString() };
        if (fields > 12)
        {
            var segments = new SegmentState[reader.ReadArrayHeader()];
            for (var i = 0; i < segments.Length; i++)
            {
                var segmentFields = reader.ReadArrayHeader();
                segments[i] = new SegmentState(ReadStrings(ref reader)!, ReadStrings(ref reader)!, reader.ReadBoolean());
                for (var f = 3; f < segmentFields; f++)
                    reader.Skip();
            }
            job = job with { Segments = segments };
        }
        for (var i = 13; i < fields; i++)
            reader.Skip();
        return job;
    }

    private static void WriteStrings(ref MessagePackWriter writer, IReadOnlyList<string?>? values)
    {
        if (values is null)
        {
            writer.WriteNil();
            return;
        }
        writer.WriteArrayHeader(values.Count);
        foreach (var value in values)
            writer.Write(value);
    }

    private static string?[]? ReadStrings(ref MessagePackReader reader)
    {
        if (reader.TryReadNil())
            return null;
        var values = new string?[reader.ReadArrayHeader()];
        for (var i = 0; i < values.Length; i++)
            values[i] = reader.ReadString();
        return values;
    }
}

/// <summary>One range of a table's key split for parallel reads: keys after the segment before's <paramref name="Upper"/> (from
/// the start for the first) up to and including <paramref name="Upper"/>; the last key of its last delivered chunk (null
/// before the first); whether every chunk of it is delivered.</summary>
internal sealed record SegmentState(IReadOnlyList<string> Upper, IReadOnlyList<string>? LastKey, bool Done);
