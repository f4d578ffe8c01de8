using System.Buffers;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.Internal;
using Npgsql.Replication.PgOutput;
using NpgsqlTypes;

namespace DBSync.Replication.Transport;

/// <summary>
/// The stream through Npgsql's <see cref="LogicalReplicationConnection"/>, raw frames copied into a pooled buffer. Npgsql
/// answers keepalives and sends status updates on its own timer; a read waits on the thread pool.
/// </summary>
internal sealed class NpgsqlTransport : IReplicationTransport
{
    private readonly LogicalReplicationConnection _connection;
    private readonly CancellationTokenSource _readCancellation = new();
    private IAsyncEnumerator<XLogDataMessage>? _frames;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
    private int _length;

    private NpgsqlTransport(LogicalReplicationConnection connection) => _connection = connection;

    public string Name => "npgsql";

    public int BackendPid => _connection.ProcessID;

    public ulong LastReceivedLsn => (ulong)_connection.LastReceivedLsn;

    public ReadOnlySpan<byte> Frame => _buffer.AsSpan(0, _length);

    public ulong FrameLsn { get; private set; }

    public static async Task<NpgsqlTransport> OpenAsync(string connectionString, StreamTimings timings, CancellationToken cancellationToken)
    {
        var connection = new LogicalReplicationConnection(connectionString)
        {
            WalReceiverStatusInterval = timings.StatusInterval,
            WalReceiverTimeout = timings.ReceiveTimeout,
        };
        try
        {
            await connection.Open(cancellationToken).ConfigureAwait(false);
            return new NpgsqlTransport(connection);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public ValueTask StartAsync(string slot, ulong start, IReadOnlyList<KeyValuePair<string, string>> pluginOptions, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
            return ValueTask.FromCanceled(cancellationToken);
        // The frames are enumerated lazily: START_REPLICATION goes out with the first read, and a stop before it never
        // sends it.
        var options = pluginOptions.Select(o => new KeyValuePair<string, string?>(o.Key, o.Value)).ToList();
        _frames = _connection.StartLogicalReplication(new PgOutputReplicationSlot(slot), _readCancellation.Token, new NpgsqlLogSequenceNumber(start), options, bypassingStream: false)
            .GetAsyncEnumerator(_readCancellation.Token);
        return default;
    }

    /// <remarks>A cancellation of <paramref name="cancellationToken"/> while the read waits ends the stream (the
    /// enumeration's token is the transport's own): the read ends with <see cref="OperationCanceledException"/>.</remarks>
    public async ValueTask<bool> ReadFrameAsync(CancellationToken cancellationToken)
    {
        var frames = _frames ?? throw new InvalidOperationException("StartAsync comes first.");
        cancellationToken.ThrowIfCancellationRequested();
        await using var registration = cancellationToken.Register(static state => ((CancellationTokenSource)state!).Cancel(), _readCancellation).ConfigureAwait(false);
        try
        {
            if (_readCancellation.IsCancellationRequested || !await frames.MoveNextAsync().ConfigureAwait(false))
                return false;
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("The read of the replication stream was cancelled.", e, cancellationToken);
        }
        var frame = frames.Current;
        _length = checked((int)frame.Data.Length);
        if (_buffer.Length < _length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(_length);
        }
        await frame.Data.ReadExactlyAsync(_buffer.AsMemory(0, _length), _readCancellation.Token).ConfigureAwait(false);
        FrameLsn = (ulong)frame.WalStart;
        return true;
    }

    public void SetConfirmed(ulong lsn) => _connection.SetReplicationStatus(new NpgsqlLogSequenceNumber(lsn));

    public async Task FlushStatusAsync()
    {
        try
        {
            await _connection.SendStatusUpdate(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or NpgsqlException or ObjectDisposedException or TimeoutException)
        {
            // The connection is already gone; the server keeps the last position it received.
        }
    }

    public async Task EndStreamAsync(bool flushStatus)
    {
        // Before the first frame the START_REPLICATION handshake may still be under way: a status update written into
        // it can stall, and there is nothing new to confirm yet. Never let the flush hold up the cancellation.
        if (flushStatus)
            await FlushStatusAsync().ConfigureAwait(false);
        try
        {
            await _readCancellation.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The transport is already closed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _readCancellation.CancelAsync().ConfigureAwait(false);
            if (_frames is not null)
                await _frames.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or NpgsqlException or IOException or InvalidOperationException)
        {
            // Ending a stream that already failed.
        }
        finally
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
            _readCancellation.Dispose();
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
