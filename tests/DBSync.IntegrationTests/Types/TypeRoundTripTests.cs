using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using DBSync.IntegrationTests.Infrastructure;

namespace DBSync.IntegrationTests.Types;

/// <summary>
/// Every mapped type against a real server: edge values inserted, then every row updated to another row's values, then
/// snapshotted; each change and each snapshot row must decode to exactly the value written. Once with binary values
/// (pgoutput's binary tuples, binary query results) and once with text values (text tuples, as servers before 14 send
/// them, and text query results).
/// </summary>
[Collection(PostgresCollection.Name)]
[Trait("Category", "Types")]
public sealed class TypeRoundTripTests(PostgresFixture fixture)
{
    private const int MegabyteOfText = 209_716; // "𝄞x" is 5 UTF-8 bytes: 1,048,580 bytes
    private const int MegabyteOfBytes = 262_144; // 4 bytes each: 1,048,576 bytes

    private static readonly string s_bigText = string.Concat(Enumerable.Repeat("𝄞x", MegabyteOfText));
    private static readonly byte[] s_bigBytes = [.. Enumerable.Repeat<byte[]>([0x00, 0xff, 0x7f, 0x80], MegabyteOfBytes).SelectMany(b => b)];

    /// <summary>Per column: SQL literals and the value each must decode to. Row k takes each column's value k (cycling);
    /// one more row is NULL everywhere.</summary>
    private static readonly Column[] s_columns =
    [
        C("int2", r => r.Int2, ("-32768", short.MinValue), ("32767", short.MaxValue), ("0", (short)0)),
        C("int4", r => r.Int4, ("-2147483648", int.MinValue), ("2147483647", int.MaxValue), ("0", 0)),
        C("int8", r => r.Int8, ("-9223372036854775808", long.MinValue), ("9223372036854775807", long.MaxValue), ("0", 0L)),
        C("float4", r => r.Float4, ("'NaN'", float.NaN), ("'Infinity'", float.PositiveInfinity), ("'-Infinity'", float.NegativeInfinity),
            ("'3.4028235e38'", float.MaxValue), ("'1.4e-45'", float.Epsilon), ("'-0'", -0f), ("'1.1'", 1.1f)),
        C("float8", r => r.Float8, ("'NaN'", double.NaN), ("'Infinity'", double.PositiveInfinity), ("'-Infinity'", double.NegativeInfinity),
            ("'1.7976931348623157e308'", double.MaxValue), ("'5e-324'", double.Epsilon), ("'-0'", -0d), ("'0.1'", 0.1)),
        C("numeric", r => r.Numeric, ("79228162514264337593543950335", decimal.MaxValue), ("-79228162514264337593543950335", decimal.MinValue),
            ("0.0000000000000000000000000001", 0.0000000000000000000000000001m), ("'10.50'", 10.50m), ("0", 0m), ("'-0.000'", 0.000m)),
        C("numeric_text", r => r.NumericText, ("'NaN'", "NaN"), ("'Infinity'", "Infinity"), ("'-Infinity'", "-Infinity"),
            ("'1e40'", "10000000000000000000000000000000000000000"), ("'-0.00000000000000000000000000000000000001'", "-0.00000000000000000000000000000000000001"),
            ("'123.4500'", "123.4500"), ("0", "0")),
        C("money", r => r.Money, ("'-92233720368547758.08'", -92233720368547758.08m), ("'92233720368547758.07'", 92233720368547758.07m),
            ("'1234.5'", 1234.50m), ("0", 0.00m)),
        C("bool", r => r.Bool, ("true", true), ("false", false)),
        C("text", r => r.Text, ("''", ""), ("'𝄞 héllo 😀'", "𝄞 héllo 😀"), ($"repeat('𝄞x', {MegabyteOfText})", s_bigText), ("'NULL'", "NULL")),
        C("varchar", r => r.Varchar, ("'12345678901234567890'", "12345678901234567890"), ("''", "")),
        C("bpchar", r => r.Bpchar, ("'a'", "a  "), ("'abc'", "abc")),
        C("citext", r => r.Citext, ("'MiXeD 𝄞'", "MiXeD 𝄞"), ("''", "")),
        C("name", r => r.Name, ("'pg_name'", "pg_name")),
        C("bytea", r => r.Bytea, ("'\\x'", (byte[])[]), ("'\\x00ff7f80'", (byte[])[0x00, 0xff, 0x7f, 0x80]),
            ($"decode(repeat('00ff7f80', {MegabyteOfBytes}), 'hex')", s_bigBytes)),
        C("bytea_memory", r => r.ByteaMemory, ("'\\x0102'", (ReadOnlyMemory<byte>)new byte[] { 1, 2 }), ("'\\x'", (ReadOnlyMemory<byte>)Array.Empty<byte>())),
        C("uuid", r => r.Uuid, ("'00000000-0000-0000-0000-000000000000'", Guid.Empty), ("'ffffffff-ffff-ffff-ffff-ffffffffffff'", Guid.AllBitsSet),
            ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", Guid.Parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))),
        C("date", r => r.Date, ("'0001-01-01'", DateOnly.MinValue), ("'9999-12-31'", DateOnly.MaxValue), ("'2024-02-29'", new DateOnly(2024, 2, 29))),
        C("date_exact", r => r.DateExact, ("'infinity'", PgDate.PositiveInfinity), ("'-infinity'", PgDate.NegativeInfinity),
            ("'4713-01-01 BC'", new PgDate(-2451507)), ("'5874897-12-31'", new PgDate(2145031948)), ("'0001-01-01 BC'", new PgDate(-730485)),
            ("'2000-01-01'", new PgDate(0))),
        C("time", r => r.Time, ("'00:00:00'", TimeOnly.MinValue), ("'23:59:59.999999'", new TimeOnly(23, 59, 59).Add(System.TimeSpan.FromTicks(9_999_990)))),
        C("time_span", r => r.TimeSpan, ("'24:00:00'", System.TimeSpan.FromDays(1)), ("'00:00:00.000001'", System.TimeSpan.FromTicks(10))),
        C("timetz", r => r.Timetz, ("'00:00:00+15:59'", new PgTimeTz(default, new System.TimeSpan(15, 59, 0))),
            ("'24:00:00-15:59'", new PgTimeTz(System.TimeSpan.FromDays(1), -new System.TimeSpan(15, 59, 0))),
            ("'12:34:56.789012+05:30:15'", new PgTimeTz(new System.TimeSpan(0, 12, 34, 56).Add(System.TimeSpan.FromTicks(7_890_120)), new System.TimeSpan(5, 30, 15)))),
        C("timestamp", r => r.Timestamp, ("'0001-01-01 00:00:00'", DateTime.MinValue),
            ("'9999-12-31 23:59:59.999999'", DateTime.MaxValue.AddTicks(-9)), ("'2000-01-01 00:00:00.000001'", new DateTime(2000, 1, 1).AddTicks(10))),
        C("timestamp_exact", r => r.TimestampExact, ("'infinity'", new PgTimestamp(long.MaxValue, DateTimeKind.Unspecified)),
            ("'-infinity'", new PgTimestamp(long.MinValue, DateTimeKind.Unspecified)),
            ("'4713-01-01 00:00:00 BC'", new PgTimestamp(-2451507L * 86_400_000_000, DateTimeKind.Unspecified)),
            ("'294276-12-31 23:59:59.999999'", new PgTimestamp(9223371331199999999, DateTimeKind.Unspecified)),
            ("'1999-12-31 23:59:59.999999'", new PgTimestamp(-1, DateTimeKind.Unspecified))),
        C("timestamptz", r => r.Timestamptz, ("'0001-01-01 00:00:00+00'", DateTimeOffset.MinValue),
            ("'9999-12-31 23:59:59.999999+00'", DateTimeOffset.MaxValue.AddTicks(-9)),
            ("'2024-06-01 12:34:56.789012+02'", new DateTimeOffset(2024, 6, 1, 10, 34, 56, System.TimeSpan.Zero).AddTicks(7_890_120))),
        C("timestamptz_utc", r => r.TimestamptzUtc, ("'2024-06-01 00:00:00-08'", new DateTime(2024, 6, 1, 8, 0, 0, DateTimeKind.Utc))),
        C("timestamptz_exact", r => r.TimestamptzExact, ("'infinity'", new PgTimestamp(long.MaxValue, DateTimeKind.Utc)),
            ("'2000-01-01 00:00:00.000001+00'", new PgTimestamp(1, DateTimeKind.Utc))),
        C("interval", r => r.Interval, ("'0'", System.TimeSpan.Zero), ("'1 day 02:03:04.000005'", new System.TimeSpan(1, 2, 3, 4).Add(System.TimeSpan.FromTicks(50))),
            ("'-00:00:00.000001'", System.TimeSpan.FromTicks(-10)), ("'-10675199 days -02:48:05.477580'", System.TimeSpan.FromTicks(-9223372036854775800)),
            ("'10675199 days 02:48:05.47758'", System.TimeSpan.FromTicks(9223372036854775800))),
        C("interval_exact", r => r.IntervalExact, ("'1 year 2 mons 3 days 04:05:06.789'", new PgInterval(14, 3, 14_706_789_000)),
            ("'1 mon -1 day'", new PgInterval(1, -1, 0)), ("'-178000000 years'", new PgInterval(-2136000000, 0, 0)),
            ("'-1 mons +1 day -00:00:00.000001'", new PgInterval(-1, 1, -1))),
        C("json", r => r.Json, ("'{\"a\": [1, 2.5, \"𝄞\"],  \"b\" : null}'", "{\"a\": [1, 2.5, \"𝄞\"],  \"b\" : null}"), ("'[]'", "[]")),
        C("json_text", r => r.JsonText, ("'{\"b\": 1, \"a\": [true, null]}'", "{\"a\": [true, null], \"b\": 1}")),
        C("jsonb", r => r.Jsonb, ("'{\"k\": \"𝄞\", \"n\": 1.50}'", JsonDocument.Parse("{\"k\": \"𝄞\", \"n\": 1.50}")), ("'[]'", JsonDocument.Parse("[]"))),
        C("jsonb_element", r => r.JsonbElement, ("'\"x\"'", JsonDocument.Parse("\"x\"").RootElement), ("'null'", JsonDocument.Parse("null").RootElement)),
        C("mood", r => r.Mood, ("'happy'", Mood.Happy), ("'very happy'", Mood.VeryHappy), ("'sad'", Mood.Sad)),
        C("mood_text", r => r.MoodText, ("'very happy'", "very happy")),
        C("inet", r => r.Inet, ("'192.168.0.1'", IPAddress.Parse("192.168.0.1")), ("'::1'", IPAddress.IPv6Loopback),
            ("'2001:db8::ff00:42:8329/128'", IPAddress.Parse("2001:db8::ff00:42:8329"))),
        C("cidr", r => r.Cidr, ("'10.0.0.0/8'", IPNetwork.Parse("10.0.0.0/8")), ("'2001:db8::/32'", IPNetwork.Parse("2001:db8::/32")),
            ("'0.0.0.0/0'", IPNetwork.Parse("0.0.0.0/0"))),
        C("inet_exact", r => r.InetExact, ("'192.168.0.1/24'", new PgInet(IPAddress.Parse("192.168.0.1"), 24)), ("'10.1.2.3'", new PgInet(IPAddress.Parse("10.1.2.3"), 32)),
            ("'2001:db8::1/64'", new PgInet(IPAddress.Parse("2001:db8::1"), 64))),
        C("posint", r => r.Posint, ("1", 1), ("2147483647", int.MaxValue)),
        C("int4_array", r => r.Int4Array, ("'{}'", (int?[])[]), ("'{1,NULL,-2147483648}'", (int?[])[1, null, int.MinValue]), ("'[0:1]={7,8}'", (int?[])[7, 8])),
        C("int4_matrix", r => r.Int4Matrix, ("'{{1,NULL},{3,4}}'", new int?[,] { { 1, null }, { 3, 4 } }), ("'{}'", new int?[0, 0]),
            ("'{{1},{2},{3}}'", new int?[,] { { 1 }, { 2 }, { 3 } })),
        C("int4_cube", r => r.Int4Cube, ("'{{{1,2},{3,4}},{{5,6},{7,8}}}'", new[, ,] { { { 1, 2 }, { 3, 4 } }, { { 5, 6 }, { 7, 8 } } })),
        C("int4_strict", r => r.Int4Strict, ("'{1,2}'", (int[])[1, 2]), ("'{}'", (int[])[])),
        C("text_array", r => r.TextArray, ("""'{"",NULL,"a,b","q\"x","back\\slash","𝄞","NULL","{}"}'""", (string?[])["", null, "a,b", "q\"x", "back\\slash", "𝄞", "NULL", "{}"]),
            ("'{}'", (string?[])[])),
        C("varchar_array", r => r.VarcharArray, ("'{a,NULL}'", (string?[])["a", null])),
        C("citext_array", r => r.CitextArray, ("'{MiXeD,NULL}'", (string?[])["MiXeD", null])),
        C("mood_array", r => r.MoodArray, ("'{happy,NULL,\"very happy\"}'", (Mood?[])[Mood.Happy, null, Mood.VeryHappy])),
        C("numeric_array", r => r.NumericArray, ("'{1.50,NULL,-0.0001,79228162514264337593543950335}'", (decimal?[])[1.50m, null, -0.0001m, decimal.MaxValue])),
        C("money_array", r => r.MoneyArray, ("'{1.5,NULL}'", (decimal?[])[1.50m, null])),
        C("float4_array", r => r.Float4Array, ("'{NaN,-Infinity,NULL,1.1}'", (float?[])[float.NaN, float.NegativeInfinity, null, 1.1f])),
        C("float8_array", r => r.Float8Array, ("'{NaN,Infinity,-Infinity,NULL,0.1,-0}'", (double?[])[double.NaN, double.PositiveInfinity, double.NegativeInfinity, null, 0.1, -0d])),
        C("int2_array", r => r.Int2Array, ("'{-32768,NULL}'", (short?[])[short.MinValue, null])),
        C("int8_array", r => r.Int8Array, ("'{9223372036854775807,NULL}'", (long?[])[long.MaxValue, null])),
        C("bool_array", r => r.BoolArray, ("'{t,f,NULL}'", (bool?[])[true, false, null])),
        C("date_array", r => r.DateArray, ("'{2024-02-29,NULL,0001-01-01}'", (DateOnly?[])[new DateOnly(2024, 2, 29), null, DateOnly.MinValue])),
        C("time_array", r => r.TimeArray, ("'{12:00:00.5,NULL}'", (TimeOnly?[])[new TimeOnly(12, 0, 0, 500), null])),
        C("timetz_array", r => r.TimetzArray, ("'{12:00:00-01,NULL}'", (PgTimeTz?[])[new PgTimeTz(System.TimeSpan.FromHours(12), System.TimeSpan.FromHours(-1)), null])),
        C("timestamp_array", r => r.TimestampArray, ("'{\"2024-02-29 12:00:00.000001\",NULL}'", (DateTime?[])[new DateTime(2024, 2, 29, 12, 0, 0).AddTicks(10), null])),
        C("timestamptz_array", r => r.TimestamptzArray, ("'{\"2024-02-29 12:00:00+01\",NULL}'", (DateTimeOffset?[])[new DateTimeOffset(2024, 2, 29, 11, 0, 0, System.TimeSpan.Zero), null])),
        C("interval_array", r => r.IntervalArray, ("'{\"1 day\",NULL,\"-00:00:01\"}'", (TimeSpan?[])[System.TimeSpan.FromDays(1), null, System.TimeSpan.FromSeconds(-1)])),
        C("uuid_array", r => r.UuidArray, ("'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'", (Guid?[])[Guid.Parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), null])),
        C("bytea_array", r => r.ByteaArray, ("ARRAY['\\x00ff'::bytea, NULL, '\\x'::bytea]", (byte[]?[])[[0x00, 0xff], null, []])),
        C("jsonb_array", r => r.JsonbArray, ("ARRAY['{\"a\": [1, \"𝄞\"]}'::jsonb, NULL]", (JsonElement?[])[JsonDocument.Parse("{\"a\": [1, \"𝄞\"]}").RootElement, null])),
        C("inet_array", r => r.InetArray, ("'{192.168.0.1,NULL,::1}'", (IPAddress?[])[IPAddress.Parse("192.168.0.1"), null, IPAddress.IPv6Loopback])),
        C("cidr_array", r => r.CidrArray, ("'{10.0.0.0/8,NULL}'", (IPNetwork?[])[IPNetwork.Parse("10.0.0.0/8"), null])),
        C("posint_array", r => r.PosintArray, ("'{1,NULL,2147483647}'", (int?[])[1, null, int.MaxValue])),
    ];

