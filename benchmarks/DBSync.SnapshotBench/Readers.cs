using System.Diagnostics;
using DBSync.Sample;
using Npgsql;
using DBSync.Bench;

namespace DBSync.SnapshotBench;

/// <summary>What a reader saw: the rows, and the sum of their ids so that no row's materialisation can be skipped.</summary>
internal sealed class RowCounter
{
    public long Rows { get; private set; }

    public long IdSum { get; private set; }

    public void Add(User user)
    {
        Rows++;
        IdSum += user.Id;
    }

    public void Reset()
    {
        Rows = 0;
        IdSum = 0;
    }
}

/// <summary>The baseline: a binary COPY of users into new <see cref="User"/> objects, column by column.</summary>
internal static class CopyBaseline
{
    /// <summary>Reads the whole table; returns the seconds taken (connection open included, as for DBSync's chunk queries).</summary>
    public static double Read(string connectionString, RowCounter counter)
    {
        var watch = Stopwatch.StartNew();
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using (var exporter = connection.BeginBinaryExport(UsersTable.CopyCommand))
        {
            while (exporter.StartRow() != -1)
            {
                // Object initializers run in textual order, which is the column order of the COPY.
                var user = new User
                {
                    Id = exporter.Read<int>(),
                    FirstName = exporter.Read<string>(),
                    UserName = exporter.Read<string>(),
                    Email = exporter.Read<string>(),
                    Avatar = ReadClass<string>(exporter),
                    Homepage = ReadClass<string>(exporter),
                    DateOfBirth = ReadStruct<DateOnly>(exporter),
                    Address = ReadClass<string>(exporter),
                    Interests = ReadClass<string[]>(exporter),
                };
                counter.Add(user);
            }
        }
        return watch.Elapsed.TotalSeconds;
    }

    private static T? ReadClass<T>(NpgsqlBinaryExporter exporter) where T : class
    {
        if (!exporter.IsNull)
            return exporter.Read<T>();
        exporter.Skip();
        return null;
    }

    private static T? ReadStruct<T>(NpgsqlBinaryExporter exporter) where T : struct
    {
        if (!exporter.IsNull)
            return exporter.Read<T>();
        exporter.Skip();
        return null;
    }
}

/// <summary>
/// The second baseline: the access path of a chunked snapshot without DBSync. Keyset queries of <c>chunkSize</c> rows
/// (<c>WHERE id &gt; last ORDER BY id LIMIT n</c>, an ordered index scan, binary results) read into new
/// <see cref="User"/> objects with Npgsql's data reader, one after the other on one connection, no transactions,
/// watermarks or stream. DBSync's snapshot against it is the cost of DBLog's machinery; this against COPY is the cost of
/// reading by key in chunks.
/// </summary>
internal static class KeysetBaseline
{
    private const string ChunkSql = "SELECT " + UsersTable.Columns + " FROM users WHERE id > $1 ORDER BY id LIMIT $2";

    /// <summary>Reads the whole table; returns the seconds taken (connection open included).</summary>
    public static double Read(string connectionString, int chunkSize, RowCounter counter)
    {
        var watch = Stopwatch.StartNew();
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using var command = new NpgsqlCommand(ChunkSql, connection);
        var last = new NpgsqlParameter<int> { TypedValue = int.MinValue };
        command.Parameters.Add(last);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = chunkSize });
        int read;
        do
        {
            read = 0;
            using var reader = command.ExecuteReader(System.Data.CommandBehavior.SequentialAccess);
            while (reader.Read())
            {
                var user = new User
                {
                    Id = reader.GetInt32(0),
                    FirstName = reader.GetString(1),
                    UserName = reader.GetString(2),
                    Email = reader.GetString(3),
                    Avatar = reader.IsDBNull(4) ? null : reader.GetString(4),
                    Homepage = reader.IsDBNull(5) ? null : reader.GetString(5),
                    DateOfBirth = reader.IsDBNull(6) ? null : reader.GetFieldValue<DateOnly>(6),
                    Address = reader.IsDBNull(7) ? null : reader.GetString(7),
                    Interests = reader.IsDBNull(8) ? null : reader.GetFieldValue<string[]>(8),
                };
                counter.Add(user);
                last.TypedValue = user.Id;
                read++;
            }
        }
        while (read == chunkSize);
        return watch.Elapsed.TotalSeconds;
    }
}

/// <summary>
/// A running <see cref="DBSyncClient"/> for <see cref="User"/> on its own slot (no initial snapshot), whose handler
/// counts the Read changes of snapshots. Disposing stops the stream and drops the slot.
/// </summary>
internal sealed class DbSyncRunner : IAsyncDisposable
{
    public const string PublicationName = "dbsync_bench";

    private readonly DBSyncClient _client;
    private readonly CancellationTokenSource _stop = new();
    private readonly string _connectionString;
    private Task _run = Task.CompletedTask;

    private DbSyncRunner(string connectionString, string slotName, int chunkSize, double busyShare)
    {
        _connectionString = connectionString;
        SlotName = slotName;
        _client = new DBSyncClient(new DBSyncOptions
        {
            ConnectionString = connectionString,
            SlotName = slotName,
            PublicationName = PublicationName,
            SnapshotChunkSize = chunkSize,
            SnapshotBusyShare = busyShare,
            InitialSnapshot = false,
            SnapshotParallelism = BenchSettings.SnapshotParallelism ?? new DBSyncOptions().SnapshotParallelism,
        });
        _client.On<User>(change =>
        {
            if (change.Kind == ChangeKind.Read)
                Counter.Add(change.Row!);
        });
    }

    public string SlotName { get; }

    /// <summary>The snapshot rows delivered so far; read it only between snapshots (the handler runs on the stream's task).</summary>
    public RowCounter Counter { get; } = new();

    public static async Task<DbSyncRunner> StartAsync(string connectionString, string slotName, int chunkSize, double busyShare)
    {
        var runner = new DbSyncRunner(connectionString, slotName, chunkSize, busyShare);
        try
        {
            runner._run = runner._client.RunAsync(runner._stop.Token);
            await Task.WhenAny(runner._client.Streaming, runner._run);
            await runner._client.Streaming; // surfaces a setup error
            return runner;
        }
        catch
        {
            await runner.DisposeAsync();
            throw;
        }
    }

    /// <summary>One full snapshot of users; returns the seconds from the request until every row was delivered.</summary>
    public async Task<double> SnapshotAsync(CancellationToken cancellationToken = default)
    {
        var watch = Stopwatch.StartNew();
        await _client.SnapshotAsync<User>(cancellationToken);
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>Pauses snapshots after the chunk in flight (the stream goes on).</summary>
    public void Pause() => _client.PauseSnapshots();

    public void Resume() => _client.ResumeSnapshots();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _run;
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _stop.Dispose();
            await Slots.DropAsync(_connectionString, SlotName);
        }
    }
}
