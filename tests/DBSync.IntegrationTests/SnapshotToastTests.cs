using DBSync.IntegrationTests.Infrastructure;
using Npgsql;

namespace DBSync.IntegrationTests;

/// <summary>A document with a large text stored out of line (TOAST): an update of its title alone sends the body as
/// "unchanged TOAST", without its value.</summary>
[SyncTable("docs")]
public partial class Doc
{
    [PrimaryKey]
    public int Id { get; set; }

    public string Title { get; set; } = "";

    public string? Body { get; set; }
}

/// <summary>
/// Snapshots of a table with large out-of-line values while other columns of its rows are updated inside the chunks'
/// windows: the stream's update is newer than the chunk's row, but it does not carry the unchanged TOAST value, so
/// DBSync completes the row from the chunk's and delivers it whole at the high watermark. A fresh consumer, whose first
/// sight of the row may be that update, must still end with every column.
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Snapshots")]
public sealed class SnapshotToastTests(PostgresFixture fixture)
{
    private const int Rows = 60;

    [Fact]
    public async Task UpdatesLeavingTheBodyOutInsideAWindow_AFreshConsumerStillGetsEveryBody()
    {
        await using var db = await CreateDocsAsync(Rows);
        var consumer = new DocReplica();
        var reads = 0;
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            client.On<Doc>(c =>
            {
                recorder.Add(c);
                consumer.Apply(c);
            });
            // Inside the first chunk's window (read, high watermark not yet written): the titles of rows it holds change
            // (the bodies are sent as unchanged TOAST), one row changes twice, one moves to another key, one is deleted.
            AfterChunkReadSql.Install(client, async (_, chunk, _) =>
            {
                if (chunk == 1 && Interlocked.Increment(ref reads) == 1)
                {
                    await db.ExecuteAsync("UPDATE docs SET title = title || ' (edited)' WHERE id BETWEEN 1 AND 10");
                    await db.ExecuteAsync("UPDATE docs SET title = title || ' (again)' WHERE id = 7");
                    await db.ExecuteAsync("UPDATE docs SET id = 1005, title = 'moved' WHERE id = 5");
                    await db.ExecuteAsync("DELETE FROM docs WHERE id = 6");
                }
            });
        }, configure: o => (o.SnapshotChunkSize, o.SnapshotParallelism) = (20, 1)); // the first chunk is rows 1 to 20
        // The table's first change in this session brings its Relation message, which a window takes for a change of the
        // table's shape (the chunk is then read again): let it come before the snapshot.
        await db.ExecuteAsync("UPDATE docs SET title = 'doc 60' WHERE id = 60");
        await run.WaitUntilAsync(r => r.Of<Doc>().Any(), "the first change of docs");

        await run.Client.SnapshotAsync<Doc>().WaitAsync(TimeSpan.FromSeconds(60));
        await consumer.AssertEqualsSourceAsync(db.ConnectionString);

        var first = run.Recorder.Progress.OfType<SnapshotChunkCompleted>().First(c => c.Chunk == 1);
        Assert.Equal((1, 20), (first.Attempts, first.RowsRead)); // never read again
        // 11-20 as read; 1-4 and 7-10 completed with the chunk's bodies; 1005 the moved row, whole; 5 and 6 gone.
        Assert.Equal(19, first.RowsEmitted);
        var updates = run.Recorder.Of<Doc>().Where(c => c.Kind == ChangeKind.Update && c.New!.Id != 60).ToList();
        Assert.Equal(12, updates.Count);
        Assert.All(updates, u => Assert.True(u.IsUnchangedToast(nameof(Doc.Body)), "the updates should leave the body out"));
        var moved = Assert.Single(run.Recorder.Of<Doc>(), c => c is { Kind: ChangeKind.Read, New.Id: 1005 });
        Assert.Equal("moved", moved.New!.Title);
    }

    [Fact]
    public async Task ConcurrentUpdatesOfOtherColumns_WhileSnapshotting_AFreshConsumerConverges()
    {
        await using var db = await CreateDocsAsync(200);
        var consumer = new DocReplica();
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            client.On<Doc>(c =>
            {
                recorder.Add(c);
                consumer.Apply(c);
            });
        }, configure: o => o.SnapshotChunkSize = 20);

        using var stopWriting = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            var random = new Random(16);
            await using var connection = await db.OpenAsync();
            while (!stopWriting.IsCancellationRequested)
            {
                await using var update = new NpgsqlCommand("UPDATE docs SET title = title || '.' WHERE id = $1", connection);
                update.Parameters.Add(new NpgsqlParameter { Value = random.Next(1, 201) });
                await update.ExecuteNonQueryAsync();
            }
        });
        try
        {
            await run.Client.SnapshotAsync<Doc>().WaitAsync(TimeSpan.FromSeconds(120));
        }
        finally
        {
            await stopWriting.CancelAsync();
            await writer;
        }

        // Everything written so far has reached the consumer once this marker has.
        await db.ExecuteAsync("INSERT INTO docs (id, title, body) VALUES (0, 'marker', 'short')");
        await run.WaitUntilAsync(r => r.Of<Doc>().Any(c => c.New?.Id == 0), "the marker row");
        await consumer.AssertEqualsSourceAsync(db.ConnectionString);
        Assert.Contains(run.Recorder.Of<Doc>(), c => c.Kind == ChangeKind.Update && c.IsUnchangedToast(nameof(Doc.Body)));
    }

    private async Task<TestDatabase> CreateDocsAsync(int rows)
    {
        var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        // EXTERNAL: out of line and uncompressed, so every body (about 100 KB) is a TOAST value.
        await db.ExecuteAsync($"""
            CREATE TABLE docs (id int PRIMARY KEY, title text NOT NULL, body text);
            ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
            INSERT INTO docs (id, title, body) SELECT i, 'doc ' || i, repeat(md5(i::text), 3200) FROM generate_series(1, {rows}) i;
            """);
        return db;
    }

    /// <summary>A consumer that starts empty and keeps the documents by applying every change in order. An update that
    /// left the body out keeps the body it has, or, when it has none, has a document whose body it never saw.</summary>
    private sealed class DocReplica
    {
        private readonly Dictionary<int, (string Title, string? Body, bool BodyKnown)> _docs = [];

        public void Apply(Change<Doc> change)
        {
            lock (_docs)
            {
                switch (change.Kind)
                {
                    case ChangeKind.Delete:
                        _docs.Remove(change.Old!.Id);
                        break;
                    case ChangeKind.Truncate:
                        _docs.Clear();
                        break;
                    default:
                        var doc = change.New!;
                        if (change.Old is { } old && old.Id != doc.Id)
                            _docs.Remove(old.Id); // a key update
                        if (change.IsUnchangedToast(nameof(Doc.Body)))
                        {
                            var known = _docs.TryGetValue(doc.Id, out var had) && had.BodyKnown;
                            _docs[doc.Id] = (doc.Title, known ? had.Body : null, known);
                        }
                        else
                        {
                            _docs[doc.Id] = (doc.Title, doc.Body, true);
                        }
                        break;
                }
            }
        }

        public async Task AssertEqualsSourceAsync(string connectionString)
        {
            var source = new List<string>();
            await using (var connection = new NpgsqlConnection(connectionString))
            {
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand("SELECT id, title, md5(body) FROM docs ORDER BY id", connection);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                    source.Add($"{reader.GetInt32(0)} | {reader.GetString(1)} | {(reader.IsDBNull(2) ? "null" : reader.GetString(2))}");
            }
            List<string> replica;
            lock (_docs)
            {
                replica = _docs.OrderBy(d => d.Key).Select(d => $"{d.Key} | {d.Value.Title} | {(d.Value.BodyKnown ? Md5(d.Value.Body) : "body never received")}").ToList();
            }
            Assert.Equal(source, replica);
        }

        private static string Md5(string? text)
            => text is null ? "null" : Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
    }
}
