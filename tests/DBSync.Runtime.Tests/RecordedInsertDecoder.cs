using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Mapping;
using DBSync.Protocol;
using DBSync.Replication;
using Microsoft.Extensions.Logging.Abstractions;

namespace DBSync.Runtime.Tests;

// Shared with benchmarks/DBSync.Benchmarks, which links this file.

/// <summary>The Insert of <typeparamref name="T"/>'s table from a recording, decoded into a Change as the stream does it.</summary>
internal sealed class RecordedInsertDecoder<T> where T : ISyncTable<T>
{
    private readonly byte[] _insert;
    private readonly ColumnBinding _binding;
    private readonly TableRegistration<T> _registration;
    private readonly TransactionContext _transaction = new(1, default, DateTimeOffset.UnixEpoch, new ChangeCounter());
    private T _last = default!;

    private RecordedInsertDecoder(byte[] insert, ColumnBinding binding)
    {
        _insert = insert;
        _binding = binding;
        _registration = new TableRegistration<T>(new HandlerInvoker(new DBSyncOptions { ConnectionString = "Host=unused" }, NullLogger.Instance),
            new PipelineTelemetry("recorded"));
        _registration.Add((change, _) =>
        {
            _last = change.New!;
            return default;
        });
    }

    /// <summary>From <c>Fixtures/<paramref name="file"/></c> next to the running assembly (one <c>lsn hex</c> line per frame).</summary>
    public static RecordedInsertDecoder<T> Create(string file)
    {
        var frames = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", file))
            .Where(l => l.Length > 0).Select(l => Convert.FromHexString(l.Split(' ')[1])).ToList();
        var relation = frames.Where(f => PgOutputParser.KindOf(f) == PgOutputMessageKind.Relation)
            .Select(f => PgOutputParser.ReadRelation(f, inStream: false))
            .First(r => r.Namespace == T.TableInfo.Schema && r.Name == T.TableInfo.Name);
        var insert = frames.First(f => PgOutputParser.KindOf(f) == PgOutputMessageKind.Insert && PgOutputParser.ReadInsert(f, inStream: false).RelationId == relation.RelationId);
        // The recordings' one type of their own is the enum mood; a running client reads that from the database.
        var enums = frames.Where(f => PgOutputParser.KindOf(f) == PgOutputMessageKind.Type).Select(f => PgOutputParser.ReadType(f, inStream: false))
            .Select(t => (t.TypeOid, t.Name)).ToArray();
        return new RecordedInsertDecoder<T>(insert, ColumnBinding.Create(T.TableInfo, relation, types: PgTypeCatalog.WithEnums(enums)));
    }

    public T Decode()
    {
        var insert = PgOutputParser.ReadInsert(_insert, inStream: false);
        var pending = _registration.OnInsertAsync(insert.NewTuple, _binding, _transaction, 0, CancellationToken.None);
        if (!pending.IsCompletedSuccessfully)
            throw new InvalidOperationException("The handler completes synchronously.");
        return _last;
    }
}
