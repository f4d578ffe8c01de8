using DBSync.Internal;
using DBSync.Mapping;
using DBSync.Protocol;
using Microsoft.Extensions.Logging;
using NpgsqlTypes;

namespace DBSync.Replication;

/// <summary>
/// Which mapped table each relation of the stream is, and how its columns bind to the table's: from the stream's Relation
/// and Type messages (rebound by name whenever a Relation message comes again), and, for a relation no type maps, from
/// the partitions of the mapped tables. One per session, used by the read loop only.
/// </summary>
internal sealed class RelationMap(IReadOnlyDictionary<(string Schema, string Name), TableRegistration> tables, IPartitionTracker partitions,
    ConfirmedPosition confirmed, string publication, ILogger logger)
{
    private readonly Dictionary<uint, RelationState> _relations = [];
    private readonly Dictionary<uint, string> _typeNames = [];

    public void OnType(in TypeMessage type) => _typeNames[type.TypeOid] = $"{type.Namespace}.{type.Name}";

    public void Bind(RelationMessage relation)
    {
        ColumnBinding? binding = null;
        if (tables.TryGetValue((relation.Namespace, relation.Name), out var registration) && registration.SkippedBecause is not null)
            registration = null; // skipped after a schema change it cannot follow: its changes are no longer delivered
        if (registration is not null)
        {
            // Throws SchemaMismatchException when a mapped column vanished or changed to an incompatible type: the
            // stream stops before any change of the new shape is delivered or acknowledged.
            binding = ColumnBinding.Create(registration.Table, relation, _typeNames, registration.Types);
            Log.RelationBound(logger, $"{relation.Namespace}.{relation.Name}", relation.RelationId, registration.Table.EntityType.Name);
            // A changed shape inside a snapshot window means the chunk may have been read with the old one: it is read
            // again. The first Relation message of a session cannot be compared with anything, so it counts as a change.
            if (!_relations.TryGetValue(relation.RelationId, out var previous) || !previous.Relation.Columns.AsSpan().SequenceEqual(relation.Columns))
                registration.OnShapeChanged();
        }
        _relations[relation.RelationId] = new RelationState(relation, registration, binding);
    }

    /// <summary>The relation a change names, as its last Relation message described it.</summary>
    public RelationState Get(uint relationId, PgOutputMessageKind kind)
        => _relations.TryGetValue(relationId, out var relation)
            ? relation
            : throw new ProtocolException($"pgoutput message '{(char)kind}' names relation oid {relationId} before any Relation message described it.");

    /// <summary>
    /// Asks the database what a relation no type maps is (once per Relation message): a partition of a mapped table (its
    /// changes arrive under its own name when the publication sends partitions, as one without publish_via_partition_root
    /// did when they were written) is bound to that table, and its changes delivered as the table's; a partitioned table
    /// above a mapped one stops the stream; anything else is logged once and skipped.
    /// </summary>
    public async ValueTask<RelationState> ResolveAsync(RelationState state, CancellationToken cancellationToken)
    {
        var relation = state.Relation;
        var name = $"{relation.Namespace}.{relation.Name}";
        var owner = await partitions.FindOwnerAsync(relation.RelationId, cancellationToken).ConfigureAwait(false);

        RelationState resolved;
        if (owner is null)
        {
            Log.UnmappedRelation(logger, publication, name, relation.RelationId);
            resolved = state with { Resolved = true };
        }
        else if (!owner.IsPartition)
        {
            var table = owner.Registration.Table;
            throw new DBSyncConfigurationException(
                $"Publication \"{publication}\" sent a change of {name} (relation oid {relation.RelationId}), a partitioned table that {table.DisplayName} " +
                $"(mapped by {table.EntityType.FullName}) is a partition of. With publish_via_partition_root the changes of {table.DisplayName} arrive as changes of " +
                $"{name}, mixed with its other partitions', so DBSync cannot deliver them as {table.EntityType.Name}: nothing after {new NpgsqlLogSequenceNumber(confirmed.Value)} is confirmed. " +
                $"Map {name} instead of {table.DisplayName} (it carries the changes of all its partitions), or remove {name} from the publication " +
                $"(ALTER PUBLICATION \"{publication}\" DROP TABLE ...), then start again.");
        }
        else
        {
            // Bound by name like the mapped table's own Relation: a partition has the same columns, possibly in another order.
            var binding = ColumnBinding.Create(owner.Registration.Table, relation, _typeNames, owner.Registration.Types);
            owner.Registration.OnShapeChanged();
            Log.PartitionDeliveredAsTable(logger, name, relation.RelationId, owner.Registration.Table.DisplayName);
            resolved = state with { Registration = owner.Registration, Binding = binding, Resolved = true, IsPartition = true };
        }
        _relations[relation.RelationId] = resolved;
        return resolved;
    }

    /// <summary>A TRUNCATE of <paramref name="relationIds"/>: delivered to each mapped table among them. Partitions sent
    /// under their own names are a truncate of their table when all of them are (as a publication that sends partitions
    /// carries <c>TRUNCATE table</c>); fewer are not, and are reported.</summary>
    public async ValueTask TruncateAsync(uint[] relationIds, TransactionContext transaction, ulong lsn, CancellationToken cancellationToken)
    {
        List<RelationState>? partitionsTruncated = null;
        foreach (var relationId in relationIds)
        {
            var relation = Get(relationId, PgOutputMessageKind.Truncate);
            if (relation.Registration is null && !relation.Resolved)
                relation = await ResolveAsync(relation, cancellationToken).ConfigureAwait(false);
            if (relation.Registration is null)
                continue;
            if (relation.IsPartition)
                (partitionsTruncated ??= []).Add(relation);
            else
                await DeliverTruncateAsync(relation.Registration, transaction, lsn, cancellationToken).ConfigureAwait(false);
        }
        if (partitionsTruncated is null)
            return;
        foreach (var group in partitionsTruncated.GroupBy(p => p.Registration!))
        {
            if (partitions.AreAllPartitionsOf(group.Key.Table, group.Select(p => p.Relation.RelationId).ToList()))
            {
                await DeliverTruncateAsync(group.Key, transaction, lsn, cancellationToken).ConfigureAwait(false);
                continue;
            }
            foreach (var partition in group)
                partitions.OnPartitionTruncated(group.Key.Table, partition.Relation.RelationId, $"{partition.Relation.Namespace}.{partition.Relation.Name}", (ulong)transaction.CommitLsn);
        }
    }

    private ValueTask DeliverTruncateAsync(TableRegistration registration, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken)
    {
        partitions.OnTruncated(registration.Table.DisplayName, (ulong)transaction.CommitLsn);
        return registration.OnTruncateAsync(transaction, lsn, cancellationToken);
    }
}

/// <param name="Relation">The last Relation message of the relation.</param>
/// <param name="Registration">The mapped table its changes are delivered to, if any.</param>
/// <param name="Binding">Its columns bound to the mapped table's.</param>
/// <param name="Resolved">An unmapped relation whose relation to the mapped tables was looked up (once per Relation message).</param>
/// <param name="IsPartition">A partition of <paramref name="Registration"/>'s table, sent under its own name.</param>
internal sealed record RelationState(RelationMessage Relation, TableRegistration? Registration, ColumnBinding? Binding, bool Resolved = false, bool IsPartition = false);
