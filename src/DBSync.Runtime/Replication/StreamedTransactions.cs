using System.Buffers;
using System.Buffers.Binary;
using DBSync.Internal;
using DBSync.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DBSync.Replication;

/// <summary>
/// The in-progress transactions the server streams (<c>streaming 'on'</c>): each one's frames are kept, in order, until
/// its Stream Commit replays them or its Stream Abort drops them (a subtransaction's abort drops its frames only). While
/// the frames of all open transactions fit in <see cref="DBSyncOptions.StreamingMemoryLimit"/> they stay in pooled
/// segments; the transaction that would go past the limit moves to a temporary file and goes on there. The files hold
/// row data, so they are readable by their owner alone (0600), in a directory of DBSync's own (0700).
/// </summary>
/// <remarks>
/// One record per frame, the same bytes in memory and on disk: a MessagePack array of two, the frame's WAL position
/// (uint64) and the frame (bin 32). Fixed-width headers keep the offset of every record computable, so a
/// subtransaction's abort truncates the log at the offset where its first frame was written (subtransactions end in
/// nesting order, so everything after that offset is the aborted subtransaction's or its children's). Only the stream's
/// read loop uses this type.
/// </remarks>
internal sealed class StreamedTransactions : IDisposable
{
    /// <summary>Record header: array of 2 (0x92), uint64 (0xcf + 8 bytes), bin 32 (0xc6 + 4 bytes).</summary>
    internal const int HeaderLength = 15;

    private const int SegmentLength = 256 * 1024;

    private readonly Dictionary<uint, Transaction> _open = [];
    private readonly long _memoryLimit;
    private readonly ILogger _logger;
    private long _memory;

