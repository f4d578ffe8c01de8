using System.Globalization;
using System.Text;
using DBSync.Mapping;
using DBSync.Protocol;

namespace DBSync.Runtime.Tests;

/// <summary>Decodes frames recorded from PostgreSQL 15 (Fixtures/record-fixtures.sql) without a server.</summary>
public sealed class RecordedFixtureTests
{
    private static readonly string[] s_expected =
    [
        "B", "R public.users d [id:23:key, first_name:1043, user_name:1043, email:1043, avatar:1043, homepage:1043, date_of_birth:1082, address:25, interests:1009]",
        "I public.users {id=1, first_name=Ada, user_name=ada, email=ada@example.com, avatar=null, homepage=null, date_of_birth=1815-12-10, address=London, interests=[math, null, a \"quoted\", value, ]}", "C",
        "B", "R public.restaurant f [id:1043:key, name:1043:key, description:25:key, address:25:key, rating:23:key, tags:1009:key]",
        "I public.restaurant {id=r-1, name=Tofu House, description=null, address=null, rating=4, tags=[]}", "C",
        "B", "R public.visit d [user_id:23:key, restaurant_id:1043:key, amount_spent:1700, visit_rating:23]",
        "I public.visit {user_id=1, restaurant_id=r-1, amount_spent=-1234.50, visit_rating=null}", "C",
        "B", "U public.users new {id=1, first_name=Ada, user_name=ada, email=ada@lovelace.example, avatar=null, homepage=null, date_of_birth=1815-12-10, address=London, interests=[math, null, a \"quoted\", value, ]}", "C",
        "B", "U public.visit new {user_id=1, restaurant_id=r-1, amount_spent=0.01, visit_rating=null}", "C", // the key kept its value: no old key
        "B", "U public.restaurant old O {id=r-1, name=Tofu House, description=null, address=null, rating=4, tags=[]} new {id=r-1, name=Tofu House, description=null, address=null, rating=5, tags=[]}", "C",
        "B", "D public.visit old K {user_id=1, restaurant_id=r-1}", "C",
        "B", "D public.restaurant old O {id=r-1, name=Tofu House, description=null, address=null, rating=5, tags=[]}", "C",
        "B", "Y public.mood", "R public.all_types d [id:20:key, flag:16, small:21, big:20, uid:2950, stamp:1114, stamp_tz:1184, amount:1700, feeling:mood, " +
             "f4:700, f8:701, day:1082, day_exact:1082, at:1083, at_tz:1266, span:1186, span_exact:1186, stamp_exact:1184, cash:790]",
        "I public.all_types {id=1, flag=True, small=-32768, big=9223372036854775807, uid=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11, stamp=2024-02-29T23:59:59.9999990, " +
            "stamp_tz=2024-06-01T10:34:56.7890120+00:00, amount=123456789012345678.000000001, f4=NaN, f8=-1.5E+300, day=2024-02-29, day_exact=infinity, " +
            "at=23:59:59.9999990, at_tz=12:34:56+05:30, span=1.00:00:01.5000000, span_exact=P1Y2D, stamp_exact=-infinity, cash=-1234.56}", "C",
        "B", "R public.visit d [user_id:23:key, restaurant_id:1043:key, amount_spent:1700, visit_rating:23]",
        "R public.restaurant f [id:1043:key, name:1043:key, description:25:key, address:25:key, rating:23:key, tags:1009:key]",
        "T Cascade, RestartIdentity [public.visit, public.restaurant]", "C",
        "B", "M transactional dbsync transactional", "C",
        "M non-transactional dbsync not transactional",
        "B", "O fixture_origin 0/ABCDEF", "R public.restaurant f [id:1043:key, name:1043:key, description:25:key, address:25:key, rating:23:key, tags:1009:key]",
        "I public.restaurant {id=from-origin, name=replicated, description=null, address=null, rating=null, tags=null}", "C",
    ];

    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void RecordedStream_DecodesEveryMessageToTheValuesWritten(string file)
    {
        var decoded = Decode(Frames.Recorded(file));

        // Protocol 1 (the text recording) carries no logical decoding messages, so the transaction that held only a
        // message is empty, and PostgreSQL skips empty transactions.
        var expected = file == "text.hex" ? WithoutEmptyTransactions(s_expected.Where(e => !e.StartsWith("M ", StringComparison.Ordinal)).ToList()) : [.. s_expected];
        Assert.Equal(expected, decoded);
    }

