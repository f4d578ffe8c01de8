using DBSync.Internal;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DBSync.Replication;

// The publication: created when missing, mapped tables added to it, and partitioned tables published as themselves.
internal static partial class ReplicationSetup
{
    /// <summary>PostgreSQL 13 is the first that can publish a partitioned table (and has publish_via_partition_root).</summary>
    private const int PartitionedPublicationVersion = 130000;

    /// <summary>
    /// Creates the publication (with <c>publish_via_partition_root</c>, so a partitioned table's changes arrive under its
    /// own name, as the entity maps it) or adds the mapped tables missing from an existing one. An existing publication
    /// that would send a mapped partitioned table's changes under its partitions' names is switched to publish via the root
    /// when every table in it is this client's, else refused with the statement to run.
    /// </summary>
    private static async Task EnsurePublicationAsync(NpgsqlConnection connection, string publication, IReadOnlyList<SyncTableInfo> tables, string user,
        ILogger logger, CancellationToken cancellationToken)
    {
        var versionNum = await ScalarAsync<int>(connection, "SELECT current_setting('server_version_num')::int", cancellationToken).ConfigureAwait(false);
        var partitioned = await PartitionedTablesAsync(connection, tables, cancellationToken).ConfigureAwait(false);
        if (partitioned.Count > 0 && versionNum < PartitionedPublicationVersion)
        {
            throw new DBSyncConfigurationException(
                $"{string.Join(", ", partitioned.Select(t => t.DisplayName))} {(partitioned.Count == 1 ? "is a partitioned table" : "are partitioned tables")}, which PostgreSQL " +
                $"{versionNum / 10000} cannot publish for logical replication (PostgreSQL 13 and later can). Upgrade the server, or map each partition " +
                "with a [SyncTable] type of its own instead of the partitioned table.");
        }

        bool? allTables = null;
        var viaRoot = false;
        var actions = "";
        var viaRootColumn = versionNum >= PartitionedPublicationVersion ? "pubviaroot" : "false";
        await using (var command = new NpgsqlCommand(
            $"SELECT puballtables, {viaRootColumn}, concat_ws(',', CASE WHEN pubinsert THEN 'insert' END, CASE WHEN pubupdate THEN 'update' END, CASE WHEN pubdelete THEN 'delete' END, CASE WHEN pubtruncate THEN 'truncate' END) FROM pg_publication WHERE pubname = $1",
            connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = publication });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                allTables = reader.GetBoolean(0);
                viaRoot = reader.GetBoolean(1);
                actions = reader.GetString(2);
            }
        }

        var tableList = string.Join(", ", tables.Select(t => t.QualifiedName));
        if (allTables is null)
        {
            // Via the root on every server that has the option: a partitioned table's changes then carry its own relation,
            // whichever partition holds the row, and partitions created or attached later are covered with no change here.
            var with = versionNum >= PartitionedPublicationVersion ? " WITH (publish_via_partition_root = true)" : "";
            // No table yet (every mapped table is awaited, CaptureSchemaChanges): an empty publication, tables added as created.
            var create = tables.Count == 0 ? $"CREATE PUBLICATION \"{publication}\"{with}" : $"CREATE PUBLICATION \"{publication}\" FOR TABLE {tableList}{with}";
            await RunDdlAsync(connection, create, user, publication, "the owner of the tables", cancellationToken).ConfigureAwait(false);
            Log.PublicationCreated(logger, publication, tableList);
            if (versionNum >= PartitionedPublicationVersion)
                await CheckPartitionsPublishedOnceAsync(connection, publication, tables, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (actions != "insert,update,delete,truncate")
            Log.PublicationPublishesOnly(logger, publication, actions);
        if (partitioned.Count > 0 && !viaRoot)
            await PublishViaRootAsync(connection, publication, allTables.Value, tables, partitioned, user, logger, cancellationToken).ConfigureAwait(false);

        if (allTables == false)
        {
            var missing = new List<SyncTableInfo>();
            foreach (var table in tables)
            {
                if (!await PublishesAsync(connection, publication, table, cancellationToken).ConfigureAwait(false))
                    missing.Add(table);
            }

            if (missing.Count > 0)
            {
                var add = string.Join(", ", missing.Select(t => t.QualifiedName));
                await RunDdlAsync(connection, $"ALTER PUBLICATION \"{publication}\" ADD TABLE {add}", user, publication, "the owner of the tables", cancellationToken).ConfigureAwait(false);
                Log.PublicationTablesAdded(logger, publication, add);
            }
        }

        if (versionNum >= PartitionedPublicationVersion)
            await CheckPartitionsPublishedOnceAsync(connection, publication, tables, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="publication"/> publishes <paramref name="table"/>.</summary>
    private static async Task<bool> PublishesAsync(NpgsqlConnection connection, string publication, SyncTableInfo table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = publication });
        command.Parameters.Add(new NpgsqlParameter { Value = table.Schema });
        command.Parameters.Add(new NpgsqlParameter { Value = table.Name });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
    }

    /// <summary>The mapped tables that are partitioned (relkind 'p').</summary>
    private static async Task<List<SyncTableInfo>> PartitionedTablesAsync(NpgsqlConnection connection, IReadOnlyList<SyncTableInfo> tables, CancellationToken cancellationToken)
    {
        var partitioned = new List<SyncTableInfo>();
        foreach (var table in tables)
        {
            await using var command = new NpgsqlCommand("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = table.QualifiedName });
            if (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true)
                partitioned.Add(table);
        }
        return partitioned;
    }

    /// <summary>
    /// The existing publication sends the changes of partitions under the partitions' own names. It is switched to send them
    /// under the root when that changes nothing for anyone else: every table it publishes is mapped by this client (or a
    /// partition of a mapped table), as in a publication an earlier DBSync created. Otherwise the statement is the
    /// user's to run. Changes written before the switch still arrive under the partitions; the stream delivers those as
    /// their mapped table's.
    /// </summary>
    private static async Task PublishViaRootAsync(NpgsqlConnection connection, string publication, bool allTables, IReadOnlyList<SyncTableInfo> tables,
        List<SyncTableInfo> partitioned, string user, ILogger logger, CancellationToken cancellationToken)
    {
        var alter = $"ALTER PUBLICATION \"{publication}\" SET (publish_via_partition_root = true)";
        var others = new List<string>();
        if (!allTables)
        {
            // Tables of the publication that are neither mapped nor partitions (at any depth) of a mapped table.
            await using var command = new NpgsqlCommand("""
                SELECT format('%I.%I', pt.schemaname, pt.tablename)
                FROM pg_publication_tables pt
                WHERE pt.pubname = $1
                  AND NOT EXISTS (SELECT 1 FROM pg_partition_ancestors(format('%I.%I', pt.schemaname, pt.tablename)::regclass) a(relid)
                                  WHERE a.relid = ANY (SELECT to_regclass(m) FROM unnest($2::text[]) m))
                  AND format('%I.%I', pt.schemaname, pt.tablename)::regclass <> ALL (SELECT to_regclass(m) FROM unnest($2::text[]) m)
                ORDER BY 1
                """, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = publication });
            command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.QualifiedName).ToArray() });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                others.Add(reader.GetString(0));
        }

        var names = string.Join(", ", partitioned.Select(t => t.DisplayName));
        if (allTables || others.Count > 0)
        {
            var what = allTables
                ? "it is FOR ALL TABLES"
                : $"it also publishes {string.Join(", ", others.Take(10))}{(others.Count > 10 ? $" and {others.Count - 10} more" : "")}, which this client does not map";
            throw new DBSyncConfigurationException(
                $"Publication \"{publication}\" sends the changes of partitioned {(partitioned.Count == 1 ? "table" : "tables")} {names} under the names of " +
                $"{(partitioned.Count == 1 ? "its" : "their")} partitions (publish_via_partition_root is off), and DBSync does not switch it itself because {what}, " +
                $"so other subscribers may depend on it. Run, as the publication's owner: {alter}; Then every subscriber of \"{publication}\" receives the changes " +
                "of each partitioned table in it under the partitioned table's own name instead of its partitions' (a PostgreSQL subscription then needs that " +
                "table on its side), and a TRUNCATE of one partition alone is no longer published. Or give DBSync a publication of its own: set " +
                "DBSyncOptions.PublicationName to a name that does not exist yet, and DBSync creates it.");
        }

        await RunDdlAsync(connection, alter, user, publication, "the publication's owner", cancellationToken).ConfigureAwait(false);
        Log.PublicationViaRootEnabled(logger, publication, names);
    }

    /// <summary>
    /// Under publish_via_partition_root a partition's changes arrive under the highest published table above it. A mapped
    /// table below a published partitioned table (a mapped partition, or a partitioned table and one of its partitions both
    /// mapped) would never see a change: refused.
    /// </summary>
    private static async Task CheckPartitionsPublishedOnceAsync(NpgsqlConnection connection, string publication, IReadOnlyList<SyncTableInfo> tables, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT m, a.relid::regclass::text
            FROM unnest($2::text[]) m
            CROSS JOIN LATERAL pg_partition_ancestors(to_regclass(m)) a(relid)
            JOIN pg_publication p ON p.pubname = $1 AND p.pubviaroot
            WHERE a.relid <> to_regclass(m)
              AND EXISTS (SELECT 1 FROM pg_publication_tables pt WHERE pt.pubname = $1 AND format('%I.%I', pt.schemaname, pt.tablename)::regclass = a.relid)
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = publication });
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.QualifiedName).ToArray() });
        var problems = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var table = tables.First(t => t.QualifiedName == reader.GetString(0));
                var ancestor = reader.GetString(1);
                problems.Add(
                    $"{table.DisplayName} (mapped by {table.EntityType.FullName}) is a partition of {ancestor}, which publication \"{publication}\" publishes with " +
                    $"publish_via_partition_root, so the changes of {table.DisplayName} arrive as changes of {ancestor} and would never reach {table.EntityType.Name}. " +
                    $"Map {ancestor} instead (its changes include those of all its partitions), and not its partitions as well; or use a publication without {ancestor}.");
            }
        }
        if (problems.Count > 0)
            throw new DBSyncConfigurationException(string.Join(Environment.NewLine, problems));
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private static async Task RunDdlAsync(NpgsqlConnection connection, string sql, string user, string publication, string owner, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (ConcurrentDdl.CreatedMeanwhile(e))
        {
            // Another instance created it (or added the table) at the same moment: it exists, which is all we need.
        }
        catch (PostgresException e) when (e.SqlState == InsufficientPrivilege)
        {
            throw new DBSyncConfigurationException(
                $"Role \"{user}\" may not create or change publication \"{publication}\" ({e.MessageText}). " +
                $"Run it once as {owner}: {sql};", e);
        }
    }
}
