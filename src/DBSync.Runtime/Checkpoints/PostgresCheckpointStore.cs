using System.Data;
using System.Text.RegularExpressions;
using DBSync.Internal;
using Npgsql;

namespace DBSync;

/// <summary>
/// Keeps checkpoints in a PostgreSQL table, by default <c>public.dbsync_checkpoint</c> in the source database:
/// <c>(slot_name text PRIMARY KEY, checkpoint bytea, saved_at timestamptz)</c>. The table is created on the first save;
/// the role then needs <c>CREATE</c> on the schema (or create the table once as its owner and grant
/// <c>SELECT, INSERT, UPDATE</c> on it).
/// </summary>
public sealed partial class PostgresCheckpointStore : ICheckpointStore, IFencedCheckpointStore, IAsyncDisposable
{
    private const string UndefinedTable = "42P01";
    private const string InsufficientPrivilege = "42501";

    private readonly ConnectionPool _connections;
    private readonly bool _ownsPool;
    private readonly string _qualifiedTable;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private NpgsqlConnection? _saveConnection;

    /// <summary>Creates a store.</summary>
    /// <param name="connectionString">An Npgsql connection string (the source database, or any other).</param>
    /// <param name="table">The table, <c>schema.name</c> or <c>name</c> (then in <c>public</c>): lower-case letters,
    /// digits and underscores.</param>
    /// <exception cref="ArgumentException">The table name is not valid.</exception>
    public PostgresCheckpointStore(string connectionString, string table = "public.dbsync_checkpoint")
        : this(new ConnectionPool(ValidConnectionString(connectionString)), table)
    {
        _ownsPool = true;
    }

    /// <summary>A store on the pipeline's own pool (the default store, in the source database).</summary>
    internal PostgresCheckpointStore(ConnectionPool connections, string table = "public.dbsync_checkpoint")
    {
        ArgumentNullException.ThrowIfNull(table);
        if (!TableName().IsMatch(table))
        {
            throw new ArgumentException(
                $"Checkpoint table '{table}' is not valid: use [schema.]name with lower-case letters, digits and underscores (for example 'dbsync.checkpoint').",
                nameof(table));
        }
        _connections = connections;
        var parts = table.Contains('.', StringComparison.Ordinal) ? table.Split('.') : ["public", table];
        Table = $"{parts[0]}.{parts[1]}";
        _qualifiedTable = $"{SyncTableInfo.QuoteIdentifier(parts[0])}.{SyncTableInfo.QuoteIdentifier(parts[1])}";
    }

    /// <summary>The checkpoint table, <c>schema.name</c>.</summary>
    public string Table { get; }

