using DBSync.Internal;
using DBSync.Mapping;
using DBSync.Replication;
using DBSync.Snapshots;
using Microsoft.Extensions.Logging;
using NpgsqlTypes;

namespace DBSync.Schema;

/// <summary>
/// Follows the DDL statements the capture trigger writes into the stream (<see cref="DBSyncOptions.CaptureSchemaChanges"/>),
/// on the stream's thread, at each statement's place among the row changes: a mapped table whose new shape its type cannot
/// hold stops the stream there (before anything of that shape is delivered or confirmed), with the statement in the error;
/// a mapped table's open snapshot chunk is read again; a mapped table whose rows the statement rewrote (values changed
/// without row events) is snapshotted again once the transaction commits (<see cref="DBSyncOptions.SnapshotAfterRewrite"/>);
/// then the <see cref="SchemaChange"/>s go to the handlers.
/// </summary>
internal sealed class SchemaFollower(
    DBSyncOptions options,
    ConnectionPool connections,
    IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables,
    IReadOnlyList<Func<SchemaChange, CancellationToken, ValueTask>> handlers,
    HandlerInvoker invoker,
    Action<IReadOnlyCollection<string>> cancelSnapshots,
    ILogger logger)
{
    private readonly List<Signal> _pendingSnapshots = [];
    private string? _lastStatement;

    /// <summary>A transaction begins: snapshots queued by one that did not commit here are dropped.</summary>
    public void OnBegin()
    {
        _pendingSnapshots.Clear();
        _lastStatement = null;
    }

    /// <summary>The snapshots the committed transaction's statements call for, as signals (acted on, and checkpointed,
    /// before the transaction is acknowledged; once per commit position, like the signal table's).</summary>
    public List<Signal>? TakePendingSnapshots()
    {
        if (_pendingSnapshots.Count == 0)
            return null;
        var pending = _pendingSnapshots.ToList();
        _pendingSnapshots.Clear();
        return pending;
    }

    /// <summary>One DDL message of the capture trigger, inside <paramref name="transaction"/> at <paramref name="lsn"/>.</summary>
    public ValueTask OnMessageAsync(ReadOnlySpan<byte> content, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken)
    {
        DdlMessage message;
        try
        {
            message = DdlMessage.Parse(content);
        }
        catch (FormatException e)
        {
            throw new ProtocolException(
                $"The DDL message at {new NpgsqlLogSequenceNumber(lsn)} (transaction {transaction.Xid}, prefix \"{DdlCaptureSql.Prefix}\") is not one DBSync can read: {e.Message.TrimEnd('.')}.");
        }
        // A query string with several statements is written whole into its transaction's first message only.
        if (message.StatementSame)
            message = message with { Statement = _lastStatement ?? "" };
        _lastStatement = message.Statement;
        var position = new SchemaChangeClassifier.Position(transaction.Xid, new NpgsqlLogSequenceNumber(lsn), transaction.CommitLsn, transaction.CommitTime);
        return FollowAsync(message, position, cancellationToken);
    }

    private async ValueTask FollowAsync(DdlMessage message, SchemaChangeClassifier.Position position, CancellationToken cancellationToken)
    {
        foreach (var table in message.Tables)
        {
            if (Mapped(table) is not { } registration)
                continue;
            Follow(registration, table, message, position);
            if (table is { Before: null, After: not null } && registration is not SignalRegistration && registration.SkippedBecause is null)
                await OnCreatedAsync(registration, position, cancellationToken).ConfigureAwait(false);
        }
        var changes = SchemaChangeClassifier.Classify(message, position, EntityOf);
        foreach (var change in changes)
        {
            Log.SchemaChanged(logger, change.Kind.ToString(), change.Table ?? change.Object ?? "?", change.Column, change.CommandTag, position.Lsn.ToString());
            if (handlers.Count > 0)
                await invoker.InvokeAllAsync(handlers, change, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A mapped table that did not exist when the run started was created: it goes into the publication now
    /// (its changes from then on are in the stream), and a snapshot delivers what was written before (once the
    /// transaction commits, checkpointed before it is confirmed).</summary>
    private async ValueTask OnCreatedAsync(TableRegistration registration, SchemaChangeClassifier.Position position, CancellationToken cancellationToken)
    {
        var info = registration.Table;
        await using (var connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false))
            await ReplicationSetup.AddToPublicationAsync(connection, options.PublicationName, info, logger, cancellationToken).ConfigureAwait(false);
        QueueSnapshot(registration);
        Log.MappedTableCreated(logger, info.DisplayName, info.EntityType.FullName ?? info.EntityType.Name, position.Lsn.ToString(), options.PublicationName);
    }

    private Type? EntityOf(string qualified)
        => Find(qualified) is { } registration and not SignalRegistration ? registration.Table.EntityType : null;

    /// <summary>The registration of a table named <c>schema.name</c> (a schema's name may hold dots: every split is tried).</summary>
    private TableRegistration? Find(string qualified)
    {
        for (var dot = qualified.IndexOf('.', StringComparison.Ordinal); dot > 0; dot = qualified.IndexOf('.', dot + 1))
        {
            if (tables.TryGetValue((qualified[..dot], qualified[(dot + 1)..]), out var registration))
                return registration;
        }
        return null;
    }

    private TableRegistration? Find(TableShape shape) => tables.TryGetValue((shape.Schema, shape.Name), out var registration) ? registration : null;

    /// <summary>The mapped table the statement concerned: by its name before the statement, or after it (a new table).</summary>
    private TableRegistration? Mapped(DdlTable table)
        => (table.Before is { } before ? Find(before) : null) ?? (table.After is { } after ? Find(after) : null);

    /// <summary>A snapshot of the table once the transaction commits (none for the signal table).</summary>
    private void QueueSnapshot(TableRegistration registration)
    {
        if (registration.Snapshot is not null)
            _pendingSnapshots.Add(new Signal(0, SnapshotQueue.SnapshotAfterRewriteKind, [registration.Table.DisplayName], null, [], null));
    }

    private void Follow(TableRegistration registration, DdlTable table, DdlMessage message, in SchemaChangeClassifier.Position position)
    {
        var info = registration.Table;
        if (registration.SkippedBecause is not null)
            return;
        if (registration is not SignalRegistration)
        {
            try
            {
                Check(registration, table, message, position);
            }
            catch (SchemaMismatchException e) when (options.WhenSchemaIncompatible == SchemaIncompatible.SkipTable)
            {
                registration.SkippedBecause = e.Message;
                cancelSnapshots([info.DisplayName]);
                Log.TableSkipped(logger, info.DisplayName, e.Message);
                return;
            }
        }
        // Whatever the statement did, a chunk of the table in its window may have been read with the old shape.
        registration.OnShapeChanged();
        if ((table.Rewritten || info.Columns.Any(c => table.Replaced(c.Name))) && table.After is not null && options.SnapshotAfterRewrite
            && registration.Snapshot is not null)
        {
            QueueSnapshot(registration);
            Log.RewriteSnapshotQueued(logger, info.DisplayName, Shorten(message.Statement), position.Lsn.ToString());
        }
    }

    /// <summary>Stops the stream when the table's new shape is not one its type can be delivered in.</summary>
    private static void Check(TableRegistration registration, DdlTable table, DdlMessage message, in SchemaChangeClassifier.Position position)
    {
        var info = registration.Table;
        var entity = info.EntityType.FullName;
        var where = $"by the statement \"{Shorten(message.Statement)}\" (transaction {position.Xid}, its DDL message at {position.Lsn}, committed at {position.CommitLsn})";
        var stopped = $"The stream stopped there: nothing of the table after it is delivered or confirmed.";
        if (table.After is not { } after)
        {
            throw Mismatch(info, "", null, "", message, position,
                $"Table {info.DisplayName}, mapped by {entity}, was dropped {where}. {stopped} Create the table again, or remove its handlers " +
                $"(On<{info.EntityType.Name}>) and the table from the publication, then restart.");
        }
        if (after.QualifiedName != info.DisplayName)
        {
            throw Mismatch(info, "", null, "", message, position,
                $"Table {info.DisplayName}, mapped by {entity}, was renamed to {after.QualifiedName} {where}. {stopped} Map the new name " +
                $"([SyncTable(\"{after.Name}\", Schema = \"{after.Schema}\")]) and add it to the publication, or rename it back, then restart.");
        }
        foreach (var column in info.Columns)
        {
            var now = after.Column(column.Name);
            if (now is { Generated: not null })
            {
                throw Mismatch(info, column.Name, now.Type, column.ClrTypeName, message, position,
                    $"Column \"{column.Name}\" of {info.DisplayName} (property {info.EntityType.Name}.{column.PropertyName}) is a generated column {where}: pgoutput " +
                    $"never sends generated columns. {stopped} Mark the property [SyncIgnore] (it cannot be a key), then restart.");
            }
            if (now is not null)
            {
                try
                {
                    ColumnBinding.Resolve(info, column, now.TypeOid, registration.Types);
                }
                catch (SchemaMismatchException e)
                {
                    var before = table.Before?.Column(column.Name)?.Type;
                    throw Mismatch(info, column.Name, now.Type, column.ClrTypeName, message, position,
                        $"Column \"{column.Name}\" of {info.DisplayName} changed type{(before is null ? "" : $" from {before}")} to {now.Type} {where}. {stopped} {e.Message}");
                }
                continue;
            }
            var renamed = table.Before?.Column(column.Name) is { } old && after.Columns.FirstOrDefault(c => c.Num == old.Num) is { } same ? same.Name : null;
            throw Mismatch(info, column.Name, null, column.ClrTypeName, message, position,
                $"Column \"{column.Name}\" of {info.DisplayName} (property {info.EntityType.Name}.{column.PropertyName}) was " +
                (renamed is null ? "dropped" : $"renamed to \"{renamed}\"") + $" {where}. {stopped} " +
                (renamed is null
                    ? column.IsKey
                        ? $"Restore the column (or key the entity on other columns), then restart; {ColumnTypeCheck.KeyCannotBeIgnored}."
                        : "Mark the property [SyncIgnore] or restore the column, then restart."
                    : $"Map the property to the new name ([Column(\"{renamed}\")]) or rename the column back, then restart."));
        }
        // Updates and deletes identify rows by the replica identity: as at start (ReplicationSetup), it must be the entity's
        // key exactly, or the whole row.
        var entityKey = info.KeyColumns.Select(k => k.Name).ToArray();
        var problem = after.ReplicaIdentity switch
        {
            'f' => null,
            'n' => "its replica identity is now NOTHING: updates and deletes carry no key",
            'i' when after.IdentityIndex is { } index && !ReplicationSetup.SameColumns(index, entityKey) => $"its replica identity index is now on ({string.Join(", ", index)})",
            'd' when after.PrimaryKey.Length == 0 => "it has no primary key and no other replica identity: updates and deletes carry no key",
            'd' when !ReplicationSetup.SameColumns(after.PrimaryKey, entityKey) => $"its primary key is now ({string.Join(", ", after.PrimaryKey)})",
            _ => null,
        };
        if (problem is not null)
        {
            var key = info.KeyColumns[0];
            throw Mismatch(info, key.Name, null, key.ClrTypeName, message, position,
                $"Table {info.DisplayName}: {problem} {where}, where {entity} marks [PrimaryKey] on ({string.Join(", ", entityKey)}): deletes would carry a key " +
                $"the entity cannot hold. {stopped} Put [PrimaryKey] on exactly the new key's columns, or restore the key, or set REPLICA IDENTITY FULL, then restart.");
        }
    }

    private static SchemaMismatchException Mismatch(SyncTableInfo table, string column, string? pgType, string clrType, DdlMessage message,
        in SchemaChangeClassifier.Position position, string text)
        => new(table, column, pgType, clrType, text) { Statement = message.Statement, StatementLsn = position.Lsn };

    /// <summary>The statement for a message: its first 500 characters, on one line.</summary>
    internal static string Shorten(string statement)
    {
        var flat = string.Join(' ', statement.Split((char[])['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries)).Trim();
        return flat.Length <= 500 ? flat : flat[..500] + "...";
    }
}
