using System.Diagnostics;
using DBSync.Internal;
using Microsoft.Extensions.Logging;

namespace DBSync.Snapshots;

/// <summary>
/// The chunks of one table's snapshot, DBLog style, as a state machine (<see cref="ReadAheadState"/>): per chunk a low
/// watermark, the chunk, a high watermark, then a wait until the stream has passed the high watermark and delivered the
/// chunk's remaining rows. The next chunk is read while the stream delivers the one before; its low watermark is written
/// after that one's high watermark, so their windows follow each other in the stream.
/// </summary>
internal sealed class ChunkReadAhead
{
    private readonly ISnapshotSql _sql;
    private readonly WatermarkChannel _channel;
    private readonly SnapshotThrottle _throttle;
    private readonly SnapshotTarget _target;
    private readonly SnapshotQuery _query;
    private readonly int _chunkSize;
    private readonly int _windowMaxChanges;
    private readonly Func<bool> _paused;
    private readonly Func<DeliveredChunk, CancellationToken, Task> _onDelivered;
    private readonly ILogger _logger;
    private long _delivered;
    private IReadOnlyList<string>? _after;
    private long _chunk;
    private int _attempts;
    private OpenChunk? _current;
    private OpenChunk? _ahead;
    private Task<ChunkOutcome>? _outcome;
    private uint[] _waitFor = [];

    /// <param name="sql">The snapshot's connection.</param>
    /// <param name="channel">Where the watermarks go and the stream's outcomes come from.</param>
    /// <param name="throttle">The pause before each chunk read ahead.</param>
    /// <param name="target">The table.</param>
    /// <param name="query">The table's chunk query.</param>
    /// <param name="chunks">Chunks delivered before (in an earlier run, or before a pause).</param>
    /// <param name="after">The last key of the last of them; null before the first.</param>
    /// <param name="options">The chunk size and the window's limit.</param>
    /// <param name="paused">Whether snapshots are paused now.</param>
    /// <param name="onDelivered">A chunk was delivered (to record before the next one).</param>
    /// <param name="logger">For re-reads.</param>
    public ChunkReadAhead(ISnapshotSql sql, WatermarkChannel channel, SnapshotThrottle throttle, SnapshotTarget target, SnapshotQuery query,
        long chunks, IReadOnlyList<string>? after, DBSyncOptions options, Func<bool> paused, Func<DeliveredChunk, CancellationToken, Task> onDelivered,
        ILogger logger)
    {
        _sql = sql;
        _channel = channel;
        _throttle = throttle;
        _target = target;
        _query = query;
        _delivered = chunks;
        _after = after;
        _chunkSize = options.SnapshotChunkSize;
        _windowMaxChanges = options.SnapshotWindowMaxChanges;
        _paused = paused;
        _onDelivered = onDelivered;
        _logger = logger;
        State = query.MaxKey is null ? ReadAheadState.Done : ReadAheadState.NextChunk;
    }

    public ReadAheadState State { get; private set; }

    /// <summary>How long the last chunk read took (zero before the first): what the throttle paces by.</summary>
    public TimeSpan LastReadTime { get; private set; }

    private string Table => _target.Table.DisplayName;

    /// <summary>Runs until every chunk is delivered (true) or snapshots are paused (false).</summary>
    public async Task<bool> RunAsync(CancellationToken cancellationToken)
    {
        while (State is not (ReadAheadState.Done or ReadAheadState.Paused))
            await StepAsync(cancellationToken).ConfigureAwait(false);
        return State == ReadAheadState.Done;
    }

    /// <summary>Moves to the next state.</summary>
    public async Task<ReadAheadState> StepAsync(CancellationToken cancellationToken)
    {
        State = State switch
        {
            ReadAheadState.NextChunk => await NextChunkAsync(cancellationToken).ConfigureAwait(false),
            ReadAheadState.Reading => await ReadAsync(cancellationToken).ConfigureAwait(false),
            ReadAheadState.AwaitingHigh => await AwaitHighAsync(cancellationToken).ConfigureAwait(false),
            ReadAheadState.ReadingAgain => await ReadAgainAsync(cancellationToken).ConfigureAwait(false),
            _ => State,
        };
        return State;
    }