    /// <inheritdoc />
    public async Task<byte[]?> LoadAsync(string slotName, CancellationToken cancellationToken)
    {
        await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT checkpoint FROM {_qualifiedTable} WHERE slot_name = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = slotName });
        try
        {
            return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as byte[];
        }
        catch (PostgresException e) when (e.SqlState == UndefinedTable)
        {
            return null; // nothing was ever saved
        }
        catch (PostgresException e) when (e.SqlState == InsufficientPrivilege)
        {
            throw new DBSyncConfigurationException(
                $"Cannot read checkpoint table {Table} ({e.MessageText}). Grant SELECT, INSERT, UPDATE ON {Table} to the role DBSync connects as.", e);
        }
    }

    /// <summary>Deletes the checkpoint of <paramref name="slotName"/> (after its slot was dropped: a new slot starts
    /// without one); false when there was none.</summary>
    public async Task<bool> DeleteAsync(string slotName, CancellationToken cancellationToken = default)
    {
        await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"DELETE FROM {_qualifiedTable} WHERE slot_name = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = slotName });
        try
        {
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
        }
        catch (PostgresException e) when (e.SqlState == UndefinedTable)
        {
            return false; // nothing was ever saved
        }
        catch (PostgresException e) when (e.SqlState == InsufficientPrivilege)
        {
            throw new DBSyncConfigurationException($"Cannot delete from checkpoint table {Table} ({e.MessageText}). Grant DELETE ON {Table} to the role, or delete the row as its owner.", e);
        }
    }

    /// <inheritdoc />
    /// <remarks>Saves come after every snapshot chunk, so they reuse one open connection and take one round trip.</remarks>
    public Task SaveAsync(string slotName, ReadOnlyMemory<byte> checkpoint, CancellationToken cancellationToken)
        => SaveAsync(slotName, checkpoint, walSenderPid: null, cancellationToken);

    Task<bool> IFencedCheckpointStore.SaveWhileHoldingAsync(string slotName, ReadOnlyMemory<byte> checkpoint, int walSenderPid, CancellationToken cancellationToken)
        => SaveAsync(slotName, checkpoint, walSenderPid, cancellationToken);

    async Task<bool> IFencedCheckpointStore.DeposedAsync(string slotName, int walSenderPid, CancellationToken cancellationToken)
    {
        await using var connection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active_pid <> $2) " +
            "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $2)", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = slotName });
        command.Parameters.Add(new NpgsqlParameter { Value = walSenderPid });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true;
    }

    private async Task<bool> SaveAsync(string slotName, ReadOnlyMemory<byte> checkpoint, int? walSenderPid, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            try
            {
                return await SaveOnceAsync(slotName, checkpoint, walSenderPid, cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidOperationException) when (_saveConnection is { FullState: not ConnectionState.Open })
            {
                // The kept connection died between saves (a server restart, a dropped network): once more on a new one.
                // If the server is still away, opening it fails with the connection error.
                await CloseAsync().ConfigureAwait(false);
                return await SaveOnceAsync(slotName, checkpoint, walSenderPid, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (PostgresException e) when (e.SqlState == InsufficientPrivilege)
        {
            throw new DBSyncConfigurationException(
                $"Cannot write checkpoint table {Table} ({e.MessageText}). Grant SELECT, INSERT, UPDATE ON {Table} to the role DBSync connects as, " +
                "or set DBSyncOptions.CheckpointStore to another store (for example new FileCheckpointStore(directory)).", e);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException)
        {
            // The connection may be broken or mid-command: the next save opens a new one.
            await CloseAsync().ConfigureAwait(false);
            throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<bool> SaveOnceAsync(string slotName, ReadOnlyMemory<byte> checkpoint, int? walSenderPid, CancellationToken cancellationToken)
    {
        if (_saveConnection is { FullState: not ConnectionState.Open })
            await CloseAsync().ConfigureAwait(false);
        if (_saveConnection is null)
        {
            _saveConnection = await _connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        try
        {
            return await UpsertAsync(_saveConnection, slotName, checkpoint, walSenderPid, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == UndefinedTable)
        {
            await CreateTableAsync(_saveConnection, cancellationToken).ConfigureAwait(false);
            return await UpsertAsync(_saveConnection, slotName, checkpoint, walSenderPid, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Closes the connection kept for saves, and the store's own pool (a later call opens a new one).</summary>
    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await CloseAsync().ConfigureAwait(false);
            if (_ownsPool)
                await _connections.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task CloseAsync()
    {
        if (_saveConnection is { } connection)
        {
            _saveConnection = null;
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Writes the checkpoint; with <paramref name="walSenderPid"/>, only if that walsender streams from the slot
    /// now (checked in the same statement). Whether it was written.</summary>
    private async Task<bool> UpsertAsync(NpgsqlConnection connection, string slotName, ReadOnlyMemory<byte> checkpoint, int? walSenderPid, CancellationToken cancellationToken)
    {
        // Durable on the source itself, without waiting for synchronous standbys: a snapshot must not stall while a
        // standby is away (the slot, too, lives only on this server). One batch: one round trip.
        await using var batch = new NpgsqlBatch(connection);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("BEGIN"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SET LOCAL synchronous_commit = local"));
        var fence = walSenderPid is null ? "" : " WHERE EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1 AND active_pid = $3)";
        var upsert = new NpgsqlBatchCommand(
            $"INSERT INTO {_qualifiedTable} (slot_name, checkpoint, saved_at) SELECT $1, $2, now(){fence} " +
            "ON CONFLICT (slot_name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, saved_at = EXCLUDED.saved_at");
        upsert.Parameters.Add(new NpgsqlParameter { Value = slotName });
        upsert.Parameters.Add(new NpgsqlParameter { Value = checkpoint.ToArray() });
        if (walSenderPid is { } pid)
            upsert.Parameters.Add(new NpgsqlParameter { Value = pid });
        batch.BatchCommands.Add(upsert);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("COMMIT"));
        try
        {
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return upsert.RecordsAffected > 0;
        }
        catch (PostgresException) when (connection.FullState == ConnectionState.Open)
        {
            // A failed statement leaves the explicit transaction open (the rest of the batch was skipped). A connection the
            // server ended has nothing to roll back: its error is the one to report.
            await using var rollback = new NpgsqlCommand("ROLLBACK", connection);
            await rollback.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    private async Task CreateTableAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var sql = $"CREATE TABLE IF NOT EXISTS {_qualifiedTable} (slot_name text PRIMARY KEY, checkpoint bytea NOT NULL, saved_at timestamptz NOT NULL)";
        try
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (var command = new NpgsqlCommand("SET LOCAL synchronous_commit = local; " + sql, connection, transaction))
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (ConcurrentDdl.CreatedMeanwhile(e))
        {
            // another instance created it at the same moment
        }
        catch (PostgresException e) when (e.SqlState is InsufficientPrivilege or "3F000")
        {
            throw new DBSyncConfigurationException(
                $"Cannot create checkpoint table {Table} ({e.MessageText}). Create it once as a privileged role: {sql}; " +
                $"GRANT SELECT, INSERT, UPDATE ON {Table} TO <role>; or set DBSyncOptions.CheckpointStore to another store.", e);
        }
    }

    private static string ValidConnectionString(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return connectionString;
    }

    [GeneratedRegex("^([a-z_][a-z0-9_]{0,62}\\.)?[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex TableName();
}