    /// <param name="memoryLimit">Bytes kept in memory over all open transactions.</param>
    /// <param name="spillParent">Where DBSync's spill directory is (created if missing); checked now, so that a directory
    /// DBSync must refuse stops the run at its start, not at the first large transaction.</param>
    /// <param name="logger">Logs each spill.</param>
    public StreamedTransactions(long memoryLimit, string spillParent, ILogger? logger = null)
    {
        _memoryLimit = memoryLimit;
        SpillDirectory = PrivateSpillDirectory.Prepare(spillParent);
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The directory spill files go to: <c>dbsync-&lt;user&gt;</c> in the configured (or temporary) directory.</summary>
    public string SpillDirectory { get; }

    /// <summary>Bytes held in memory by all open transactions (whole segments).</summary>
    public long MemoryBytes => _memory;

    /// <summary>Open transactions (streamed, not yet committed or aborted).</summary>
    public int Count => _open.Count;

    /// <summary>The largest number of bytes held in memory at once since this instance was created.</summary>
    public long PeakMemoryBytes { get; private set; }

    /// <summary>Stream Start: the transaction whose frames follow until Stream Stop.</summary>
    public Transaction Open(uint xid)
    {
        if (!_open.TryGetValue(xid, out var transaction))
        {
            transaction = new Transaction(this, xid);
            _open.Add(xid, transaction);
        }
        return transaction;
    }

    /// <summary>Stream Commit: the transaction's frames, to replay and then dispose; null when none was streamed.</summary>
    public Transaction? Take(uint xid) => _open.Remove(xid, out var transaction) ? transaction : null;

    /// <summary>Stream Abort of <paramref name="subXid"/> (the whole transaction when it equals <paramref name="xid"/>).
    /// An abort of a transaction that streamed nothing is ignored.</summary>
    public void Abort(uint xid, uint subXid)
    {
        if (!_open.TryGetValue(xid, out var transaction))
            return;
        if (subXid == xid)
        {
            _open.Remove(xid);
            transaction.Dispose();
        }
        else
        {
            transaction.AbortSubtransaction(subXid);
        }
    }

    /// <summary>Drops every open transaction (the connection is gone; the server sends them again from their start).</summary>
    public void Dispose()
    {
        foreach (var transaction in _open.Values)
            transaction.Dispose();
        _open.Clear();
    }

    private byte[] RentSegment()
    {
        _memory += SegmentLength;
        PeakMemoryBytes = Math.Max(PeakMemoryBytes, _memory);
        return ArrayPool<byte>.Shared.Rent(SegmentLength);
    }

    private void ReturnSegment(byte[] segment)
    {
        _memory -= SegmentLength;
        ArrayPool<byte>.Shared.Return(segment);
    }

    /// <summary>The frames of one streamed transaction.</summary>
    internal sealed class Transaction : IDisposable
    {
        private readonly StreamedTransactions _owner;
        private readonly List<byte[]> _segments = [];
        // Subtransactions in the order their first frames came, and each one's place in that list: a transaction may have
        // hundreds of thousands (a PL/pgSQL loop with an exception block), so neither a frame nor an abort searches.
        private readonly List<(uint SubXid, long Offset, long Frames)> _subtransactions = [];
        private readonly Dictionary<uint, int> _subtransactionIndex = [];
        private uint _lastXid;
        private FileStream? _file;
        private string? _filePath;
        private long _length;

        public Transaction(StreamedTransactions owner, uint xid)
        {
            _owner = owner;
            Xid = xid;
            _lastXid = xid;
        }

        public uint Xid { get; }

        /// <summary>Frames stored.</summary>
        public long FrameCount { get; private set; }

        /// <summary>The temporary file the frames went to, or null while they are in memory.</summary>
        public string? SpillPath => _file is null ? null : _filePath;

        /// <summary>Appends one frame of a stream block (its kind byte first).</summary>
        public void Append(ReadOnlySpan<byte> frame, ulong lsn)
        {
            // Every kind a block carries, but Origin, has the (sub)transaction id right after the kind byte.
            if (frame.Length >= 5 && frame[0] != (byte)PgOutputMessageKind.Origin)
            {
                // Runs of frames come from one (sub)transaction: only a change of id is looked up.
                var xid = BinaryPrimitives.ReadUInt32BigEndian(frame[1..]);
                if (xid != _lastXid)
                {
                    _lastXid = xid;
                    if (xid != Xid && _subtransactionIndex.TryAdd(xid, _subtransactions.Count))
                        _subtransactions.Add((xid, _length, FrameCount));
                }
            }

            Span<byte> header = stackalloc byte[HeaderLength];
            header[0] = 0x92;
            header[1] = 0xcf;
            BinaryPrimitives.WriteUInt64BigEndian(header[2..], lsn);
            header[10] = 0xc6;
            BinaryPrimitives.WriteUInt32BigEndian(header[11..], (uint)frame.Length);
            var record = HeaderLength + frame.Length;
            if (_file is null && _owner._memory + SegmentsNeeded(record) * (long)SegmentLength > _owner._memoryLimit)
                Spill();
            Write(header);
            Write(frame);
            FrameCount++;
        }

        private int SegmentsNeeded(int record)
        {
            var free = (_segments.Count * (long)SegmentLength) - _length;
            return free >= record ? 0 : (int)((record - free + SegmentLength - 1) / SegmentLength);
        }

        private void Write(ReadOnlySpan<byte> bytes)
        {
            if (_file is not null)
            {
                _file.Write(bytes);
                _length += bytes.Length;
                return;
            }
            while (!bytes.IsEmpty)
            {
                var segment = (int)(_length / SegmentLength);
                if (segment == _segments.Count)
                    _segments.Add(_owner.RentSegment());
                var offset = (int)(_length % SegmentLength);
                var take = Math.Min(bytes.Length, SegmentLength - offset);
                bytes[..take].CopyTo(_segments[segment].AsSpan(offset));
                bytes = bytes[take..];
                _length += take;
            }
        }

        /// <summary>Moves the frames so far to a temporary file; later frames are written there too.</summary>
        private void Spill()
        {
            var directory = _owner.SpillDirectory;
            _filePath = Path.Combine(directory, $"dbsync-stream-{Environment.ProcessId}-{Xid}-{Guid.NewGuid():N}.msgpack");
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew, // never an existing file or link
                Access = FileAccess.ReadWrite,
                Share = FileShare.Read,
                BufferSize = 64 * 1024,
                Options = FileOptions.DeleteOnClose | FileOptions.SequentialScan,
            };
            if (!OperatingSystem.IsWindows())
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            try
            {
                _file = new FileStream(_filePath, options);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new DBSyncConfigurationException(
                    $"DBSync cannot create a spill file for streamed transaction {Xid} in {directory} ({e.Message}); it needs a directory this process may " +
                    $"write to and nobody else may: {PrivateSpillDirectory.Fix}.", e);
            }
            var remaining = _length;
            foreach (var segment in _segments)
            {
                var take = (int)Math.Min(remaining, SegmentLength);
                _file.Write(segment, 0, take);
                remaining -= take;
                _owner.ReturnSegment(segment);
            }
            _segments.Clear();
            Log.StreamSpilled(_owner._logger, Xid, _owner._memoryLimit);
        }

        /// <summary>Drops the frames of <paramref name="subXid"/> and of every subtransaction that began after it.</summary>
        public void AbortSubtransaction(uint subXid)
        {
            if (!_subtransactionIndex.TryGetValue(subXid, out var index))
                return; // it streamed nothing, or went with a subtransaction it was nested in
            var (_, offset, frames) = _subtransactions[index];
            // Each entry is removed once: aborts cost what they drop, whatever their number.
            for (var i = index; i < _subtransactions.Count; i++)
                _subtransactionIndex.Remove(_subtransactions[i].SubXid);
            _subtransactions.RemoveRange(index, _subtransactions.Count - index);
            _lastXid = Xid;
            FrameCount = frames;
            if (_file is not null)
            {
                _file.Flush();
                _file.SetLength(offset);
                _file.Position = offset;
            }
            else
            {
                var keep = (int)((offset + SegmentLength - 1) / SegmentLength);
                for (var i = _segments.Count - 1; i >= keep; i--)
                {
                    _owner.ReturnSegment(_segments[i]);
                    _segments.RemoveAt(i);
                }
            }
            _length = offset;
        }

        /// <summary>A reader of the frames, in the order they were appended.</summary>
        public Reader OpenReader()
        {
            _file?.Flush();
            return new Reader(this);
        }

        private void Read(long position, Span<byte> destination)
        {
            if (_file is not null)
            {
                _file.Position = position;
                _file.ReadExactly(destination);
                return;
            }
            while (!destination.IsEmpty)
            {
                var offset = (int)(position % SegmentLength);
                var take = Math.Min(destination.Length, SegmentLength - offset);
                _segments[(int)(position / SegmentLength)].AsSpan(offset, take).CopyTo(destination);
                destination = destination[take..];
                position += take;
            }
        }

        public void Dispose()
        {
            foreach (var segment in _segments)
                _owner.ReturnSegment(segment);
            _segments.Clear();
            _file?.Dispose(); // opened with DeleteOnClose: the file goes with it
            _file = null;
        }

        /// <summary>Reads records back; frames are copied into a caller's buffer, grown from the pool as needed.</summary>
        internal struct Reader(Transaction transaction)
        {
            private long _position;

            public bool TryRead(ref byte[] buffer, out int length, out ulong lsn)
            {
                if (_position >= transaction._length)
                {
                    length = 0;
                    lsn = 0;
                    return false;
                }
                Span<byte> header = stackalloc byte[HeaderLength];
                transaction.Read(_position, header);
                if (header[0] != 0x92 || header[1] != 0xcf || header[10] != 0xc6)
                    throw new InvalidDataException($"Streamed transaction {transaction.Xid}: the record at offset {_position} of its buffer is not a (lsn, frame) MessagePack record.");
                lsn = BinaryPrimitives.ReadUInt64BigEndian(header[2..]);
                length = checked((int)BinaryPrimitives.ReadUInt32BigEndian(header[11..]));
                if (buffer.Length < length)
                {
                    if (buffer.Length > 0)
                        ArrayPool<byte>.Shared.Return(buffer);
                    buffer = ArrayPool<byte>.Shared.Rent(length);
                }
                transaction.Read(_position + HeaderLength, buffer.AsSpan(0, length));
                _position += HeaderLength + length;
                return true;
            }
        }
    }
}
