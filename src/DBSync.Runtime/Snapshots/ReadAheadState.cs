namespace DBSync.Snapshots;

/// <summary>Where the chunks of one table's snapshot stand (<see cref="ChunkReadAhead"/>).</summary>
internal enum ReadAheadState
{
    /// <summary>The chunk before is delivered, or none was read yet; the next one may be in hand, read ahead. A pause or a
    /// cancellation takes effect here.</summary>
    NextChunk,

    /// <summary>No chunk in hand: the next one is read (low watermark, then the chunk), its high watermark written, and
    /// the one after it read ahead.</summary>
    Reading,

    /// <summary>The chunk's high watermark is written and, unless it is the last, the next chunk is read ahead: waiting
    /// for the stream to pass the high watermark and deliver the chunk.</summary>
    AwaitingHigh,

    /// <summary>The stream asked for the chunk again: the chunk read ahead is given up, and the chunk is read again once
    /// every transaction that either window could not record is visible.</summary>
    ReadingAgain,

    /// <summary>Stopped for a pause; a chunk read ahead had its window closed with nothing emitted. Final.</summary>
    Paused,

    /// <summary>Every chunk is delivered. Final.</summary>
    Done,
}