    [Fact]
    public void RecordedBeginAndCommit_CarryMatchingPositionsAndTimes()
    {
        var frames = Frames.Recorded("binary.hex");
        var begin = PgOutputParser.ReadBegin(frames[0]);
        var commit = PgOutputParser.ReadCommit(frames[3]);

        Assert.Equal(begin.FinalLsn, commit.CommitLsn);
        Assert.True(commit.EndLsn > commit.CommitLsn);
        Assert.Equal(begin.CommitTime, commit.CommitTime);
        Assert.Equal(DateTimeKind.Utc, commit.CommitTime.Kind);
        Assert.InRange(commit.CommitTime, new DateTime(2020, 1, 1), DateTime.UtcNow.AddDays(1));
        Assert.True(begin.Xid > 0);
    }

    private static List<string> WithoutEmptyTransactions(List<string> expected)
    {
        for (var i = 0; i + 1 < expected.Count; i++)
        {
            if (expected[i] == "B" && expected[i + 1] == "C")
                expected.RemoveRange(i--, 2);
        }
        return expected;
    }

    internal static List<string> Decode(IReadOnlyList<byte[]> frames)
    {
        var relations = new Dictionary<uint, (RelationMessage Relation, ColumnBinding Binding)>();
        var types = new Dictionary<uint, string>();
        var events = new List<string>();
        foreach (var frame in frames)
        {
            switch (PgOutputParser.KindOf(frame))
            {
                case PgOutputMessageKind.Begin:
                    PgOutputParser.ReadBegin(frame);
                    events.Add("B");
                    break;
                case PgOutputMessageKind.Commit:
                    PgOutputParser.ReadCommit(frame);
                    events.Add("C");
                    break;
                case PgOutputMessageKind.Type:
                    var type = PgOutputParser.ReadType(frame, inStream: false);
                    types[type.TypeOid] = type.Name;
                    events.Add($"Y {type.Namespace}.{type.Name}");
                    break;
                case PgOutputMessageKind.Relation:
                    var relation = PgOutputParser.ReadRelation(frame, inStream: false);
                    relations[relation.RelationId] = (relation, BindAll(relation));
                    events.Add($"R {relation.Namespace}.{relation.Name} {relation.ReplicaIdentity} [" + string.Join(", ", relation.Columns.Select(c =>
                        $"{c.Name}:{(types.TryGetValue(c.TypeOid, out var n) ? n : c.TypeOid.ToString(CultureInfo.InvariantCulture))}{(c.IsKey ? ":key" : "")}")) + "]");
                    break;
                case PgOutputMessageKind.Insert:
                    var insert = PgOutputParser.ReadInsert(frame, inStream: false);
                    events.Add($"I {Name(relations, insert.RelationId)} {Describe(insert.NewTuple, relations[insert.RelationId].Binding, false)}");
                    break;
                case PgOutputMessageKind.Update:
                    var update = PgOutputParser.ReadUpdate(frame, inStream: false);
                    var binding = relations[update.RelationId].Binding;
                    var old = update.OldKind == OldTupleKind.None ? "" : $"old {(char)update.OldKind} {Describe(update.OldTuple, binding, update.OldKind == OldTupleKind.Key)} ";
                    events.Add($"U {Name(relations, update.RelationId)} {old}new {Describe(update.NewTuple, binding, false)}");
                    break;
                case PgOutputMessageKind.Delete:
                    var delete = PgOutputParser.ReadDelete(frame, inStream: false);
                    events.Add($"D {Name(relations, delete.RelationId)} old {(char)delete.OldKind} {Describe(delete.OldTuple, relations[delete.RelationId].Binding, delete.OldKind == OldTupleKind.Key)}");
                    break;
                case PgOutputMessageKind.Truncate:
                    var truncate = PgOutputParser.ReadTruncate(frame, inStream: false);
                    events.Add($"T {truncate.Options} [{string.Join(", ", truncate.RelationIds.Select(id => Name(relations, id)))}]");
                    break;
                case PgOutputMessageKind.Message:
                    var message = PgOutputParser.ReadMessage(frame, inStream: false);
                    events.Add($"M {(message.Transactional ? "transactional" : "non-transactional")} {Encoding.UTF8.GetString(message.Prefix)} {Encoding.UTF8.GetString(message.Content)}");
                    break;
                case PgOutputMessageKind.Origin:
                    var origin = PgOutputParser.ReadOrigin(frame);
                    events.Add($"O {origin.Name} {new NpgsqlTypes.NpgsqlLogSequenceNumber(origin.CommitLsn)}");
                    break;
                default:
                    Assert.Fail($"unexpected message '{(char)frame[0]}'");
                    break;
            }
        }
        return events;
    }

    private static string Name(Dictionary<uint, (RelationMessage Relation, ColumnBinding Binding)> relations, uint id)
        => $"{relations[id].Relation.Namespace}.{relations[id].Relation.Name}";

