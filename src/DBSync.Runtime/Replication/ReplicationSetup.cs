using System.Text;
using DBSync.Mapping;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>What the setup learned about the server, for the stream.</summary>
internal sealed record ServerInfo(int VersionNum, string Database, bool SlotCreated, NpgsqlLogSequenceNumber SlotStart, PgTypeCatalog Types);

/// <summary>
/// Checks that the database can serve change capture for the mapped tables, and creates the publication and slot when
/// missing. Every problem becomes a <see cref="DBSyncConfigurationException"/> that names what is wrong and how to fix it.
/// Idempotent: running it again (or from two processes at once) changes nothing that is already right.
/// </summary>
internal static partial class ReplicationSetup
{
    private const string DuplicateObject = "42710";
    private const string InsufficientPrivilege = "42501";
    private const string ConfigurationLimitExceeded = "53400";

    /// <param name="options">The pipeline's options.</param>
    /// <param name="tables">The mapped tables (and the signal table, if any).</param>
    /// <param name="logger">Where to log.</param>
    /// <param name="beforeSlotCreated">Runs when the slot is missing, just before it is created.</param>
    /// <param name="cancellationToken">Cancels the setup.</param>
    public static async Task<ServerInfo> PrepareAsync(DBSyncOptions options, IReadOnlyList<SyncTableInfo> tables, ILogger logger,
        Func<CancellationToken, Task> beforeSlotCreated, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(options.ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);

        var (walLevel, versionNum, database, user, canReplicate) = await ReadServerAsync(connection, cancellationToken).ConfigureAwait(false);
        if (walLevel != "logical")
        {
            throw new DBSyncConfigurationException(
                $"wal_level is '{walLevel}' on database \"{database}\"; change data capture needs wal_level = logical. " +
                "Run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL (a reload is not enough). " +
                "On a managed service, set the equivalent parameter (for example rds.logical_replication = 1).");
        }

        if (!canReplicate)
        {
            throw new DBSyncConfigurationException(
                $"Role \"{user}\" may not use logical replication: it lacks the REPLICATION attribute. " +
                $"Run ALTER ROLE \"{user}\" WITH REPLICATION; as a superuser, or connect as a role that has it.");
        }

        if (options.SignalTableName is var (signalSchema, signalName))
            await EnsureSignalTableAsync(connection, signalSchema, signalName, logger, cancellationToken).ConfigureAwait(false);
        await CheckTablesAsync(connection, tables, database, user, cancellationToken).ConfigureAwait(false);
        var types = await ColumnTypeCheck.CheckAsync(connection, tables, cancellationToken).ConfigureAwait(false);
        await EnsurePublicationAsync(connection, options.PublicationName, tables, user, logger, cancellationToken).ConfigureAwait(false);
        var (created, start) = await EnsureSlotAsync(connection, options.SlotName, database, logger, beforeSlotCreated, cancellationToken).ConfigureAwait(false);
        return new ServerInfo(versionNum, database, created, start, types);
    }

    private static async Task<(string WalLevel, int VersionNum, string Database, string User, bool CanReplicate)> ReadServerAsync(
        NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Managed services grant replication through a role (rds_replication) instead of the attribute.
        const string sql = """
            SELECT current_setting('wal_level'),
                   current_setting('server_version_num')::int,
                   current_database(),
                   current_user,
                   r.rolreplication OR r.rolsuper
                     OR EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' AND pg_has_role(current_user, g.oid, 'member'))
            FROM pg_roles r WHERE r.rolname = current_user
            """;
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return (reader.GetString(0), reader.GetInt32(1), reader.GetString(2), reader.GetString(3), reader.GetBoolean(4));
    }

