using DBSync.Cli.Database;
using DBSync.Replication;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Cli.Snapshots;

/// <summary>A row inserted into the signal table: its id, and a WAL position its commit comes after.</summary>
internal sealed record SentSignal(long Id, NpgsqlLogSequenceNumber After);

/// <summary>
/// Sends signals the way docs/snapshots.md's signal table describes (one row per signal, acted on by the DBSync client
/// that streams the table) and waits until the pipeline's checkpoint shows their effect.
/// </summary>
internal sealed class Signals
{
    private readonly TableName _table;

    /// <summary>The signal table named by <c>--signal-table</c>, under the rule of <see cref="DBSyncOptions.SignalTable"/>.</summary>
    public Signals(string signalTable)
    {
        var options = new DBSyncOptions { ConnectionString = "unused", SignalTable = signalTable };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw CliException.Usage("--signal-table", e);
        }
        var (schema, name) = options.SignalTableName!.Value;
        _table = new TableName(schema, name);
    }

    /// <summary>The signal table, <c>schema.name</c>.</summary>
    public string Table => _table.ToString();

    /// <summary>Inserts one signal row in a transaction of its own.</summary>
    public async Task<SentSignal> SendAsync(NpgsqlConnection connection, string kind, IReadOnlyList<string>? tables, string? filter = null,
        IReadOnlyList<string>? filterParameters = null, string? chunkKey = null, CancellationToken cancellationToken = default)
    {
        if (!await ExistsAsync(connection, _table, cancellationToken).ConfigureAwait(false))
        {
            throw new CliException(ExitCodes.NotFound,
                $"Signal table {Table} does not exist in database {connection.Database}. DBSync creates it when a client runs with " +
                $"SignalTable = \"{Table}\" (or create it: {SignalRegistration.CreateSql(_table.Quoted)}); pass --signal-table if the pipeline uses another.");
        }
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var insert = new NpgsqlCommand(
            $"INSERT INTO {_table.Quoted} (kind, tables, filter, filter_parameters, chunk_key) VALUES ($1, $2, $3, $4, $5) RETURNING id", connection, transaction);
        insert.Parameters.Add(new NpgsqlParameter { Value = kind });
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text, Value = tables is null ? DBNull.Value : tables.ToArray() });
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)filter ?? DBNull.Value });
        insert.Parameters.Add(new NpgsqlParameter
        {
            NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text,
            Value = filterParameters is null or { Count: 0 } ? DBNull.Value : filterParameters.ToArray(),
        });
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)chunkKey ?? DBNull.Value });
        var id = (long)(await insert.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        // The commit record is written after this position, so a checkpoint whose last signal is at or past it has seen
        // this signal (or, at worst, one committed by another session in the same instant, just before it).
        await using var position = new NpgsqlCommand("SELECT pg_current_wal_insert_lsn()::text", connection, transaction);
        var after = NpgsqlLogSequenceNumber.Parse((string)(await position.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new SentSignal(id, after);
    }

    /// <summary>Waits until the checkpoint of <paramref name="slot"/> shows that DBSync acted on <paramref name="signal"/>
    /// and <paramref name="done"/> holds; a <see cref="ExitCodes.Timeout"/> error after <paramref name="timeout"/>.</summary>
    public async Task<CheckpointInfo> WaitAsync(PostgresCheckpointStore store, string slot, SentSignal signal, Func<CheckpointInfo, bool> done,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var checkpoint = await CheckpointInfo.LoadAsync(store, slot, cancellationToken).ConfigureAwait(false);
            if (checkpoint is not null && checkpoint.LastSignalLsn >= signal.After && done(checkpoint))
                return checkpoint;
            if (DateTime.UtcNow > deadline)
            {
                throw new CliException(ExitCodes.Timeout,
                    $"DBSync has not acted on signal {signal.Id} within {timeout.TotalSeconds:0} s. Is a DBSync client running on slot \"{slot}\" with " +
                    $"SignalTable = \"{Table}\" (and its checkpoint in {store.Table})? The signal stays in the table's WAL and takes effect when one reads it.");
            }
            await Task.Delay(200, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Whether a table exists.</summary>
    public static async Task<bool> ExistsAsync(NpgsqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = table.Quoted });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }
}
