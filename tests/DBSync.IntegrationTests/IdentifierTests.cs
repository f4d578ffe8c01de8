using DBSync.IntegrationTests.Infrastructure;

namespace DBSync.IntegrationTests;

/// <summary>A table whose schema has a space and whose name has a double quote and mixed case, with a column named
/// by a reserved word, is created, published, streamed and snapshotted (with a filter and a chunk key) like any other:
/// every identifier DBSync puts into SQL is quoted.</summary>
[SyncTable("my schema.Weird \"Table\"")]
public sealed partial class WeirdRow
{
    [PrimaryKey] public int Id { get; set; }

    [Column("Mixed Case")] public string MixedCase { get; set; } = "";

    [Column("select")] public int? Select { get; set; }

    [Column("seq \"no\"")] public long Seq { get; set; }
}

[Collection(PostgresCollection.Name)]
[Trait("Category", "Reliability")]
public sealed class IdentifierTests(PostgresFixture fixture)
{
    [Fact]
    public async Task QuotedSchemaTableAndColumns_StreamAndSnapshot_WithFilterAndChunkKey()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync(""""
            CREATE SCHEMA "my schema";
            CREATE TABLE "my schema"."Weird ""Table""" (id int PRIMARY KEY, "Mixed Case" text NOT NULL, "select" int, "seq ""no""" bigint NOT NULL UNIQUE);
            INSERT INTO "my schema"."Weird ""Table""" SELECT i, 'row ' || i, i % 3, 1000 - i FROM generate_series(1, 20) i;
            """");
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<WeirdRow>(c => recorder.Add(c)),
            configure: o => o.SnapshotChunkSize = 3);

        await db.ExecuteAsync(""""
            INSERT INTO "my schema"."Weird ""Table""" VALUES (21, 'it''s "quoted"', NULL, 5);
            UPDATE "my schema"."Weird ""Table""" SET "select" = 7 WHERE id = 1;
            DELETE FROM "my schema"."Weird ""Table""" WHERE id = 2;
            """");
        await run.WaitUntilAsync(r => r.Of<WeirdRow>().Count == 3, "the insert, update and delete");
        var streamed = run.Recorder.Of<WeirdRow>();
        Assert.Equal([ChangeKind.Insert, ChangeKind.Update, ChangeKind.Delete], streamed.Select(c => c.Kind));
        Assert.Equal("it's \"quoted\"", streamed[0].New!.MixedCase);
        Assert.Equal(7, streamed[1].New!.Select);
        Assert.Equal(2, streamed[2].Old!.Id);

        // A filter on the reserved-word column, paged by the quoted surrogate key, three rows per chunk.
        await run.Client.SnapshotAsync([new SnapshotTable("my schema.Weird \"Table\"") { Filter = "\"select\" = $1", FilterParameters = ["0"], ChunkKey = "seq \"no\"" }])
            .WaitAsync(TimeSpan.FromSeconds(60));
        var reads = run.Recorder.Of<WeirdRow>().Where(c => c.Kind == ChangeKind.Read).Select(c => c.New!.Id).Order().ToList();
        Assert.Equal(Enumerable.Range(1, 20).Where(i => i % 3 == 0), reads);
        Assert.True(run.Recorder.Progress.OfType<SnapshotChunkCompleted>().Count() >= 2, "The filtered snapshot was not read in several chunks.");
        await run.StopAsync();
    }
}
