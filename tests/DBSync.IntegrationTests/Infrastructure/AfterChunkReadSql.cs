using DBSync.Checkpoints;
using DBSync.Mapping;
using DBSync.Snapshots;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>A client's snapshot SQL, with a hook that runs after each chunk is read and before its high watermark is
/// written (inside the chunk's window): tests change the table there. The hook gets the table and the chunk number.</summary>
internal sealed class AfterChunkReadSql(ISnapshotSql inner, Func<string, long, CancellationToken, Task> hook) : ISnapshotSql
{
    /// <summary>Runs <paramref name="hook"/> after every chunk that <paramref name="client"/>'s snapshots read from now on.</summary>
    public static void Install(DBSyncClient client, Func<string, long, CancellationToken, Task> hook)
    {
        var open = client.Snapshots.OpenSql;
        client.Snapshots.OpenSql = async cancellationToken => new AfterChunkReadSql(await open(cancellationToken), hook);
    }

    public async Task<SnapshotChunk<T>> ReadChunkAsync<T>(SnapshotQuery query, long chunk, IReadOnlyList<string>? after, int size, PgTypeCatalog types,
        CancellationToken cancellationToken) where T : ISyncTable<T>
    {
        var read = await inner.ReadChunkAsync<T>(query, chunk, after, size, types, cancellationToken);
        await hook(query.Table.DisplayName, chunk, cancellationToken);
        return read;
    }

    public string Database => inner.Database;

    public Task EmitAsync(Watermark watermark, CancellationToken cancellationToken) => inner.EmitAsync(watermark, cancellationToken);

    public Task<SnapshotVisibility> CurrentSnapshotAsync(CancellationToken cancellationToken) => inner.CurrentSnapshotAsync(cancellationToken);

    public Task<SnapshotQuery> PrepareQueryAsync(SyncTableInfo table, JobState job, CancellationToken cancellationToken)
        => inner.PrepareQueryAsync(table, job, cancellationToken);

    public Task<long> EstimateRowsAsync(SyncTableInfo table, CancellationToken cancellationToken) => inner.EstimateRowsAsync(table, cancellationToken);

    public Task<IReadOnlyList<string[]>> SampleKeysAsync(SnapshotQuery query, int pages, CancellationToken cancellationToken)
        => inner.SampleKeysAsync(query, pages, cancellationToken);

    public Task<WorkloadSample> SampleWorkloadAsync(CancellationToken cancellationToken) => inner.SampleWorkloadAsync(cancellationToken);

    public Task<bool> TableExistsAsync(string schema, string name, CancellationToken cancellationToken) => inner.TableExistsAsync(schema, name, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