    /// <summary>Maps every column of a known type (a custom type such as an enum stays unmapped, as it would for a user).</summary>
    private static ColumnBinding BindAll(RelationMessage relation)
    {
        var columns = new List<SyncColumnInfo>();
        foreach (var c in relation.Columns)
        {
            SyncColumnType? type = c.TypeOid switch
            {
                PgTypeOids.Bool => SyncColumnType.Boolean,
                PgTypeOids.Int2 => SyncColumnType.Int16,
                PgTypeOids.Int4 => SyncColumnType.Int32,
                PgTypeOids.Int8 => SyncColumnType.Int64,
                PgTypeOids.Numeric => SyncColumnType.Decimal,
                PgTypeOids.Text or PgTypeOids.Varchar => SyncColumnType.String,
                PgTypeOids.Date => c.Name.EndsWith("_exact", StringComparison.Ordinal) ? SyncColumnType.PgDate : SyncColumnType.DateOnly,
                PgTypeOids.Timestamp => SyncColumnType.DateTime,
                PgTypeOids.TimestampTz => c.Name.EndsWith("_exact", StringComparison.Ordinal) ? SyncColumnType.PgTimestamp : SyncColumnType.DateTimeOffset,
                PgTypeOids.Float4 => SyncColumnType.Single,
                PgTypeOids.Float8 => SyncColumnType.Double,
                PgTypeOids.Time => SyncColumnType.TimeOnly,
                PgTypeOids.TimeTz => SyncColumnType.PgTimeTz,
                PgTypeOids.Interval => c.Name.EndsWith("_exact", StringComparison.Ordinal) ? SyncColumnType.PgInterval : SyncColumnType.TimeSpan,
                PgTypeOids.Money => SyncColumnType.Decimal,
                PgTypeOids.Uuid => SyncColumnType.Guid,
                PgTypeOids.TextArray => SyncColumnType.String,
                _ => null,
            };
            if (type is not null)
            {
                columns.Add(new SyncColumnInfo(c.Name, c.Name, type.Value, isNullable: true, keyOrder: c.IsKey ? columns.Count(x => x.IsKey) : -1)
                    { ArrayRank = c.TypeOid == PgTypeOids.TextArray ? 1 : 0, ElementIsNullable = true });
            }
        }
        return ColumnBinding.Create(new SyncTableInfo(relation.Namespace, relation.Name, typeof(RecordedFixtureTests), [.. columns]), relation);
    }

    private static string Describe(ReadOnlySpan<byte> tuple, ColumnBinding binding, bool keyOnly)
    {
        var reader = new TupleReader(tuple, binding, keyOnly);
        var parts = new List<string>();
        while (reader.TryReadNext(out var value))
        {
            var column = binding.Table.Columns[value.Target];
            parts.Add($"{column.Name}={(value.IsNull ? "null" : column.ArrayRank == 1 ? FormatArray(value) : Format(value, column.Type))}");
        }
        return "{" + string.Join(", ", parts) + "}";
    }

    private static string Format(TupleValue value, SyncColumnType type) => type switch
    {
        SyncColumnType.Boolean => value.ReadBoolean().ToString(),
        SyncColumnType.Int16 => value.ReadInt16().ToString(CultureInfo.InvariantCulture),
        SyncColumnType.Int32 => value.ReadInt32().ToString(CultureInfo.InvariantCulture),
        SyncColumnType.Int64 => value.ReadInt64().ToString(CultureInfo.InvariantCulture),
        SyncColumnType.Decimal => value.ReadDecimal().ToString(CultureInfo.InvariantCulture),
        SyncColumnType.String => value.ReadString(),
        SyncColumnType.DateOnly => value.ReadDateOnly().ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        SyncColumnType.DateTime => value.ReadDateTime().ToString("o", CultureInfo.InvariantCulture),
        SyncColumnType.DateTimeOffset => value.ReadDateTimeOffset().ToString("o", CultureInfo.InvariantCulture),
        SyncColumnType.Guid => value.ReadGuid().ToString(),
        SyncColumnType.Single => value.ReadSingle().ToString(CultureInfo.InvariantCulture),
        SyncColumnType.Double => value.ReadDouble().ToString(CultureInfo.InvariantCulture),
        SyncColumnType.TimeOnly => value.ReadTimeOnly().ToString("HH:mm:ss.fffffff", CultureInfo.InvariantCulture),
        SyncColumnType.TimeSpan => value.ReadTimeSpan().ToString("c", CultureInfo.InvariantCulture),
        SyncColumnType.PgDate => value.ReadPgDate().ToString(),
        SyncColumnType.PgTimestamp => value.ReadPgTimestamp().ToString(),
        SyncColumnType.PgTimeTz => value.ReadPgTimeTz().ToString(),
        SyncColumnType.PgInterval => value.ReadPgInterval().ToString(),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    private static string FormatArray(TupleValue value) => "[" + string.Join(", ", value.ReadArray<string?, Frames.NullableString>().Select(s => s ?? "null")) + "]";
}
