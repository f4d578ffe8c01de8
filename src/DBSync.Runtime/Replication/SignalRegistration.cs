using DBSync.Mapping;
using DBSync.Protocol;
using DBSync.Snapshots;

namespace DBSync.Replication;

/// <summary>
/// The signal table: rows inserted into it control snapshots from SQL or other processes, in commit order, through
/// the stream itself (as in Debezium). Inserts are collected per transaction and acted on when it commits; updates,
/// deletes and truncates of the table mean nothing.
/// </summary>
internal sealed class SignalRegistration : TableRegistration
{
    private readonly List<Signal> _pending = [];

    public SignalRegistration(string schema, string name)
    {
        Table = new SyncTableInfo(schema, name, typeof(Signal),
        [
            new SyncColumnInfo("id", "Id", SyncColumnType.Int64, isNullable: false, keyOrder: 0),
            new SyncColumnInfo("kind", "Kind", SyncColumnType.String, isNullable: false, keyOrder: -1),
            new SyncColumnInfo("tables", "Tables", SyncColumnType.String, isNullable: true, keyOrder: -1) { ArrayRank = 1, ElementIsNullable = true },
            new SyncColumnInfo("filter", "Filter", SyncColumnType.String, isNullable: true, keyOrder: -1),
            new SyncColumnInfo("filter_parameters", "FilterParameters", SyncColumnType.String, isNullable: true, keyOrder: -1) { ArrayRank = 1, ElementIsNullable = true },
            new SyncColumnInfo("chunk_key", "ChunkKey", SyncColumnType.String, isNullable: true, keyOrder: -1),
        ]);
    }

    /// <summary>The SQL that creates the table, for setup and for the README.</summary>
    public static string CreateSql(string qualifiedName) =>
        $"CREATE TABLE IF NOT EXISTS {qualifiedName} (id bigserial PRIMARY KEY, kind text NOT NULL, tables text[], filter text, " +
        "filter_parameters text[], chunk_key text, created_at timestamptz NOT NULL DEFAULT now())";

    public override SyncTableInfo Table { get; }

    public override SnapshotTarget? Snapshot => null;

    /// <summary>Signals of the transaction that just committed; clears them.</summary>
    public List<Signal>? TakePending()
    {
        if (_pending.Count == 0)
            return null;
        var signals = _pending.ToList();
        _pending.Clear();
        return signals;
    }

    /// <summary>A new transaction began: anything left over belonged to one that never committed here.</summary>
    public void Reset() => _pending.Clear();

    public override ValueTask OnInsertAsync(ReadOnlySpan<byte> newTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken)
    {
        var reader = new TupleReader(newTuple, binding, keyOnly: false);
        long id = 0;
        string kind = "";
        string?[] tables = [];
        string? filter = null, chunkKey = null;
        string?[] parameters = [];
        while (reader.TryReadNext(out var value))
        {
            if (value.IsNull)
                continue;
            switch (value.Target)
            {
                case 0: id = value.ReadInt64(); break;
                case 1: kind = value.ReadString().Trim().ToLowerInvariant(); break;
                case 2: tables = value.ReadArray<string?, NullableString>(); break;
                case 3: filter = value.ReadString(); break;
                case 4: parameters = value.ReadArray<string?, NullableString>(); break;
                case 5: chunkKey = value.ReadString(); break;
            }
        }
        _pending.Add(new Signal(id, kind, [.. tables.OfType<string>()], filter, parameters, chunkKey)); // a NULL in tables names no table
        return default;
    }

    public override ValueTask OnUpdateAsync(ReadOnlySpan<byte> newTuple, OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken) => default;

    public override ValueTask OnDeleteAsync(OldTupleKind oldKind, ReadOnlySpan<byte> oldTuple, ColumnBinding binding, in TransactionContext tx, ulong lsn, CancellationToken cancellationToken) => default;

    public override ValueTask OnTruncateAsync(in TransactionContext tx, ulong lsn, CancellationToken cancellationToken) => default;

    private readonly struct NullableString : IElementReader<string?>
    {
        public static string? Read(in TupleValue element) => element.IsNull ? null : element.ReadString();
    }
}