    private static async Task CheckTablesAsync(NpgsqlConnection connection, IReadOnlyList<SyncTableInfo> tables, string database, string user, CancellationToken cancellationToken)
    {
        const string sql = """
            SELECT c.relkind::text, c.relreplident::text, has_table_privilege(c.oid, 'SELECT'),
                   (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
                      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                     WHERE i.indrelid = c.oid AND i.indisprimary),
                   (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
                      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                     WHERE i.indrelid = c.oid AND i.indisreplident)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2
            """;
        var problems = new List<string>();
        foreach (var table in tables)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = table.Schema });
            command.Parameters.Add(new NpgsqlParameter { Value = table.Name });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                problems.Add($"Table {table.DisplayName} (mapped by {table.EntityType.FullName}) does not exist in database \"{database}\". " +
                             $"Create it, or correct the name in [SyncTable(\"...\")] (names are case-sensitive; unquoted SQL names are lower case).");
                continue;
            }

            var kind = reader.GetString(0);
            var identity = reader.GetString(1);
            var canSelect = reader.GetBoolean(2);
            var primaryKey = reader.IsDBNull(3) ? null : reader.GetFieldValue<string[]>(3);
            var identityIndex = reader.IsDBNull(4) ? null : reader.GetFieldValue<string[]>(4);

            if (kind is not ("r" or "p"))
            {
                problems.Add($"{table.DisplayName} (mapped by {table.EntityType.FullName}) is not a table (relkind '{kind}'); only tables can be replicated.");
                continue;
            }

            if (!canSelect)
                problems.Add($"Role \"{user}\" cannot read {table.DisplayName}. Run GRANT SELECT ON {table.QualifiedName} TO \"{user}\";");

            var entityKey = table.KeyColumns.Select(c => c.Name).ToArray();
            switch (identity)
            {
                case "n":
                    problems.Add($"{table.DisplayName} has REPLICA IDENTITY NOTHING, so PostgreSQL cannot identify the rows of its updates and deletes. " +
                                 $"Run ALTER TABLE {table.QualifiedName} REPLICA IDENTITY DEFAULT; (with a primary key) or REPLICA IDENTITY FULL;");
                    break;
                case "d" when primaryKey is null:
                    problems.Add($"{table.DisplayName} has no primary key and no replica identity, so PostgreSQL cannot identify the rows of its updates and deletes. " +
                                 $"Add a primary key (ALTER TABLE {table.QualifiedName} ADD PRIMARY KEY ({string.Join(", ", entityKey.Select(SyncTableInfo.QuoteIdentifier))});) " +
                                 $"or run ALTER TABLE {table.QualifiedName} REPLICA IDENTITY FULL;");
                    break;
                case "d" when !SameColumns(primaryKey, entityKey):
                    problems.Add(KeyMismatch(table, entityKey, "primary key", primaryKey));
                    break;
                case "i" when identityIndex is not null && !SameColumns(identityIndex, entityKey):
                    problems.Add(KeyMismatch(table, entityKey, "replica identity index", identityIndex));
                    break;
            }
        }

        if (problems.Count > 0)
            throw new DBSyncConfigurationException(string.Join(Environment.NewLine, problems));
    }

    private static bool SameColumns(string[] a, string[] b) => a.Length == b.Length && a.Order(StringComparer.Ordinal).SequenceEqual(b.Order(StringComparer.Ordinal), StringComparer.Ordinal);

    private static string KeyMismatch(SyncTableInfo table, string[] entityKey, string what, string[] actual)
        => $"{table.EntityType.FullName} marks [PrimaryKey] on ({string.Join(", ", entityKey)}) but the {what} of {table.DisplayName} is ({string.Join(", ", actual)}). " +
           "Deletes would carry a key the entity cannot hold: put [PrimaryKey] on exactly those columns.";

    private static async Task EnsureSignalTableAsync(NpgsqlConnection connection, string schema, string name, ILogger logger, CancellationToken cancellationToken)
    {
        var qualified = $"{SyncTableInfo.QuoteIdentifier(schema)}.{SyncTableInfo.QuoteIdentifier(name)}";
        await using (var exists = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", connection))
        {
            exists.Parameters.Add(new NpgsqlParameter { Value = qualified });
            if ((bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                return;
        }
        var sql = SignalRegistration.CreateSql(qualified);
        try
        {
            await using var create = new NpgsqlCommand(sql, connection);
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            Log.SignalTableCreated(logger, $"{schema}.{name}");
        }
        catch (PostgresException e) when (e.SqlState is InsufficientPrivilege or "3F000")
        {
            throw new DBSyncConfigurationException(
                $"Cannot create signal table {schema}.{name} ({e.MessageText}). Create it once as a privileged role: {sql}; then GRANT SELECT ON it to the role DBSync uses and INSERT to the roles that send signals.", e);
        }
    }

    private static async Task<(bool Created, NpgsqlLogSequenceNumber Start)> EnsureSlotAsync(NpgsqlConnection connection, string slot, string database,
        ILogger logger, Func<CancellationToken, Task> beforeSlotCreated, CancellationToken cancellationToken)
    {
        await using (var command = new NpgsqlCommand(
            "SELECT plugin, slot_type, database, row_to_json(s)->>'wal_status', confirmed_flush_lsn::text FROM pg_replication_slots s WHERE slot_name = $1", connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = slot });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var plugin = reader.IsDBNull(0) ? null : reader.GetString(0);
                var type = reader.GetString(1);
                var slotDatabase = reader.IsDBNull(2) ? null : reader.GetString(2);
                var walStatus = reader.IsDBNull(3) ? null : reader.GetString(3);
                if (type != "logical" || plugin != "pgoutput")
                {
                    throw new DBSyncConfigurationException(
                        $"Replication slot \"{slot}\" exists but is a {type} slot with plugin '{plugin}'; DBSync needs a logical slot with pgoutput. " +
                        "Choose another DBSyncOptions.SlotName, or drop the slot if nothing else uses it.");
                }
                if (slotDatabase != database)
                {
                    throw new DBSyncConfigurationException(
                        $"Replication slot \"{slot}\" belongs to database \"{slotDatabase}\", not \"{database}\". Slot names are server-wide: choose another DBSyncOptions.SlotName.");
                }
                if (walStatus == "lost")
                {
                    throw new DBSyncConfigurationException(
                        $"Replication slot \"{slot}\" is invalidated (wal_status = lost): PostgreSQL removed WAL it still needed (max_slot_wal_keep_size), " +
                        "so changes were lost. Drop the slot (SELECT pg_drop_replication_slot('" + slot + "');), let DBSync create a new one, and take a new snapshot of the tables.");
                }
                var confirmed = reader.IsDBNull(4) ? default : NpgsqlLogSequenceNumber.Parse(reader.GetString(4));
                return (false, confirmed);
            }
        }

        await beforeSlotCreated(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var create = new NpgsqlCommand("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", connection);
            create.Parameters.Add(new NpgsqlParameter { Value = slot });
            var lsn = NpgsqlLogSequenceNumber.Parse((string)(await create.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);
            Log.SlotCreated(logger, slot, lsn.ToString());
            return (true, lsn);
        }
        catch (PostgresException e) when (e.SqlState == DuplicateObject)
        {
            return (false, default);
        }
        catch (PostgresException e) when (e.SqlState == ConfigurationLimitExceeded)
        {
            throw new DBSyncConfigurationException(
                $"Cannot create replication slot \"{slot}\": {e.MessageText}. Raise max_replication_slots (needs a restart) or drop unused slots.", e);
        }
    }

    internal static string AppendServerOptions(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var extra = new StringBuilder(builder.Options ?? "");
        // Text-format values (servers older than 14, or text tuples) are parsed in these formats; lc_monetary = C gives money
        // two decimal places in both formats.
        extra.Append(" -c DateStyle=ISO,YMD -c TimeZone=UTC -c extra_float_digits=3 -c IntervalStyle=iso_8601 -c bytea_output=hex -c lc_monetary=C");
        builder.Options = extra.ToString().Trim();
        return builder.ConnectionString;
    }
}
