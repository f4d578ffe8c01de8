using DBSync.Mapping;
using DBSync.Protocol;
using static DBSync.Runtime.Tests.Frames;

namespace DBSync.Runtime.Tests;

public sealed class TupleReaderTests
{
    // Relation: id int4 (key), extra int4 (unmapped), note text, tags text[]
    private static readonly RelationMessage s_relation = new(0, 16384, "public", "t", 'd',
        [new RelationColumn(true, "id", PgTypeOids.Int4, -1), new RelationColumn(false, "extra", PgTypeOids.Int4, -1),
         new RelationColumn(false, "note", PgTypeOids.Text, -1), new RelationColumn(false, "tags", PgTypeOids.TextArray, -1)]);

    private static readonly SyncTableInfo s_table = new("public", "t", typeof(TupleReaderTests),
        [new SyncColumnInfo("note", "Note", SyncColumnType.String, true, -1), new SyncColumnInfo("id", "Id", SyncColumnType.Int32, false, 0),
         new SyncColumnInfo("tags", "Tags", SyncColumnType.String, true, -1) { ArrayRank = 1, ElementIsNullable = true }]);

    [Fact]
    public void Tuple_YieldsMappedValuesByEntityColumn_AndRecordsUnchangedToast()
    {
        var binding = ColumnBinding.Create(s_table, s_relation);
        var tuple = new Builder('x').Int16(4).Byte((byte)'t').Int32(2).Bytes("17"u8.ToArray()).Byte((byte)'t').Int32(1).Bytes("9"u8.ToArray())
            .Byte((byte)'u').Byte((byte)'n').ToArray()[1..];

        var reader = new TupleReader(tuple, binding, keyOnly: false);
        Assert.True(reader.TryReadNext(out var id));
        Assert.Equal((1, 17), (id.Target, id.ReadInt32()));
        Assert.True(reader.TryReadNext(out var tags));
        Assert.Equal(2, tags.Target);
        Assert.True(tags.IsNull);
        Assert.False(reader.TryReadNext(out _));
        Assert.Equal([0], reader.UnchangedToast.Indexes);
    }

    [Fact]
    public void KeyOnlyTuple_SkipsNonKeyColumns_WhichPostgresSendsAsNull()
    {
        var binding = ColumnBinding.Create(s_table, s_relation);
        var tuple = new Builder('x').Int16(4).Byte((byte)'b').Int32(4).Int32(5).Byte((byte)'n').Byte((byte)'n').Byte((byte)'n').ToArray()[1..];

        var reader = new TupleReader(tuple, binding, keyOnly: true);
        Assert.True(reader.TryReadNext(out var id));
        Assert.Equal(5, id.ReadInt32());
        Assert.False(reader.TryReadNext(out _));
    }

    [Fact]
    public void NullForNonNullableProperty_ThrowsNamingTableColumnAndFix()
    {
        var error = Assert.Throws<DecodeException>(() => Read('n', null!, PgTypeOids.Int4, SyncColumnType.Int32, v => v.ReadInt32()));
        Assert.Contains("Column \"c\" of public.t is NULL, but property Frames.C is int, which cannot hold NULL", error.Message, StringComparison.Ordinal);
        Assert.Contains("Make the property nullable", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingMappedColumn_FailsBindingWithTableColumnAndFix()
    {
        var table = new SyncTableInfo("public", "t", typeof(TupleReaderTests), [new SyncColumnInfo("id", "Id", SyncColumnType.Int32, false, 0), new SyncColumnInfo("gone", "Gone", SyncColumnType.String, true, -1)]);
        var error = Assert.Throws<SchemaMismatchException>(() => ColumnBinding.Create(table, s_relation));
        Assert.Equal(("public.t", "gone", (string?)null, "string?"), (error.Table, error.Column, error.PgType, error.ClrType));
        Assert.Contains("[SyncIgnore]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void IncompatibleColumnType_FailsBindingNamingBothTypes()
    {
        var table = new SyncTableInfo("public", "t", typeof(TupleReaderTests), [new SyncColumnInfo("id", "Id", SyncColumnType.Int32, false, 0), new SyncColumnInfo("note", "Note", SyncColumnType.Guid, false, -1)]);
        var error = Assert.Throws<SchemaMismatchException>(() => ColumnBinding.Create(table, s_relation));
        Assert.Equal(("text", "Guid"), (error.PgType, error.ClrType));
        Assert.Contains("has PostgreSQL type text, which property TupleReaderTests.Note (Guid) cannot hold", error.Message, StringComparison.Ordinal);
    }
}
