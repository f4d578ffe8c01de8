using System.Threading.Channels;
using DBSync.Replication;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Snapshots;

/// <summary>
/// Runs requested table snapshots one at a time beside the stream, DBLog style: per chunk it commits a low watermark,
/// reads the chunk (REPEATABLE READ, with its snapshot), hands it to the table's window, commits a high watermark, and
/// waits until the stream has passed the high watermark and delivered the chunk's remaining rows. The stream never
/// stops; no lock is taken and no transaction stays open between chunks.
/// </summary>
internal sealed class SnapshotCoordinator
{
    private const int RecentTransactions = 4096;

    private readonly DBSyncOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<Request> _requests = Channel.CreateUnbounded<Request>();
    private readonly object _lock = new();
    private readonly uint[] _recent = new uint[RecentTransactions];
    private int _recentCount;
    private TableRegistration? _active;
    private long _waitingChunk = -1;
    private TaskCompletionSource? _reached;
    private string _runId = "";

    public SnapshotCoordinator(DBSyncOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
        Prefix = Watermark.PrefixFor(options.SlotName);
    }

    /// <summary>The logical message prefix of this pipeline's watermarks.</summary>
    public string Prefix { get; }

    /// <summary>Queues a snapshot of <paramref name="table"/>; the task completes when all its rows were delivered, or is
    /// cancelled with <paramref name="cancellationToken"/> (before it starts, or between and during chunks).</summary>
    public Task RequestAsync(TableRegistration table, CancellationToken cancellationToken)
    {
        var request = new Request(table, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), cancellationToken);
        _requests.Writer.TryWrite(request);
        return request.Done.Task;
    }

    /// <summary>Stream side: a transaction committed (its xid is remembered for the visibility fence).</summary>
    public void OnCommitted(uint xid)
    {
        lock (_lock)
            _recent[_recentCount++ % RecentTransactions] = xid;
    }

    /// <summary>Stream side: one of this pipeline's watermark messages. Watermarks of another run are ignored.</summary>
    public ValueTask OnWatermarkAsync(ReadOnlySpan<byte> content, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        if (!Watermark.TryParse(content, out var watermark))
            return default;
        TableRegistration? active;
        lock (_lock)
        {
            if (watermark.RunId != _runId || _active is null)
                return default; // an earlier run's, or a stale one
            active = _active;
        }

        if (watermark.Kind == WatermarkKind.Low)
        {
            active.OnLowWatermark(watermark.Chunk);
            return default;
        }
        return HighAsync(active, watermark.Chunk, tx, lsn, cancellationToken);
    }

    private async ValueTask HighAsync(TableRegistration table, long chunk, TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        await table.OnHighWatermarkAsync(chunk, tx, lsn, cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            if (_waitingChunk == chunk)
                _reached?.TrySetResult();
        }
    }

    /// <summary>Runs queued snapshots until <paramref name="cancellationToken"/> is cancelled (the stream stopped).</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        _runId = Guid.NewGuid().ToString("N")[..12];
        await foreach (var request in _requests.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, request.Cancel);
            try
            {
                request.Cancel.ThrowIfCancellationRequested();
                await SnapshotTableAsync(request.Table, linked.Token).ConfigureAwait(false);
                request.Done.TrySetResult();
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                request.Done.TrySetCanceled(cancellationToken);
                throw;
            }
            catch (OperationCanceledException) when (request.Cancel.IsCancellationRequested)
            {
                Log.SnapshotCancelled(_logger, request.Table.Table.DisplayName);
                request.Done.TrySetCanceled(request.Cancel);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // The snapshot failed (the stream goes on); the caller's task carries the error.
                Log.SnapshotFailed(_logger, e, request.Table.Table.DisplayName);
                request.Done.TrySetException(e);
            }
        }
    }

    private async Task SnapshotTableAsync(TableRegistration table, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(_options.ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        // Watermarks must reach the WAL without waiting for synchronous standbys.
        await ExecuteAsync(connection, "SET synchronous_commit = local", cancellationToken).ConfigureAwait(false);
        var query = await SnapshotQuery.CreateAsync(connection, table.Table, cancellationToken).ConfigureAwait(false);

        lock (_lock)
            _active = table;
        table.BeginSnapshot();
        try
        {
            await FenceAsync(connection, table, cancellationToken).ConfigureAwait(false);
            Log.SnapshotStarted(_logger, table.Table.DisplayName, query.MaxKey is null ? "(empty)" : string.Join(", ", query.MaxKey));
            var rows = 0L;
            string[]? lastKey = null;
            for (var chunk = 1L; query.MaxKey is not null; chunk++)
            {
                await EmitAsync(connection, new Watermark(WatermarkKind.Low, _runId, chunk), cancellationToken).ConfigureAwait(false);
                var (count, last) = await table.ReadChunkAsync(connection, query, lastKey, _options.SnapshotChunkSize, chunk, cancellationToken).ConfigureAwait(false);
                await EmitAndWaitAsync(connection, chunk, cancellationToken).ConfigureAwait(false);
                rows += count;
                if (count < _options.SnapshotChunkSize)
                    break;
                lastKey = last;
                if (_options.SnapshotChunkDelay > TimeSpan.Zero)
                    await Task.Delay(_options.SnapshotChunkDelay, cancellationToken).ConfigureAwait(false);
            }
            Log.SnapshotCompleted(_logger, table.Table.DisplayName, rows);
        }
        finally
        {
            table.EndSnapshot();
            lock (_lock)
                _active = null;
        }
    }

    /// <summary>
    /// Chunk 0: a watermark pair with no rows. Once the stream passes it, every change of the table delivered after it
    /// is recorded by the window. Changes delivered before it were not, so wait until the transactions behind them are
    /// visible to new snapshots (a transaction can be decoded while its backend still waits for a synchronous standby);
    /// from then on no chunk can be older than a change already delivered.
    /// </summary>
    private async Task FenceAsync(NpgsqlConnection connection, TableRegistration table, CancellationToken cancellationToken)
    {
        await EmitAsync(connection, new Watermark(WatermarkKind.Low, _runId, 0), cancellationToken).ConfigureAwait(false);
        table.SetFence(0, SnapshotVisibility.Parse(await ScalarAsync(connection, "SELECT pg_current_snapshot()::text", cancellationToken).ConfigureAwait(false)));
        await EmitAndWaitAsync(connection, 0, cancellationToken).ConfigureAwait(false);

        uint[] delivered;
        lock (_lock)
            delivered = _recent.Take(Math.Min(_recentCount, RecentTransactions)).ToArray();
        while (true)
        {
            var visibility = SnapshotVisibility.Parse(await ScalarAsync(connection, "SELECT pg_current_snapshot()::text", cancellationToken).ConfigureAwait(false));
            if (delivered.All(visibility.Sees))
                return;
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task EmitAndWaitAsync(NpgsqlConnection connection, long chunk, CancellationToken cancellationToken)
    {
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _waitingChunk = chunk;
            _reached = reached;
        }
        await EmitAsync(connection, new Watermark(WatermarkKind.High, _runId, chunk), cancellationToken).ConfigureAwait(false);
        await reached.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task EmitAsync(NpgsqlConnection connection, Watermark watermark, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_logical_emit_message(true, $1, $2)", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = Prefix });
        command.Parameters.Add(new NpgsqlParameter { Value = watermark.Content });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<string> ScalarAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (string)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private sealed record Request(TableRegistration Table, TaskCompletionSource Done, CancellationToken Cancel);
}