    /// <summary>The columns and their edge values, shared with the applier's round trip (GeneratedMappingTests).</summary>
    internal static IReadOnlyList<Column> Columns => s_columns;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryType_InsertedUpdatedAndSnapshotted_DecodesExactly(bool textFormat)
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync(TypeRow.CreateSql);
        var rows = s_columns.Max(c => c.Values.Length) + 1; // the last row is NULL everywhere
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<TypeRow>(c => recorder.Add(c)),
            configure: o => o.TextFormat = textFormat);

        // Inserts: row k has each column's value k.
        for (var k = 0; k < rows; k++)
            await db.ExecuteAsync($"INSERT INTO type_round_trip (id, {string.Join(", ", s_columns.Select(c => c.Name))}) VALUES ({k}, {string.Join(", ", s_columns.Select(c => c.Sql(k, rows)))})");
        await run.WaitUntilAsync(r => r.Of<TypeRow>().Count == rows, $"{rows} inserts", TimeSpan.FromSeconds(60));
        AssertRows(run.Recorder.Of<TypeRow>().Select(c => (c.Kind, c.New!)), ChangeKind.Insert, k => k, "inserted");
        AssertMessagesReadBack(run.Recorder.Of<TypeRow>(), ChangeKind.Insert, k => k);

        // Updates: row k takes the values of row k + 1 (the NULL row those of row 0).
        for (var k = 0; k < rows; k++)
            await db.ExecuteAsync($"UPDATE type_round_trip SET {string.Join(", ", s_columns.Select(c => $"{c.Name} = {c.Sql((k + 1) % rows, rows)}"))} WHERE id = {k}");
        await run.WaitUntilAsync(r => r.Of<TypeRow>().Count == 2 * rows, $"{rows} updates", TimeSpan.FromSeconds(60));
        var updates = run.Recorder.Of<TypeRow>().Skip(rows).ToList();
        Assert.All(updates, u => Assert.True(u.UnchangedToast.IsEmpty, "every column was set, so none is an unchanged TOAST value"));
        AssertRows(updates.Select(c => (c.Kind, c.New!)), ChangeKind.Update, k => (k + 1) % rows, "updated");
        AssertMessagesReadBack(updates, ChangeKind.Update, k => (k + 1) % rows);

        // Snapshot: the rows as they are now, read by chunk queries.
        await run.Client.SnapshotAsync<TypeRow>().WaitAsync(TimeSpan.FromSeconds(60));
        var reads = run.Recorder.Of<TypeRow>().Where(c => c.Kind == ChangeKind.Read).ToList();
        AssertRows(reads.Select(c => (c.Kind, c.New!)), ChangeKind.Read, k => (k + 1) % rows, "snapshotted");
        AssertMessagesReadBack(reads, ChangeKind.Read, k => (k + 1) % rows);
    }

    /// <summary>Each change written as a JetStream message body (MessagePack and JSON) and read back must hold the same
    /// values (DBSync.Nats: the values without a MessagePack or JSON type of their own travel as PostgreSQL's text).</summary>
    private static void AssertMessagesReadBack(IReadOnlyList<Change<TypeRow>> changes, ChangeKind kind, Func<int, int> specRow)
    {
        foreach (var format in (Nats.BodyFormat[])[Nats.BodyFormat.MessagePack, Nats.BodyFormat.Json])
        {
            var readBack = changes.Select(c =>
            {
                var body = new System.Buffers.ArrayBufferWriter<byte>();
                Nats.ChangeMessages.WriteBody(body, c, format);
                return Nats.ChangeMessageReader.Read<TypeRow>(body.WrittenMemory, format, c.Kind, c.CommitLsn, c.CommitTime, c.Xid, c.IndexInTransaction);
            });
            AssertRows(readBack.Select(c => (c.Kind, c.New!)), kind, specRow, $"read back from {format} messages");
        }
    }

    /// <summary>Each row must hold, column by column, the values of spec row <paramref name="specRow"/>(id).</summary>
    private static void AssertRows(IEnumerable<(ChangeKind Kind, TypeRow Row)> changes, ChangeKind kind, Func<int, int> specRow, string what)
    {
        var rows = s_columns.Max(c => c.Values.Length) + 1;
        var list = changes.ToList();
        Assert.Equal(Enumerable.Range(0, rows), list.Select(c => c.Row.Id).Order());
        var mismatches = new List<string>();
        foreach (var (changeKind, row) in list)
        {
            Assert.Equal(kind, changeKind);
            foreach (var column in s_columns)
            {
                var expected = Describe(column.Expected(specRow(row.Id), rows));
                var actual = Describe(column.Get(row));
                if (expected != actual)
                    mismatches.Add($"row {row.Id} {column.Name}: expected {expected}, got {actual}");
            }
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} values {what} differ:\n" + string.Join("\n", mismatches));
    }

    /// <summary>A canonical text of a value: exact for floats (bits), decimals (scale), dates (kind) and arrays (shape).</summary>
    private static string Describe(object? value) => value switch
    {
        null => "NULL",
        float f when float.IsNaN(f) => "float NaN",
        float f => $"float {f.ToString("R", CultureInfo.InvariantCulture)} (bits {BitConverter.SingleToInt32Bits(f):x8})",
        double d when double.IsNaN(d) => "double NaN",
        double d => $"double {d.ToString("R", CultureInfo.InvariantCulture)} (bits {BitConverter.DoubleToInt64Bits(d):x16})",
        decimal m => "decimal " + m.ToString(CultureInfo.InvariantCulture),
        string s when s.Length > 100 => $"string of {s.Length} chars, hash {Hash(Encoding.UTF8.GetBytes(s))}",
        string s => $"\"{s}\"",
        byte[] b => b.Length > 100 ? $"{b.Length} bytes, hash {Hash(b)}" : "0x" + Convert.ToHexString(b),
        ReadOnlyMemory<byte> m => "memory " + Describe(m.ToArray()),
        IPAddress a => "IPAddress " + a,
        DateTime t => $"{t.ToString("o", CultureInfo.InvariantCulture)} {t.Kind}",
        DateTimeOffset t => t.ToString("o", CultureInfo.InvariantCulture),
        TimeSpan t => t.ToString("c", CultureInfo.InvariantCulture),
        TimeOnly t => t.ToString("HH:mm:ss.fffffff", CultureInfo.InvariantCulture),
        JsonDocument j => "json " + j.RootElement.GetRawText(),
        JsonElement j => "json " + j.GetRawText(),
        PgTimestamp t => $"{t} ({t.MicrosecondsSince2000}, {t.Kind})",
        Array a => $"{a.GetType().Name} [{string.Join(",", Enumerable.Range(0, a.Rank).Select(a.GetLength))}] {{{string.Join(", ", a.Cast<object?>().Select(Describe))}}}",
        _ => $"{value.GetType().Name} {value}",
    };

    private static string Hash(byte[] bytes) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))[..16];

    private static Column C<T>(string name, Func<TypeRow, T> get, params (string Sql, T Expected)[] values)
        => new(name, r => get(r), [.. values.Select(v => (v.Sql, (object?)v.Expected))]);

    internal sealed record Column(string Name, Func<TypeRow, object?> Get, (string Sql, object? Expected)[] Values)
    {
        private bool IsNullRow(int row, int rows) => row == rows - 1;

        public string Sql(int row, int rows) => IsNullRow(row, rows) ? "NULL" : Values[row % Values.Length].Sql;

        public object? Expected(int row, int rows) => IsNullRow(row, rows) ? null : Values[row % Values.Length].Expected;
    }
}
