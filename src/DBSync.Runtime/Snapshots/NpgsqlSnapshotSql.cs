using System.Data;
using DBSync.Checkpoints;
using DBSync.Internal;
using DBSync.Mapping;
using DBSync.Protocol;
using Npgsql;

namespace DBSync.Snapshots;

/// <summary>The snapshot SQL on one connection of DBSync's own pool.</summary>
internal sealed class NpgsqlSnapshotSql : ISnapshotSql
{
    private readonly NpgsqlConnection _connection;
    private readonly string _prefix;
    private readonly bool _textFormat;

    private NpgsqlSnapshotSql(NpgsqlConnection connection, string prefix, bool textFormat)
    {
        _connection = connection;
        _prefix = prefix;
        _textFormat = textFormat;
    }

    public string Database => _connection.Database;

    /// <summary>Opens a connection whose watermarks carry <paramref name="prefix"/>; with <paramref name="textFormat"/>,
    /// chunks are read as text (<see cref="DBSyncOptions.TextFormat"/>).</summary>
    public static async Task<ISnapshotSql> OpenAsync(ConnectionPool connections, string prefix, bool textFormat, CancellationToken cancellationToken)
    {
        var connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Watermarks must reach the WAL without waiting for synchronous standbys.
            await using var command = new NpgsqlCommand("SET synchronous_commit = local", connection);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return new NpgsqlSnapshotSql(connection, prefix, textFormat);
    }

    public Task EmitAsync(Watermark watermark, CancellationToken cancellationToken)
        => LogicalMessages.EmitAsync(_connection, _prefix, watermark.Content, cancellationToken);

    public async Task<SnapshotVisibility> CurrentSnapshotAsync(CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_current_snapshot()::text", _connection);
        return SnapshotVisibility.Parse((string)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);
    }

    public Task<SnapshotQuery> PrepareQueryAsync(SyncTableInfo table, JobState job, CancellationToken cancellationToken)
        => SnapshotQuery.CreateAsync(_connection, table, job, cancellationToken);

    public async Task<long> EstimateRowsAsync(SyncTableInfo table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", _connection);
        command.Parameters.Add(new NpgsqlParameter { Value = table.QualifiedName });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long estimate ? estimate : -1;
    }

    public async Task<SnapshotChunk<T>> ReadChunkAsync<T>(SnapshotQuery query, long chunk, IReadOnlyList<string>? after, int size, PgTypeCatalog types,
        CancellationToken cancellationToken) where T : ISyncTable<T>
    {
        var rows = new List<T>();
        string[]? last = null;
        SnapshotVisibility visibility;
        await using (var transaction = await _connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false))
        {
            // Read only (a filter is SQL of the caller's); the first query fixes the transaction's snapshot, and the chunk
            // SELECT below reads with the same one.
            await using (var snapshot = new NpgsqlCommand("SET TRANSACTION READ ONLY; SELECT pg_current_snapshot()::text", _connection, transaction))
                visibility = SnapshotVisibility.Parse((string)(await snapshot.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);

            await using var command = new NpgsqlCommand(query.ChunkSql(after is not null, size), _connection, transaction) { AllResultTypesAreUnknown = _textFormat };
            query.AddParameters(command, after);
            await using (var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken).ConfigureAwait(false))
            {
                var columns = T.TableInfo.Columns.Length;
                using var values = SnapshotColumns.Create(reader, T.TableInfo, types, _textFormat);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var row = new SnapshotRowReader(reader, values);
                    rows.Add(T.ReadRow(ref row));
                    // Only the last row's key is needed: reading every row's would cost a string per row.
                    if (rows.Count == size)
                        last = ReadKey(reader, columns, query.KeyColumns.Length);
                }
            }
            if (rows.Count is > 0 && rows.Count < size)
            {
                // A short chunk read the whole rest of the range: its last row has the range's highest key.
                await using var highest = new NpgsqlCommand(query.LastKeySql(after is not null), _connection, transaction);
                query.AddParameters(highest, after);
                await using var reader = await highest.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                last = ReadKey(reader, 0, query.KeyColumns.Length);
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        return new SnapshotChunk<T>(rows, last, visibility);
    }

    public async Task<IReadOnlyList<string[]>> SampleKeysAsync(SnapshotQuery query, int pages, CancellationToken cancellationToken)
    {
        long tablePages;
        await using (var size = new NpgsqlCommand(SnapshotQuery.PagesSql, _connection))
        {
            size.Parameters.Add(new NpgsqlParameter { Value = query.Table.QualifiedName });
            tablePages = await size.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long p ? p : 0;
        }
        var keys = new List<string[]>();
        await using var command = new NpgsqlCommand(query.SampleKeysSql(), _connection);
        command.Parameters.Add(new NpgsqlParameter { Value = tablePages <= pages ? 100.0 : 100.0 * pages / tablePages });
        query.AddMaxKeyParameters(command);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            keys.Add(ReadKey(reader, 0, query.KeyColumns.Length));
        return keys;
    }

    private static string[] ReadKey(NpgsqlDataReader reader, int first, int count)
    {
        var key = new string[count];
        for (var i = 0; i < count; i++)
            key[i] = reader.GetString(first + i);
        return key;
    }

    public async Task<WorkloadSample> SampleWorkloadAsync(CancellationToken cancellationToken)
    {
        // Sessions of this database only, and not DBSync's: its own connections are named DBSync (or, when the connection
        // string names them otherwise, known by their process ids), its appliers' "DBSync applier <name>". Autovacuum,
        // walsenders and idle sessions do not count; a session idle for less than a second does (short transactions
        // leave a busy session idle most of the time). A role without pg_read_all_stats sees a null state for other
        // roles' sessions (Hidden). The transactions are pg_stat_database's, which each backend reports at most once a
        // second.
        await using var command = new NpgsqlCommand(
            """
            SELECT count(*) FILTER (WHERE state IS NOT NULL AND (state <> 'idle' OR state_change > clock_timestamp() - interval '1 second')),
                   count(*) FILTER (WHERE state IS NULL),
                   (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database())
            FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()
              AND pid <> ALL($1) AND coalesce(application_name, '') NOT LIKE 'DBSync%'
            """, _connection);
        command.Parameters.Add(new NpgsqlParameter { Value = ConnectionPool.InUseProcessIds() });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new WorkloadSample(reader.GetInt64(0), reader.GetInt64(1), reader.IsDBNull(2) ? 0 : reader.GetInt64(2));
    }

    public async Task<bool> TableExistsAsync(string schema, string name, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", _connection);
        command.Parameters.Add(new NpgsqlParameter { Value = $"{SyncTableInfo.QuoteIdentifier(schema)}.{SyncTableInfo.QuoteIdentifier(name)}" });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}
