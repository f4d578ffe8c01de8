using DBSync.Cli.Database;
using DBSync.Cli.Output;
using Npgsql;

namespace DBSync.Cli.Snapshots;

/// <summary>
/// Follows snapshots through the pipeline's checkpoint, which DBSync saves after every chunk: the running table's rows
/// and chunks against its estimated size, until each followed table has an outcome (completed, cancelled, skipped,
/// failed). It needs nothing but read access to the checkpoint table and the catalog.
/// </summary>
internal sealed class SnapshotFollower(ServerConnection server, PostgresCheckpointStore store, string slot, ProgressView view)
{
    /// <summary>Tables larger than this are not counted when the catalog has no estimate: the bar then shows rows only.</summary>
    private const long CountLimitBytes = 64L << 20;

    private readonly Dictionary<string, long?> _estimates = [];

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Follows <paramref name="tables"/> (<c>schema.name</c>), or, when null, every table queued until the queue is
    /// empty. Outcomes already in <paramref name="known"/> (read before the snapshots were requested) are old ones.
    /// Returns the outcomes, one per followed table.
    /// </summary>
    public async Task<IReadOnlyList<FinishedSnapshot>> FollowAsync(IReadOnlyList<string>? tables, IReadOnlyList<FinishedSnapshot> known,
        CancellationToken cancellationToken)
    {
        var old = known.ToHashSet();
        var followed = tables?.ToList() ?? [];
        var seenQueued = new HashSet<string>();
        var outcomes = new Dictionary<string, FinishedSnapshot>();
        await using var connection = await server.OpenAsync(cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var checkpoint = await CheckpointInfo.LoadAsync(store, slot, cancellationToken).ConfigureAwait(false);
            var queue = checkpoint?.Queue ?? [];
            if (tables is null)
                followed.AddRange(queue.Select(q => q.Table).Where(t => !followed.Contains(t)));

            foreach (var table in followed.Where(t => !outcomes.ContainsKey(t)))
            {
                var position = queue.ToList().FindIndex(q => q.Table == table);
                if (position >= 0)
                {
                    seenQueued.Add(table);
                    var entry = queue[position];
                    if (!entry.Started)
                    {
                        view.Queued(table, position);
                        continue;
                    }
                    var total = await EstimateAsync(connection, entry, cancellationToken).ConfigureAwait(false);
                    view.Running(table, entry.RowsRead, entry.Chunks, total, checkpoint!.Paused);
                    continue;
                }
                // Not queued (any more): its new outcome. A cancelled table leaves the queue a moment before its outcome is
                // saved, so one seen queued waits for it; one never seen queued here ended before: its last outcome.
                var outcome = checkpoint?.Finished.LastOrDefault(f => f.Table == table && !old.Contains(f));
                if (outcome is null && seenQueued.Contains(table))
                    continue;
                outcome ??= checkpoint?.Finished.LastOrDefault(f => f.Table == table);
                if (outcome is null)
                {
                    throw new CliException(ExitCodes.NotFound,
                        $"No snapshot of {table} is queued for slot \"{slot}\", and none finished recently (dbsync checkpoint show --slot {slot} lists them).");
                }
                outcomes[table] = outcome;
                view.Finished(outcome);
            }

            if (outcomes.Count == followed.Count && (tables is not null || queue.Count == 0))
                return [.. followed.Select(t => outcomes[t])];
            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The rows a snapshot of the table will read: the catalog's estimate, or an exact count of a table the
    /// catalog has not analyzed yet if it is small; null for a filtered snapshot or a large unanalyzed table.</summary>
    private async Task<long?> EstimateAsync(NpgsqlConnection connection, SnapshotQueueEntry entry, CancellationToken cancellationToken)
    {
        if (entry.Filter is not null)
            return null;
        if (_estimates.TryGetValue(entry.Table, out var cached))
            return cached;
        var table = TableName.Parse(entry.Table);
        await using var command = new NpgsqlCommand(
            """
            SELECT c.reltuples::bigint, pg_relation_size(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = table.Schema });
        command.Parameters.Add(new NpgsqlParameter { Value = table.Name });
        long? estimate = null;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var tuples = reader.GetInt64(0);
                if (tuples > 0)
                    estimate = tuples;
                else if (reader.GetInt64(1) <= CountLimitBytes)
                    estimate = -1; // count it below
            }
        }
        if (estimate == -1)
        {
            await using var count = new NpgsqlCommand($"SELECT count(*) FROM {table.Quoted}", connection);
            estimate = (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
        _estimates[entry.Table] = estimate;
        return estimate;
    }
}
