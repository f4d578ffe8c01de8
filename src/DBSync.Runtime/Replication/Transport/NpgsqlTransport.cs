using System.Buffers;
using DBSync.Internal;
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
    /// <summary>How long a read may go on after <see cref="EndStreamAsync"/> before the walsender is ended (as the direct
    /// transport closes its socket after the same time).</summary>
    private static readonly TimeSpan s_endStreamTimeout = TimeSpan.FromSeconds(5);

    private readonly LogicalReplicationConnection _connection;
    private readonly string _connectionString;
    private readonly CancellationTokenSource _readCancellation = new();
    private IAsyncEnumerator<XLogDataMessage>? _frames;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
    private int _length;
    private CancellationToken _readToken;
    private CancellationTokenRegistration _readRegistration;
    private volatile bool _reading;
    private Task<bool>? _started;
    private volatile bool _walSenderEnded;

    private NpgsqlTransport(LogicalReplicationConnection connection, string connectionString)
    {
        _connection = connection;
        _connectionString = connectionString;
        BackendPid = connection.ProcessID;
    }

    public string Name => "npgsql";

    public int BackendPid { get; }

    public ulong LastReceivedLsn => (ulong)_connection.LastReceivedLsn;

    public ReadOnlySpan<byte> Frame => _buffer.AsSpan(0, _length);

    public ulong FrameLsn { get; private set; }

    public static async Task<NpgsqlTransport> OpenAsync(string connectionString, StreamTimings timings, CancellationToken cancellationToken)
    {
        // Named DBSync in pg_stat_activity unless the connection string names it, as the direct connection is.
        var connection = new LogicalReplicationConnection(ConnectionPool.Named(connectionString))
        {
            WalReceiverStatusInterval = timings.StatusInterval,
            WalReceiverTimeout = timings.ReceiveTimeout,
        };
        try
        {
            await connection.Open(cancellationToken).ConfigureAwait(false);
            return new NpgsqlTransport(connection, connectionString);
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
    /// enumeration's token is the transport's own): the read ends with <see cref="OperationCanceledException"/>. As in
    /// <see cref="DirectTransport"/>, the token's registration is made once and kept (none per frame), and it acts only
    /// while a read is under way, so a token cancelled after the stream's last read leaves the graceful end intact.</remarks>
    public ValueTask<bool> ReadFrameAsync(CancellationToken cancellationToken)
    {
        if (_started is not { } started)
            return ReadNextAsync(cancellationToken);
        _started = null; // the read TryReadReceivedFrame started
        return new ValueTask<bool>(started);
    }

    /// <remarks>Npgsql's reader has no look at its buffer: the read starts, and if it does not complete at once it is
    /// kept for the next <see cref="ReadFrameAsync"/>.</remarks>
    public bool TryReadReceivedFrame(CancellationToken cancellationToken)
    {
        if (_started is not null)
            return false;
        var read = ReadNextAsync(cancellationToken);
        if (read.IsCompletedSuccessfully)
        {
            if (read.Result)
                return true;
            _started = Task.FromResult(false); // the stream ended: the next read says so
            return false;
        }
        if (read.IsFaulted)
            read.GetAwaiter().GetResult(); // throws the read's error
        _started = read.AsTask();
        return false;
    }

    private async ValueTask<bool> ReadNextAsync(CancellationToken cancellationToken)
    {
        var frames = _frames ?? throw new InvalidOperationException("StartAsync comes first.");
        if (cancellationToken != _readToken)
        {
            _readRegistration.Dispose();
            _readToken = cancellationToken;
            _readRegistration = cancellationToken.Register(static state =>
            {
                var transport = (NpgsqlTransport)state!;
                if (transport._reading)
                    transport._readCancellation.Cancel();
            }, this);
        }
        _reading = true;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_readCancellation.IsCancellationRequested || !await frames.MoveNextAsync().ConfigureAwait(false))
                return false;
        }
        catch (Exception) when (_walSenderEnded)
        {
            return false; // the end EndStreamAsync asked for, by the server
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested && e.CancellationToken != cancellationToken)
        {
            throw new OperationCanceledException("The read of the replication stream was cancelled.", e, cancellationToken);
        }
        finally
        {
            _reading = false;
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
            return; // the transport is already closed
        }
        _ = EndStalledReadAsync();
    }

    /// <summary>
    /// Npgsql ends a read by a cancel request to the walsender. One that reaches the walsender before it started the
    /// stream (START_REPLICATION sent with the first read, not yet answered) is dropped by the server, and the read then
    /// goes on for ever, kept alive by keepalives. So a read still under way <see cref="s_endStreamTimeout"/> after the
    /// end was asked for is ended by the server: the walsender is terminated over an ordinary connection, and the read
    /// returns false.
    /// </summary>
    private async Task EndStalledReadAsync()
    {
        await Task.Delay(s_endStreamTimeout).ConfigureAwait(false);
        if (!_reading)
            return;
        _walSenderEnded = true;
        try
        {
            // A connection of its own, not pooled.
            var builder = new NpgsqlConnectionStringBuilder(_connectionString) { Pooling = false };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync().ConfigureAwait(false);
            await SlotRelease.TerminateWalSenderAsync(connection, BackendPid).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The server cannot be reached (or refuses): the read then ends only when the connection does.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _readRegistration.Dispose();
        try
        {
            await _readCancellation.CancelAsync().ConfigureAwait(false);
            // A read TryReadReceivedFrame started and nobody awaited (the session ended first) ends with the cancellation;
            // Npgsql refuses to dispose its reader while a read is under way.
            if (_started is { } started)
            {
                _started = null;
                await ((Task)started).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
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