    private async Task<ReadAheadState> NextChunkAsync(CancellationToken cancellationToken)
    {
        if (_paused())
        {
            // Every low watermark written gets its high one before the window goes: a later window of this table must
            // not find this one open.
            if (_ahead is not null)
                await DiscardAheadAsync(cancellationToken).ConfigureAwait(false);
            return ReadAheadState.Paused;
        }
        cancellationToken.ThrowIfCancellationRequested();
        _chunk = _delivered + 1;
        _attempts = 0;
        if (_ahead is null)
            return ReadAheadState.Reading;
        (_current, _ahead, _attempts) = (_ahead, null, 1);
        return await CloseAndReadAheadAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<ReadAheadState> ReadAsync(CancellationToken cancellationToken)
    {
        _attempts++;
        _current = await OpenAsync(_after, _chunk, cancellationToken).ConfigureAwait(false);
        return await CloseAndReadAheadAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes the current chunk's high watermark and, unless it is the last, reads the next chunk while the stream
    /// delivers this one.</summary>
    private async Task<ReadAheadState> CloseAndReadAheadAsync(CancellationToken cancellationToken)
    {
        var current = _current!;
        _outcome = await _channel.WriteHighAsync(_sql, current.Window, cancellationToken).ConfigureAwait(false);
        if (!IsLast(current))
        {
            await _throttle.PaceAsync(_sql, Table, _chunk, current.ReadTime, cancellationToken).ConfigureAwait(false);
            _ahead = await OpenAsync(current.Last, _chunk + 1, cancellationToken).ConfigureAwait(false);
        }
        return ReadAheadState.AwaitingHigh;
    }

    private async Task<ReadAheadState> AwaitHighAsync(CancellationToken cancellationToken)
    {
        var current = _current!;
        var outcome = await _outcome!.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (outcome.FollowUp == ChunkFollowUp.None)
        {
            var last = IsLast(current);
            (_delivered, _after) = (_chunk, current.Last ?? _after);
            await _onDelivered(new DeliveredChunk(_chunk, current.Count, current.Last, outcome.Emitted, _attempts, last), cancellationToken).ConfigureAwait(false);
            return last ? ReadAheadState.Done : ReadAheadState.NextChunk;
        }

        // The shape changed, or the window filled up: read the chunk again once every transaction the window could not
        // record is visible, so that the new chunk reflects them. The chunk read after it is given up (it is read again
        // after this one), and what its own window could not record is waited for too.
        _waitFor = outcome.WaitFor;
        if (_ahead is not null)
            _waitFor = [.. _waitFor, .. await DiscardAheadAsync(cancellationToken).ConfigureAwait(false)];
        if (_waitFor.Length > 0)
            Log.ChunkRereadAfterOverflow(_logger, Table, _chunk, _windowMaxChanges, _waitFor.Length);
        else
            Log.ChunkReread(_logger, Table, _chunk);
        return ReadAheadState.ReadingAgain;
    }

    private async Task<ReadAheadState> ReadAgainAsync(CancellationToken cancellationToken)
    {
        await VisibilityFence.WaitUntilVisibleAsync(_sql, _waitFor, cancellationToken).ConfigureAwait(false);
        _waitFor = [];
        return ReadAheadState.Reading;
    }

    /// <summary>Writes a low watermark and reads chunk <paramref name="chunk"/> after <paramref name="after"/> (the window
    /// then holds it).</summary>
    private async Task<OpenChunk> OpenAsync(IReadOnlyList<string>? after, long chunk, CancellationToken cancellationToken)
    {
        var readTime = Stopwatch.StartNew();
        var window = await _channel.WriteLowAsync(_sql, cancellationToken).ConfigureAwait(false);
        var (count, last) = await _target.ReadChunkAsync(_sql, _query, chunk, after, _chunkSize, window, cancellationToken).ConfigureAwait(false);
        LastReadTime = readTime.Elapsed;
        return new OpenChunk(window, count, last, LastReadTime);
    }

    /// <summary>Gives up the chunk read ahead: its high watermark closes its window with nothing emitted. Returns the
    /// transactions its window could not record (it filled up): whatever is read next must wait for them.</summary>
    private async Task<uint[]> DiscardAheadAsync(CancellationToken cancellationToken)
    {
        var ahead = _ahead!;
        _ahead = null;
        _target.DiscardChunk(ahead.Window);
        var closed = await _channel.WriteHighAsync(_sql, ahead.Window, cancellationToken).ConfigureAwait(false);
        return (await closed.WaitAsync(cancellationToken).ConfigureAwait(false)).WaitFor;
    }

    /// <summary>A short chunk, or one that reached the maximum key, is the last (no empty round to find out).</summary>
    private bool IsLast(OpenChunk chunk) => chunk.Count < _chunkSize || (chunk.Last is not null && chunk.Last.SequenceEqual(_query.MaxKey!));

    /// <summary>A chunk read between its low watermark and a high one not yet written.</summary>
    private sealed record OpenChunk(long Window, int Count, IReadOnlyList<string>? Last, TimeSpan ReadTime);
}
