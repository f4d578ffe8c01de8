using System.Text;
using DBSync.Diagnostics;
using DBSync.Internal;
using DBSync.Protocol;
using DBSync.Replication;
using DBSync.Sample;
using Microsoft.Extensions.Logging.Abstractions;

namespace DBSync.Runtime.Tests;

/// <summary>
/// A <see cref="TransactionAssembler"/> over the seed tables (users, restaurant, visit), with no server: what it hands on
/// is recorded in order, and a relation no type maps is owned by whatever <see cref="Owners"/> says.
/// </summary>
internal sealed class AssemblerHarness : ITransactionSink, IPartitionTracker, IDisposable
{
    /// <summary>This pipeline's message prefix in the harness (the recordings' transactional message has it).</summary>
    public const string Prefix = "dbsync";

    private readonly string _spillDirectory = Path.Combine(Path.GetTempPath(), $"dbsync-assembler-tests-{Guid.NewGuid():N}");
    private readonly bool _record;

    /// <param name="record">Whether to record what is handed on; without, only the last entity of each table is kept
    /// (for counting allocations).</param>
    public AssemblerHarness(bool record = true)
    {
        _record = record;
        var invoker = new HandlerInvoker(new DBSyncOptions { ConnectionString = "Host=unused" }, NullLogger.Instance);
        var telemetry = new PipelineTelemetry("assembler-tests");
        Users = Register<User>(invoker, telemetry);
        Restaurants = Register<Restaurant>(invoker, telemetry);
        Visits = Register<Visit>(invoker, telemetry);
        var tables = new Dictionary<(string Schema, string Name), TableRegistration>
        {
            [("public", "users")] = Users,
            [("public", "restaurant")] = Restaurants,
            [("public", "visit")] = Visits,
        };
        var relations = new RelationMap(tables, this, new ConfirmedPosition(), "assembler_tests", NullLogger.Instance);
        Streams = new StreamedTransactions(long.MaxValue, _spillDirectory);
        Assembler = new TransactionAssembler(relations, Streams, Encoding.UTF8.GetBytes(Prefix), this);
    }

    public TransactionAssembler Assembler { get; }

    public StreamedTransactions Streams { get; }

    public TableRegistration<User> Users { get; }

    public TableRegistration<Restaurant> Restaurants { get; }

    public TableRegistration<Visit> Visits { get; }

    /// <summary>What was handed on, in order.</summary>
    public List<Delivered> Events { get; } = [];

    /// <summary>The entities of the row changes, in order.</summary>
    public List<object?> Rows { get; } = [];

    /// <summary>The last visit delivered.</summary>
    public Visit? LastVisit { get; private set; }

    /// <summary>The owner of each unmapped relation asked about (none when not listed).</summary>
    public Dictionary<uint, PartitionOwner> Owners { get; } = [];

    /// <summary>The unmapped relations asked about, in order.</summary>
    public List<uint> Lookups { get; } = [];

    /// <summary>The shapes of <see cref="Events"/>.</summary>
    public List<string> Shapes => Events.Select(e => e.Shape).ToList();

    /// <summary>Hands <paramref name="frame"/> to the assembler; the harness's handlers complete at once, so does it.</summary>
    public void Feed(byte[] frame, ulong lsn = 0)
    {
        var handled = Assembler.HandleAsync(frame, lsn, CancellationToken.None);
        Assert.True(handled.IsCompletedSuccessfully, "the harness's handlers complete synchronously");
        handled.GetAwaiter().GetResult();
    }

    private TableRegistration<T> Register<T>(HandlerInvoker invoker, PipelineTelemetry telemetry) where T : ISyncTable<T>
    {
        var registration = new TableRegistration<T>(invoker, telemetry);
        registration.Add((change, _) =>
        {
            if (change.New is Visit visit)
                LastVisit = visit;
            if (_record)
            {
                Events.Add(new($"{change.Kind.ToString()[0]} {T.TableInfo.Name} #{change.IndexInTransaction}", change.Xid, (ulong)change.CommitLsn, 0));
                Rows.Add(change.Row);
            }
            return default;
        });
        return registration;
    }

    void ITransactionSink.OnBegin(in TransactionContext transaction)
    {
        Assert.Equal(0, transaction.Changes.Count);
        Events.Add(new("B", transaction.Xid, (ulong)transaction.CommitLsn, 0));
    }

    ValueTask ITransactionSink.OnPipelineMessageAsync(ReadOnlySpan<byte> content, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken)
    {
        Events.Add(new($"W {Encoding.UTF8.GetString(content)}", transaction.Xid, (ulong)transaction.CommitLsn, 0));
        return default;
    }

    ValueTask ITransactionSink.OnSchemaMessageAsync(ReadOnlySpan<byte> content, in TransactionContext transaction, ulong lsn, CancellationToken cancellationToken)
    {
        Events.Add(new($"D {Encoding.UTF8.GetString(content)}", transaction.Xid, (ulong)transaction.CommitLsn, 0));
        return default;
    }

    ValueTask ITransactionSink.OnMessageAsync(in LogicalDecodingMessage message, uint xid, CancellationToken cancellationToken)
    {
        Events.Add(new($"M {Encoding.UTF8.GetString(message.Prefix)} {Encoding.UTF8.GetString(message.Content)}", xid, 0, 0));
        return default;
    }

    ValueTask ITransactionSink.OnCommitAsync(TransactionEnd end, CancellationToken cancellationToken)
    {
        var shape = $"C {end.Transaction.Changes.Count}{(end.Origin is { } origin ? " from " + origin : "")}{(end.IsInternal ? " internal" : "")}";
        Events.Add(new(shape, end.Transaction.Xid, (ulong)end.Transaction.CommitLsn, end.EndLsn));
        return default;
    }

    Task<PartitionOwner?> IPartitionTracker.FindOwnerAsync(uint relationId, CancellationToken cancellationToken)
    {
        Lookups.Add(relationId);
        return Task.FromResult(Owners.GetValueOrDefault(relationId));
    }

    bool IPartitionTracker.AreAllPartitionsOf(SyncTableInfo table, IReadOnlyCollection<uint> partitions) => false;

    void IPartitionTracker.OnTruncated(string table, ulong commitLsn)
    {
    }

    void IPartitionTracker.OnPartitionTruncated(SyncTableInfo table, uint oid, string partition, ulong lsn)
        => Events.Add(new($"partition {partition} truncated", 0, lsn, 0));

    public void Dispose()
    {
        Assembler.Dispose();
        if (Directory.Exists(_spillDirectory))
            Directory.Delete(_spillDirectory, recursive: true);
    }

    /// <summary>One thing handed on: its shape (what, and its index in the transaction for a change), and the transaction
    /// it was handed on in.</summary>
    public sealed record Delivered(string Shape, uint Xid, ulong CommitLsn, ulong EndLsn);
}
