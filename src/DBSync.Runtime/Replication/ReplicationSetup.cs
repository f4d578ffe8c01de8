using System.Text;
using DBSync.Internal;
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
    /// <param name="connections">The pipeline's pool of ordinary connections.</param>
    /// <param name="tables">The mapped tables (and the signal table, if any).</param>
    /// <param name="logger">Where to log.</param>
    /// <param name="beforeSlotCreated">Runs when the slot is missing (or invalidated and about to be replaced, with why), just before it is created.</param>
    /// <param name="cancellationToken">Cancels the setup.</param>
    public static async Task<ServerInfo> PrepareAsync(DBSyncOptions options, ConnectionPool connections, IReadOnlyList<SyncTableInfo> tables, ILogger logger,
        Func<string?, CancellationToken, Task> beforeSlotCreated, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(connections, cancellationToken).ConfigureAwait(false);

        var (walLevel, versionNum, database, user, canReplicate, inRecovery) = await ReadServerAsync(connection, cancellationToken).ConfigureAwait(false);
        if (inRecovery)
        {
            var host = new NpgsqlConnectionStringBuilder(connections.ConnectionString);
            throw new DBSyncConfigurationException(
                $"The server at {host.Host}:{host.Port} is a standby (in recovery): change data capture streams from the primary. Connect to the primary, " +
                "or list every server of the cluster in the connection string's Host (Host=a,b) with Target Session Attributes=primary, so that DBSync " +
                "finds the primary after a failover.");
        }
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

        if (versionNum < 140000 && options.SnapshotOnStart)
            throw new DBSyncConfigurationException(ServerSupport.SnapshotsNeed14(versionNum) + " SnapshotOnStart is set.");
        if (options.SignalTableName is var (signalSchema, signalName))
            await EnsureSignalTableAsync(connection, signalSchema, signalName, logger, cancellationToken).ConfigureAwait(false);
        // Before the slot exists: every DDL after the slot's start is in the stream.
        if (options.CaptureSchemaChanges)
        {
            if (versionNum < 140000)
            {
                throw new DBSyncConfigurationException(
                    $"DBSyncOptions.CaptureSchemaChanges needs PostgreSQL 14 or later (the server runs {versionNum / 10000}): the DDL capture trigger writes " +
                    "logical decoding messages, which pgoutput sends from 14 on. Upgrade the server, or turn CaptureSchemaChanges off (schema changes are " +
                    "then seen through the next Relation message of each table).");
            }
            await Schema.DdlCapture.EnsureInstalledAsync(connection, database, user, logger, cancellationToken).ConfigureAwait(false);
            // A mapped table that does not exist yet is awaited: its CREATE TABLE reaches the stream, which then adds it
            // to the publication and snapshots it (Schema.SchemaFollower).
            var absent = await AbsentTablesAsync(connection, tables, cancellationToken).ConfigureAwait(false);
            foreach (var table in absent)
                Log.MappedTableAwaited(logger, table.DisplayName, table.EntityType.FullName ?? table.EntityType.Name, options.PublicationName);
            tables = [.. tables.Where(t => !absent.Contains(t))];
        }
        await CheckTablesAsync(connection, tables, database, user, cancellationToken).ConfigureAwait(false);
        var types = await ColumnTypeCheck.CheckAsync(connection, tables, cancellationToken).ConfigureAwait(false);
        await EnsurePublicationAsync(connection, options.PublicationName, tables, user, logger, cancellationToken).ConfigureAwait(false);
        var (created, start) = await EnsureSlotAsync(connection, options, versionNum, database, logger, beforeSlotCreated, cancellationToken).ConfigureAwait(false);
        if (options.FailoverSlot)
            await WarnWithoutSynchronizedStandbyAsync(connection, options.SlotName, logger, cancellationToken).ConfigureAwait(false);
        return new ServerInfo(versionNum, database, created, start, types);
    }

    /// <summary>The mapped tables that do not exist.</summary>
    private static async Task<List<SyncTableInfo>> AbsentTablesAsync(NpgsqlConnection connection, IReadOnlyList<SyncTableInfo> tables, CancellationToken cancellationToken)
    {
        var absent = new List<SyncTableInfo>();
        foreach (var table in tables)
        {
            await using var command = new NpgsqlCommand("SELECT to_regclass($1) IS NULL", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = table.QualifiedName });
            if ((bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                absent.Add(table);
        }
        return absent;
    }

    /// <summary>Adds a mapped table created while DBSync runs to the publication (unless it is in it already: a
    /// transaction delivered again).</summary>
    /// <exception cref="DBSyncConfigurationException">The role may not; the message gives the statement to run.</exception>
    internal static async Task AddToPublicationAsync(NpgsqlConnection connection, string publication, SyncTableInfo table, ILogger logger, CancellationToken cancellationToken)
    {
        if (await PublishesAsync(connection, publication, table, cancellationToken).ConfigureAwait(false))
            return;
        await RunDdlAsync(connection, $"ALTER PUBLICATION \"{publication}\" ADD TABLE {table.QualifiedName}", connection.UserName ?? "?", publication, "the owner of the table",
            cancellationToken).ConfigureAwait(false);
        Log.PublicationTablesAdded(logger, publication, table.QualifiedName);
    }

    /// <summary>Opens the setup connection; a refused login says which role, which server and what to check.</summary>
    private static async Task<NpgsqlConnection> OpenAsync(ConnectionPool connections, CancellationToken cancellationToken)
    {
        try
        {
            return await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (Transport.LoginFailure.Is(e))
        {
            throw Transport.LoginFailure.Create(e, connections.ConnectionString);
        }
    }

    private static async Task<(string WalLevel, int VersionNum, string Database, string User, bool CanReplicate, bool InRecovery)> ReadServerAsync(
        NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Managed services grant replication through a role (rds_replication) instead of the attribute.
        const string sql = """
            SELECT current_setting('wal_level'),
                   current_setting('server_version_num')::int,
                   current_database(),
                   current_user,
                   r.rolreplication OR r.rolsuper
                     OR EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' AND pg_has_role(current_user, g.oid, 'member')),
                   pg_is_in_recovery()
            FROM pg_roles r WHERE r.rolname = current_user
            """;
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return (reader.GetString(0), reader.GetInt32(1), reader.GetString(2), reader.GetString(3), reader.GetBoolean(4), reader.GetBoolean(5));
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
                     WHERE i.indrelid = c.oid AND i.indisreplident),
                   c.oid
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2
            """;
        var problems = new List<string>();
        var identityProblems = new List<(SyncTableInfo Table, uint Oid, string[] EntityKey)>();
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
            var oid = reader.GetFieldValue<uint>(5);

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
                    identityProblems.Add((table, oid, entityKey));
                    break;
                case "d" when !SameColumns(primaryKey, entityKey):
                    problems.Add(KeyMismatch(table, entityKey, "primary key", primaryKey));
                    break;
                case "i" when identityIndex is not null && !SameColumns(identityIndex, entityKey):
                    problems.Add(KeyMismatch(table, entityKey, "replica identity index", identityIndex));
                    break;
            }
        }

        // Each command's reader is closed by now: the unique indexes of a table without identity are read after the loop.
        foreach (var (table, oid, entityKey) in identityProblems)
            problems.Add(await NoIdentityAsync(connection, table, oid, entityKey, cancellationToken).ConfigureAwait(false));

        if (problems.Count > 0)
            throw new DBSyncConfigurationException(string.Join(Environment.NewLine, problems));
    }

    /// <summary>
    /// A table with neither primary key nor replica identity: REPLICA IDENTITY FULL always works. A primary key (or a replica
    /// identity index) is suggested only where the catalog proves the entity's key columns unique: a unique index on exactly
    /// them. The table itself is never scanned. <c>REPLICA IDENTITY USING INDEX</c> needs a valid, non-partial, immediate
    /// unique index without expressions on NOT NULL columns; <c>ADD PRIMARY KEY USING INDEX</c> also a b-tree in default
    /// sort order that no constraint owns yet (https://www.postgresql.org/docs/current/sql-altertable.html).
    /// </summary>
    private static async Task<string> NoIdentityAsync(NpgsqlConnection connection, SyncTableInfo table, uint oid, string[] entityKey, CancellationToken cancellationToken)
    {
        const string sql = """
            SELECT ic.relname::text,
                   ARRAY(SELECT a.attname::text FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k),
                   ARRAY(SELECT a.attname::text FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k
                          WHERE NOT a.attnotnull ORDER BY a.attnum),
                   i.indpred IS NULL AND i.indexprs IS NULL AND i.indimmediate AND i.indisvalid,
                   am.amname = 'btree' AND 0 = ALL (i.indoption::int2[])
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
            WHERE i.indrelid = $1 AND i.indisunique
            ORDER BY ic.relname
            """;
        var keyList = string.Join(", ", entityKey.Select(SyncTableInfo.QuoteIdentifier));
        var message = new StringBuilder(
            $"{table.DisplayName} has no primary key and no replica identity, so PostgreSQL cannot identify the rows of its updates and deletes. " +
            $"Run ALTER TABLE {table.QualifiedName} REPLICA IDENTITY FULL; (updates and deletes then carry the whole old row).");

        UniqueIndex? index = null;
        await using (var command = new NpgsqlCommand(sql, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlDbType.Oid });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // Partial, with expressions, deferrable or invalid: it proves nothing, or PostgreSQL refuses it.
                if (!reader.GetBoolean(3) || !SameColumns(reader.GetFieldValue<string[]>(1), entityKey))
                    continue;
                var candidate = new UniqueIndex(reader.GetString(0), reader.GetFieldValue<string[]>(2), reader.GetBoolean(4));
                // Prefer one on NOT NULL columns, then one that can become the primary key.
                if (index is null || (candidate.NullableColumns.Length == 0 && index.NullableColumns.Length > 0)
                    || (candidate.NullableColumns.Length == index.NullableColumns.Length && candidate.CanBePrimaryKey && !index.CanBePrimaryKey))
                    index = candidate;
            }
        }

        if (index is null)
        {
            message.Append($" No unique index covers exactly ({keyList}), the column(s) {table.EntityType.FullName} marks [PrimaryKey], so PostgreSQL " +
                           "does not know them to be unique: add a primary key only on columns whose values are unique (PostgreSQL refuses one " +
                           "on duplicated values), and put [PrimaryKey] on those. " +
                           "Snapshots page through the table by the [PrimaryKey] columns, so they must identify a row.");
            return message.ToString();
        }

        var name = SyncTableInfo.QuoteIdentifier(index.Name);
        if (index.NullableColumns.Length > 0)
        {
            var setNotNull = string.Join(", ", index.NullableColumns.Select(c => $"ALTER COLUMN {SyncTableInfo.QuoteIdentifier(c)} SET NOT NULL"));
            message.Append($" The unique index {name} covers ({keyList}), but ({string.Join(", ", index.NullableColumns.Select(SyncTableInfo.QuoteIdentifier))}) may be NULL: " +
                           $"once ALTER TABLE {table.QualifiedName} {setNotNull}; succeeds (it fails while a NULL is stored), ");
        }
        else
        {
            message.Append($" Or use the unique index {name} on ({keyList}): ");
        }
        message.Append($"ALTER TABLE {table.QualifiedName} REPLICA IDENTITY USING INDEX {name};");
        if (index.CanBePrimaryKey)
            message.Append($" or, to make it the primary key, ALTER TABLE {table.QualifiedName} ADD PRIMARY KEY USING INDEX {name};");
        return message.ToString();
    }

    /// <summary>A unique index on exactly an entity's key columns; which of them may be NULL; whether it can become the primary key.</summary>
    private sealed record UniqueIndex(string Name, string[] NullableColumns, bool CanBePrimaryKey);

    internal static bool SameColumns(string[] a, string[] b) => a.Length == b.Length && a.Order(StringComparer.Ordinal).SequenceEqual(b.Order(StringComparer.Ordinal), StringComparer.Ordinal);

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
        catch (PostgresException e) when (ConcurrentDdl.CreatedMeanwhile(e))
        {
            // another instance created it at the same moment
        }
        catch (PostgresException e) when (e.SqlState is InsufficientPrivilege or "3F000")
        {
            throw new DBSyncConfigurationException(
                $"Cannot create signal table {schema}.{name} ({e.MessageText}). Create it once as a privileged role: {sql}; then GRANT SELECT ON it to the role DBSync uses and INSERT to the roles that send signals.", e);
        }
    }

    private static async Task<(bool Created, NpgsqlLogSequenceNumber Start)> EnsureSlotAsync(NpgsqlConnection connection, DBSyncOptions options,
        int versionNum, string database, ILogger logger, Func<string?, CancellationToken, Task> beforeSlotCreated, CancellationToken cancellationToken)
    {
        var slot = options.SlotName;
        if (options.FailoverSlot && versionNum < 170000)
        {
            throw new DBSyncConfigurationException(
                $"DBSyncOptions.FailoverSlot needs PostgreSQL 17 or later (the server runs {versionNum / 10000}): only they keep a synchronized copy of a " +
                "logical slot on a physical standby. Upgrade the server, or turn FailoverSlot off (after a failover, DBSync then refuses to go on without the slot).");
        }

        string? lostReason = null;
        if (await ReplicationSlot.ReadAsync(connection, slot, cancellationToken).ConfigureAwait(false) is { } existing)
        {
            if (existing.SlotType != "logical" || existing.Plugin != "pgoutput")
            {
                throw new DBSyncConfigurationException(
                    $"Replication slot \"{slot}\" exists but is a {existing.SlotType} slot with plugin '{existing.Plugin}'; DBSync needs a logical slot with pgoutput. " +
                    "Choose another DBSyncOptions.SlotName, or drop the slot if nothing else uses it.");
            }
            if (existing.Database != database)
            {
                throw new DBSyncConfigurationException(
                    $"Replication slot \"{slot}\" belongs to database \"{existing.Database}\", not \"{database}\". Slot names are server-wide: choose another DBSyncOptions.SlotName.");
            }
            if (!existing.Invalidated)
            {
                if (options.FailoverSlot && existing.Failover == false)
                {
                    throw new DBSyncConfigurationException(
                        $"Replication slot \"{slot}\" exists without failover, and DBSyncOptions.FailoverSlot asks for a slot a standby keeps a copy of. " +
                        $"Turn failover on once, while no consumer streams from it: psql \"dbname={database} replication=database\" -c \"ALTER_REPLICATION_SLOT {slot} ( FAILOVER true )\" " +
                        "(as a role with REPLICATION), or turn FailoverSlot off.");
                }
                return (false, existing.ConfirmedFlush ?? default);
            }

            // The server gave the slot up: changes after its position may be gone. Replaced only on request.
            lostReason = existing.InvalidationDescription;
            if (options.WhenSlotLost != SlotLost.StartOver)
                throw SlotLoss.Refused(slot, (existing.ConfirmedFlush ?? default).ToString(), lostReason);
            await using var drop = new NpgsqlCommand("SELECT pg_drop_replication_slot($1)", connection);
            drop.Parameters.Add(new NpgsqlParameter { Value = slot });
            await drop.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (versionNum < 140000 && (options.InitialSnapshot || lostReason is not null))
            throw new DBSyncConfigurationException(ServerSupport.SnapshotsNeed14(versionNum) + " The slot is about to be created with DBSyncOptions.InitialSnapshot (the default).");
        try
        {
            await beforeSlotCreated(lostReason, cancellationToken).ConfigureAwait(false);
        }
        catch (SlotLostException) when (lostReason is null)
        {
            // The checkpoint shows a slot that streamed, and there was none when this instance looked: unless another
            // instance starting at the same time created it since (and recorded it, as it does right after), it is lost.
            if (await ReplicationSlot.ReadAsync(connection, slot, cancellationToken).ConfigureAwait(false) is { Invalidated: false } created)
                return (false, created.ConfirmedFlush ?? default);
            throw;
        }
        try
        {
            // pg_create_logical_replication_slot(name, plugin, temporary, twophase, failover): the last from 17 on.
            await using var create = new NpgsqlCommand(options.FailoverSlot
                ? "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)"
                : "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", connection);
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

    /// <summary>A failover slot on a primary that does not wait for its standby: a change can reach DBSync before the standby
    /// has it, and a failover then loses a transaction DBSync already delivered. Said once per run.</summary>
    private static async Task WarnWithoutSynchronizedStandbyAsync(NpgsqlConnection connection, string slot, ILogger logger, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT coalesce(current_setting('synchronized_standby_slots', true), '')", connection);
        if ((string)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! is { Length: 0 })
            Log.FailoverSlotUnprotected(logger, slot);
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
