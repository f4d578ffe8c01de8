using System.Text;
using System.Text.Json.Nodes;
using DBSync.Schema;
using NpgsqlTypes;

namespace DBSync.Runtime.Tests;

/// <summary>
/// The DDL capture's messages, written by hand the way <see cref="DdlCaptureSql"/>'s trigger writes them, parsed by
/// <see cref="DdlMessage.Parse"/> and turned into <see cref="SchemaChange"/>s by <see cref="SchemaChangeClassifier"/>: each
/// kind, the cases where names and attribute numbers disagree, and messages DBSync must refuse with a clear error.
/// </summary>
public sealed class SchemaChangeClassifierTests
{
    private const uint Int4 = 23, Int8 = 20, Text = 25, Varchar = 1043, Date = 1082, Mood = 16500;

    private static readonly SchemaChangeClassifier.Position s_at = new(
        777, new NpgsqlLogSequenceNumber(0x1_0000_2000), new NpgsqlLogSequenceNumber(0x1_0000_3000), new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));

    private sealed class Item;

    [Fact]
    public void AlterTableWithSeveralClauses_IsOneChangePerClause_EachStampedWithTheStatementAndItsPosition()
    {
        var before = Shape("public", "item", [Id(), Col(2, "name", "character varying(10)", Varchar, notNull: true), Col(3, "amount", "integer", Int4), Col(4, "note", "text", Text), Col(5, "extra", "text", Text)]);
        var after = Shape("public", "item", [Id(), Col(2, "name", "character varying(10)", Varchar), Col(3, "amount", "bigint", Int8), Col(4, "note", "text", Text, @default: "'none'::text"),
            Col(6, "added", "double precision", 701, @default: "random()")]);
        const string statement = "ALTER TABLE item DROP COLUMN extra, ALTER COLUMN amount TYPE bigint, ALTER COLUMN note SET DEFAULT 'none', ALTER COLUMN name DROP NOT NULL, ADD COLUMN added float8 DEFAULT random()";
        var changes = Classify(Message([AlterTable("public.item")], [Table(16400, before, after, rewritten: true)], statement: statement),
            table => table == "public.item" ? typeof(Item) : null);

        Assert.Equal(
            "ColumnNullabilityChanged public.item.name: NOT NULL -> NULL (rewritten) | ColumnTypeChanged public.item.amount: integer -> bigint (rewritten) | " +
            "ColumnDefaultChanged public.item.note: - -> 'none'::text (rewritten) | ColumnDropped public.item.extra: text -> - (rewritten) | " +
            "ColumnAdded public.item.added: - -> double precision (rewritten)",
            Describe(changes));
        Assert.All(changes, c =>
        {
            Assert.Equal((777u, s_at.Lsn, s_at.CommitLsn, s_at.CommitTime), (c.Xid, c.Lsn, c.CommitLsn, c.CommitTime));
            Assert.Equal(("ALTER TABLE", "public.item", statement), (c.CommandTag, c.Object, c.Statement));
            Assert.Equal(typeof(Item), c.EntityType);
        });
    }

    [Fact]
    public void TableCreated_ListsItsColumns_AndCarriesTheTypeThatMapsIt()
    {
        var created = Shape("public", "late", [Col(1, "id", "integer", Int4, notNull: true), Col(2, "label", "text", Text)], primaryKey: ["id"]);
        var changes = Classify(Message([Command("CREATE TABLE", "table", "public.late"), Command("CREATE INDEX", "index", "public.late_pkey")], [Table(16401, null, created)]),
            table => table == "public.late" ? typeof(Item) : null);

        var change = Assert.Single(changes);
        Assert.Equal("TableCreated public.late: - -> id integer, label text", change.ToString());
        Assert.Equal((typeof(Item), "CREATE TABLE", "public.late"), (change.EntityType, change.CommandTag, change.Object));
    }

    [Fact]
    public void TableCreatedWithASerialColumn_IsReportedWithItsCreateTableCommand_NotTheSequencesCreatedBeforeIt()
    {
        // CREATE TABLE t (id serial PRIMARY KEY): pg_event_trigger_ddl_commands() lists the sequence first, then the table,
        // its key's index, and the sequence's OWNED BY.
        var created = Shape("public", "t", [Col(1, "id", "integer", Int4, notNull: true, @default: "nextval('t_id_seq'::regclass)")], primaryKey: ["id"]);
        var change = Assert.Single(Classify(Message(
            [Command("CREATE SEQUENCE", "sequence", "public.t_id_seq"), Command("CREATE TABLE", "table", "public.t"), Command("CREATE INDEX", "index", "public.t_pkey"),
             Command("ALTER SEQUENCE", "sequence", "public.t_id_seq")],
            [Table(16402, null, created)])));

        Assert.Equal("TableCreated public.t: - -> id integer", change.ToString());
        Assert.Equal(("CREATE TABLE", "public.t"), (change.CommandTag, change.Object));
    }

    [Fact]
    public void TablesDroppedByOneStatement_AreOneChangeEach_EachNamingItsOwnTable()
    {
        var a = Shape("public", "a", [Id()], primaryKey: ["id"]);
        var b = Shape("public", "b", [Id()], primaryKey: ["id"]);
        var changes = Classify(Message([Command("DROP TABLE", "table", "public.a"), Command("DROP TABLE", "table", "public.b")],
            [Table(16403, a, null), Table(16404, b, null)], @event: "sql_drop", statement: "DROP TABLE a, b"));

        Assert.Equal("TableDropped public.a | TableDropped public.b", Describe(changes));
        Assert.Equal(["DROP TABLE", "DROP TABLE"], changes.Select(c => c.CommandTag));
        Assert.Equal(["public.a", "public.b"], changes.Select(c => c.Object));
    }

    [Fact]
    public void TableMovedToAnotherSchema_IsARename_AndNothingElse()
    {
        var before = Shape("sales", "orders", [Id(), Col(2, "total", "numeric(12,2)", 1700)], primaryKey: ["id"]);
        var after = Shape("archive", "orders", [Id(), Col(2, "total", "numeric(12,2)", 1700)], primaryKey: ["id"]);
        var changes = Classify(Message([AlterTable("archive.orders")], [Table(16405, before, after)], statement: "ALTER TABLE sales.orders SET SCHEMA archive"));

        Assert.Equal("TableRenamed archive.orders: sales.orders -> archive.orders", Describe(changes));
    }

    [Fact]
    public void ColumnRenamedAndRetyped_KeepsItsAttnum_SoItIsARenameAndATypeChangeOfOneColumn()
    {
        // One statement cannot do both, but shapes compare with the last captured one: a statement the trigger missed
        // (session_replication_role = replica) shows up as both at the next one.
        var before = Shape("public", "item", [Id(), Col(2, "amount", "integer", Int4)], primaryKey: ["id"]);
        var after = Shape("public", "item", [Id(), Col(2, "total", "bigint", Int8)], primaryKey: ["id"]);
        var changes = Classify(Message([AlterTable("public.item")], [Table(16406, before, after, rewritten: true)]));

        Assert.Equal("ColumnRenamed public.item.total: amount -> total (rewritten) | ColumnTypeChanged public.item.total: integer -> bigint (rewritten)", Describe(changes));
    }

    [Fact]
    public void ColumnDroppedAndAddedAgainUnderItsName_HasANewAttnum_SoItIsADropAndAnAdd_NotARetype_BothRewritten()
    {
        // ALTER TABLE item DROP COLUMN note, ADD COLUMN note varchar(20): every row's note is now NULL, with no row event,
        // as after a rewrite.
        var before = Shape("public", "item", [Id(), Col(2, "note", "text", Text)], primaryKey: ["id"]);
        var after = Shape("public", "item", [Id(), Col(3, "note", "character varying(20)", Varchar)], primaryKey: ["id"]);
        var changes = Classify(Message([AlterTable("public.item")], [Table(16407, before, after)]));

        Assert.Equal("ColumnDropped public.item.note: text -> - (rewritten) | ColumnAdded public.item.note: - -> character varying(20) (rewritten)", Describe(changes));
    }

    [Fact]
    public void ColumnWhoseTypeWasRenamed_SameOidAndTypmod_HasNotChangedType()
    {
        // ALTER TYPE mood RENAME TO feeling writes no table; the stored shape still says public.mood until the table's next
        // statement (here a SET DEFAULT), whose message then shows the new type name under the same oid.
        var before = Shape("public", "item", [Id(), Col(2, "mood", "public.mood", Mood), Col(3, "note", "text", Text)], primaryKey: ["id"]);
        var after = Shape("public", "item", [Id(), Col(2, "mood", "public.feeling", Mood), Col(3, "note", "text", Text, @default: "'x'::text")], primaryKey: ["id"]);
        var changes = Classify(Message([AlterTable("public.item")], [Table(16415, before, after)], statement: "ALTER TABLE item ALTER COLUMN note SET DEFAULT 'x'"));

        Assert.Equal("ColumnDefaultChanged public.item.note: - -> 'x'::text", Describe(changes));
    }

    [Fact]
    public void ColumnRenamedOnly_IsARename_WithTheNewNameAsTheColumn()
    {
        var before = Shape("public", "item", [Id(), Col(2, "extra", "text", Text)], primaryKey: ["id"]);
        var after = Shape("public", "item", [Id(), Col(2, "extra2", "text", Text)], primaryKey: ["id"]);
        var change = Assert.Single(Classify(Message([AlterTable("public.item")], [Table(16408, before, after)])));

        Assert.Equal((SchemaChangeKind.ColumnRenamed, "extra2", "extra", "extra2"), (change.Kind, change.Column, change.Before, change.After));
    }

    [Fact]
    public void PrimaryKeyAndReplicaIdentityChanges_DescribeTheKeyColumnsAndTheIdentity()
    {
        var name = Col(2, "name", "text", Text, notNull: true);
        var pkOnId = Shape("public", "item", [Id(), Clone(name)], primaryKey: ["id"]);
        var pkOnIdName = Shape("public", "item", [Id(), Clone(name)], primaryKey: ["id", "name"], identity: "i", identityIndex: ["id", "name"]);
        var full = Shape("public", "item", [Id(), Clone(name)], primaryKey: [], identity: "f");
        var nothing = Shape("public", "item", [Id(), Clone(name)], primaryKey: [], identity: "n");

        Assert.Equal("PrimaryKeyChanged public.item: id -> id, name | ReplicaIdentityChanged public.item: default -> index (id, name)",
            Describe(Classify(Message([AlterTable("public.item")], [Table(16409, pkOnId, pkOnIdName)]))));
        Assert.Equal("PrimaryKeyChanged public.item: id, name -> - | ReplicaIdentityChanged public.item: index (id, name) -> full",
            Describe(Classify(Message([AlterTable("public.item")], [Table(16409, Clone(pkOnIdName), full)]))));
        Assert.Equal("ReplicaIdentityChanged public.item: full -> nothing",
            Describe(Classify(Message([AlterTable("public.item")], [Table(16409, Clone(full), nothing)]))));
    }

    [Fact]
    public void TableCreatedAsAPartition_IsCreatedAndAttached()
    {
        var partition = Shape("public", "measure_2026", [Col(1, "id", "integer", Int4, notNull: true), Col(2, "at", "date", Date, notNull: true)], primaryKey: ["id", "at"],
            parent: "public.measure");
        var changes = Classify(Message([Command("CREATE TABLE", "table", "public.measure_2026")], [Table(16410, null, partition)],
            statement: "CREATE TABLE measure_2026 PARTITION OF measure FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"));

        Assert.Equal("TableCreated public.measure_2026: - -> id integer, at date | PartitionAttached public.measure_2026: - -> public.measure", Describe(changes));
    }

    [Fact]
    public void PartitionAttachedAndDetached_NameThePartitionedTable_AndThePartitionedTableItselfIsOther()
    {
        var parent = Shape("public", "measure", [Col(1, "id", "integer", Int4, notNull: true), Col(2, "at", "date", Date, notNull: true)], primaryKey: ["id", "at"], kind: "p");
        JsonObject Partition(string? of) => Shape("public", "measure_2026", [Col(1, "id", "integer", Int4, notNull: true), Col(2, "at", "date", Date, notNull: true)],
            primaryKey: ["id", "at"], parent: of);

        var attached = Classify(Message([AlterTable("public.measure")], [Table(16411, parent, Clone(parent)), Table(16410, Partition(null), Partition("public.measure"))]));
        Assert.Equal("Other public.measure | PartitionAttached public.measure_2026: - -> public.measure", Describe(attached));

        var detached = Classify(Message([AlterTable("public.measure")], [Table(16411, Clone(parent), Clone(parent)), Table(16410, Partition("public.measure"), Partition(null))]));
        Assert.Equal("Other public.measure | PartitionDetached public.measure_2026: public.measure -> -", Describe(detached));
    }

    [Fact]
    public void PartitionedTableRenamed_IsARename_ItsPartitionsAreNeitherDetachedNorAttached()
    {
        // ALTER TABLE measure RENAME TO measure2: the trigger also writes each partition, whose stored parent name changed.
        var columns = () => new[] { Col(1, "id", "integer", Int4, notNull: true), Col(2, "at", "date", Date, notNull: true) };
        var changes = Classify(Message([AlterTable("public.measure2")],
        [
            Table(16411, Shape("public", "measure", columns(), primaryKey: ["id", "at"], kind: "p"), Shape("public", "measure2", columns(), primaryKey: ["id", "at"], kind: "p")),
            Table(16410, Shape("public", "measure_2026", columns(), primaryKey: ["id", "at"], parent: "public.measure"),
                Shape("public", "measure_2026", columns(), primaryKey: ["id", "at"], parent: "public.measure2")),
        ], statement: "ALTER TABLE measure RENAME TO measure2"));

        Assert.Contains("TableRenamed public.measure2: public.measure -> public.measure2", changes.Select(c => c.ToString()));
        Assert.DoesNotContain(changes, c => c.Kind is SchemaChangeKind.PartitionDetached or SchemaChangeKind.PartitionAttached);
    }

    [Fact]
    public void EnumValueAdded_ListsTheLabelsBeforeAndAfter_InOrder()
    {
        var change = Assert.Single(Classify(Message([Command("ALTER TYPE", "type", "public.mood")], [], [Enum(Mood, "public.mood", ["sad", "meh", "ok"], ["sad", "ok"])],
            statement: "ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'")));

        Assert.Equal("EnumValueAdded public.mood: sad, ok -> sad, meh, ok", change.ToString());
        Assert.Equal(("public.mood", "ALTER TYPE"), (change.Object, change.CommandTag));
        Assert.Null(change.Table);
        Assert.Null(change.EntityType);
    }

    [Fact]
    public void EnumLabelRenamed_IsNotAnAddedValue_ButOtherWithTheLabelsBeforeAndAfter()
    {
        var change = Assert.Single(Classify(Message([Command("ALTER TYPE", "type", "public.mood")], [], [Enum(Mood, "public.mood", ["unhappy", "ok"], ["sad", "ok"])],
            statement: "ALTER TYPE mood RENAME VALUE 'sad' TO 'unhappy'")));

        Assert.Equal("Other public.mood: sad, ok -> unhappy, ok", change.ToString());
    }

    [Fact]
    public void EnumTypeCreated_IsNotAnAddedValue()
    {
        // CREATE TYPE: no labels stored before it (labels_before is null).
        var change = Assert.Single(Classify(Message([Command("CREATE TYPE", "type", "public.mood")], [], [Enum(Mood, "public.mood", ["sad", "ok"], null)],
            statement: "CREATE TYPE mood AS ENUM ('sad', 'ok')")));

        Assert.NotEqual(SchemaChangeKind.EnumValueAdded, change.Kind);
        Assert.Equal(("public.mood", "sad, ok"), (change.Object, change.After));
    }

    [Fact]
    public void EnumUnchanged_AndNoTable_IsOneOtherPerCommand()
    {
        var changes = Classify(Message([Command("ALTER TYPE", "type", "public.mood")], [], [Enum(Mood, "public.mood", ["sad", "ok"], ["sad", "ok"])],
            statement: "ALTER TYPE mood OWNER TO someone"));

        Assert.Equal("Other public.mood", Describe(changes));
    }

    [Fact]
    public void StatementOnNothingTheTriggerDescribes_IsOneOtherPerDistinctCommand()
    {
        // CREATE INDEX: the index's table is in no "tables" entry (its shape did not change, and it is not the object).
        Assert.Equal("Other public.item_note",
            Describe(Classify(Message([Command("CREATE INDEX", "index", "public.item_note")], [], statement: "CREATE INDEX item_note ON item (note)"))));
        Assert.Equal("Other public.f() | Other public.g()",
            Describe(Classify(Message([Command("CREATE FUNCTION", "function", "public.f()"), Command("CREATE FUNCTION", "function", "public.f()"),
                Command("CREATE FUNCTION", "function", "public.g()")], []))));
    }

    [Fact]
    public void TableThatIsTheStatementsObject_ButWhoseShapeDidNotChange_IsOther_ForThatTable()
    {
        var shape = Shape("public", "item", [Id()], primaryKey: ["id"]);
        var change = Assert.Single(Classify(Message([AlterTable("public.item")], [Table(16412, shape, Clone(shape))], statement: "ALTER TABLE item OWNER TO someone"),
            table => table == "public.item" ? typeof(Item) : null));

        Assert.Equal("Other public.item", change.ToString());
        Assert.Equal(typeof(Item), change.EntityType);
    }

    [Fact]
    public void HugeStatement_IsCarriedWhole_BySeveralChangesOfOneMessage()
    {
        // The trigger cuts the statement at 262,144 characters; quotes, newlines and non-ASCII text come escaped or as UTF-8.
        var statement = string.Concat(Enumerable.Repeat("ALTER TABLE item ADD COLUMN \"é\tx\" text; -- \"quoted\"\r\n", 262_144 / 52)) + "…";
        var before = Shape("public", "item", [Id()], primaryKey: ["id"]);
        var after = Shape("public", "item", [Id(), Col(2, "a", "text", Text), Col(3, "b", "text", Text)], primaryKey: ["id"]);
        var changes = Classify(Message([AlterTable("public.item")], [Table(16413, before, after)], statement: statement));

        Assert.Equal(2, changes.Count);
        Assert.All(changes, c => Assert.Equal(statement, c.Statement));
    }

    [Fact]
    public void NullStatement_IsAnEmptyStatement()
    {
        // current_query() is NULL where there is no client query (a background worker running DDL).
        var message = Message([AlterTable("public.item")], [Table(16414, Shape("public", "item", [Id()]), Shape("public", "item", [Id(), Col(2, "a", "text", Text)]))]);
        message["statement"] = null;

        Assert.Equal("", Assert.Single(Classify(message)).Statement);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(0)]
    public void MessageOfAnotherVersion_IsAFormatException_ThatNamesBothVersions(int version)
    {
        var message = ValidMessage();
        message["v"] = version;
        // A newer trigger may well write another shape entirely: only the version is read.
        message.Remove("tables");

        var error = Assert.Throws<FormatException>(() => Parse(message));
        Assert.Contains($"version {version} ", error.Message, StringComparison.Ordinal);
        Assert.Contains($"version {DdlCaptureSql.Version}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MessageOfANewerVersion_SaysToUpgradeDBSync_NotToInstallTheOlderTrigger()
    {
        // The message is in the WAL already: installing this DBSync's (older) trigger cannot get the stream past it, and
        // would take the newer trigger away from the newer DBSync that installed it (EnsureInstalledAsync says "Upgrade").
        var message = ValidMessage();
        message["v"] = DdlCaptureSql.Version + 1;

        var error = Assert.Throws<FormatException>(() => Parse(message));
        Assert.Contains("upgrade", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("{\"v\": 1, \"event\": \"ddl_command_end\"")]
    [InlineData("not json")]
    [InlineData("[1]")]
    [InlineData("null")]
    [InlineData("\"text\"")]
    public void ContentThatIsNotAMessageObject_IsAFormatException(string content)
    {
        var error = Assert.Throws<FormatException>(() => DdlMessage.Parse(Encoding.UTF8.GetBytes(content)));
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public void InvalidUtf8_IsAFormatException()
    {
        var content = Encoding.UTF8.GetBytes(ValidMessage().ToJsonString());
        content[Encoding.UTF8.GetString(content).IndexOf("ALTER", StringComparison.Ordinal) + 1] = 0xFF;   // no UTF-8 byte

        Assert.Throws<FormatException>(() => DdlMessage.Parse(content));
    }

    [Fact]
    public void NestingDeeperThanAnyMessage_IsAFormatException()
    {
        var message = ValidMessage();
        JsonNode deep = new JsonArray();
        for (var i = 0; i < 20; i++)
            deep = new JsonArray(deep);
        message["commands"]![0]!["identity"] = deep;

        Assert.Throws<FormatException>(() => Parse(message));
    }

    /// <summary>Fields the trigger always writes, each taken away: the error names it.</summary>
    [Theory]
    [InlineData("v")]
    [InlineData("statement")]
    [InlineData("tables")]
    [InlineData("tables/before")]
    [InlineData("shape/columns")]
    [InlineData("column/type_oid")]
    [InlineData("enum/name")]
    public void MissingField_IsAFormatException_ThatNamesTheField(string field)
    {
        var message = ValidMessage();
        var (holder, name) = Locate(message, field);
        holder.Remove(name);

        var error = Assert.Throws<FormatException>(() => Parse(message));
        Assert.Contains($"\"{name}\"", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Fields the trigger never writes as null, written as null: the error names the field, and nothing is read
    /// as a default (a null primary key is not "no primary key", a null replica identity is not "default").</summary>
    [Theory]
    [InlineData("event")]
    [InlineData("tables")]
    [InlineData("commands/tag")]
    [InlineData("tables/oid")]
    [InlineData("shape/kind")]
    [InlineData("shape/primary_key")]
    [InlineData("shape/replica_identity")]
    [InlineData("column/name")]
    [InlineData("enum/labels")]
    public void UnexpectedNull_IsAFormatException_ThatNamesTheField(string field)
    {
        var message = ValidMessage();
        var (holder, name) = Locate(message, field);
        holder[name] = null;

        var error = Assert.Throws<FormatException>(() => Parse(message));
        Assert.Contains($"\"{name}\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NullLabel_IsAFormatException_ThatNamesTheField()
    {
        var message = ValidMessage();
        message["enums"]![0]!["labels"]!.AsArray().Add(null);

        var error = Assert.Throws<FormatException>(() => Parse(message));
        Assert.Contains("\"labels\"", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Values of the wrong type or out of range (an oid is an unsigned 32-bit number, written as int8).</summary>
    [Theory]
    [InlineData("v", "1.5")]
    [InlineData("v", "\"1\"")]
    [InlineData("tables/oid", "-1")]
    [InlineData("tables/oid", "4294967296")]
    [InlineData("column/type_oid", "-5")]
    [InlineData("column/num", "\"2\"")]
    [InlineData("column/not_null", "\"true\"")]
    [InlineData("shape/kind", "\"rp\"")]
    [InlineData("shape/replica_identity", "\"\"")]
    [InlineData("shape/primary_key", "\"id\"")]
    [InlineData("enum/oid", "1e3")]
    public void ValueOfTheWrongTypeOrRange_IsAFormatException_ThatNamesTheField(string field, string json)
    {
        var message = ValidMessage();
        var (holder, name) = Locate(message, field);
        holder[name] = JsonNode.Parse(json);

        var error = Assert.Throws<FormatException>(() => Parse(message));
        Assert.Contains($"\"{name}\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LargestOid_IsRead()
    {
        var message = ValidMessage();
        message["tables"]![0]!["oid"] = 4294967295L;
        message["tables"]![0]!["after"]!["columns"]![1]!["type_oid"] = 4294967295L;

        var parsed = Parse(message);
        Assert.Equal(uint.MaxValue, parsed.Tables[0].Oid);
        Assert.Equal(uint.MaxValue, parsed.Tables[0].After!.Columns[1].TypeOid);
    }

    /// <summary>A message with a table, an enum and every optional field, as the trigger writes it.</summary>
    private static JsonObject ValidMessage() => Message([AlterTable("public.item")],
        [Table(16400, Shape("public", "item", [Id()], primaryKey: ["id"]), Shape("public", "item", [Id(), Col(2, "a", "text", Text, @default: "'x'::text")], primaryKey: ["id"]))],
        [Enum(Mood, "public.mood", ["sad", "ok"], ["sad"])]);

    /// <summary>The object that holds <paramref name="field"/> ("area/name") in <see cref="ValidMessage"/>.</summary>
    private static (JsonObject Holder, string Name) Locate(JsonObject message, string field)
    {
        var slash = field.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
            return (message, field);
        var holder = field[..slash] switch
        {
            "commands" => message["commands"]![0]!,
            "tables" => message["tables"]![0]!,
            "shape" => message["tables"]![0]!["after"]!,
            "column" => message["tables"]![0]!["after"]!["columns"]![1]!,
            "enum" => message["enums"]![0]!,
            var other => throw new ArgumentException(other, nameof(field)),
        };
        return (holder.AsObject(), field[(slash + 1)..]);
    }

    private static JsonObject Clone(JsonObject node) => node.DeepClone().AsObject();

    private static DdlMessage Parse(JsonObject message) => DdlMessage.Parse(Encoding.UTF8.GetBytes(message.ToJsonString()));

    private static List<SchemaChange> Classify(JsonObject message, Func<string, Type?>? entityOf = null)
        => SchemaChangeClassifier.Classify(Parse(message), s_at, entityOf ?? (_ => null));

    private static string Describe(IEnumerable<SchemaChange> changes) => string.Join(" | ", changes.Select(c => c.ToString()));

    private static JsonObject Message(JsonObject[] commands, JsonObject[] tables, JsonObject[]? enums = null, string statement = "ALTER TABLE ...",
        string @event = "ddl_command_end")
        => new()
        {
            ["v"] = DdlCaptureSql.Version,
            ["event"] = @event,
            ["statement"] = statement,
            ["commands"] = new JsonArray(commands),
            ["tables"] = new JsonArray(tables),
            ["enums"] = new JsonArray(enums ?? []),
        };

    private static JsonObject Command(string tag, string objectType, string identity) => new()
    {
        ["tag"] = tag,
        ["object_type"] = objectType,
        ["schema"] = identity[..identity.IndexOf('.', StringComparison.Ordinal)],
        ["identity"] = identity,
        ["in_extension"] = false,
    };

    private static JsonObject AlterTable(string identity) => Command("ALTER TABLE", "table", identity);

    private static JsonObject Table(uint oid, JsonObject? before, JsonObject? after, bool rewritten = false) => new()
    {
        ["oid"] = (long)oid,
        ["before"] = before,
        ["after"] = after,
        ["rewritten"] = rewritten,
    };

    /// <summary>A table's shape, as <c>dbsync.ddl_table_shape</c> builds it (identity_index and parent written as null
    /// when there are none).</summary>
    private static JsonObject Shape(string schema, string name, JsonObject[] columns, string[]? primaryKey = null, string identity = "d", string[]? identityIndex = null,
        string? parent = null, string kind = "r")
        => new()
        {
            ["oid"] = 16400L,
            ["schema"] = schema,
            ["name"] = name,
            ["kind"] = kind,
            ["columns"] = new JsonArray(columns),
            ["primary_key"] = Strings(primaryKey ?? []),
            ["replica_identity"] = identity,
            ["identity_index"] = identityIndex is null ? null : Strings(identityIndex),
            ["parent"] = parent,
        };

    private static JsonObject Id() => Col(1, "id", "bigint", Int8, notNull: true);

    private static JsonObject Col(int num, string name, string type, uint typeOid, bool notNull = false, string? @default = null, int typmod = -1) => new()
    {
        ["num"] = num,
        ["name"] = name,
        ["type"] = type,
        ["type_oid"] = (long)typeOid,
        ["typmod"] = typmod,
        ["not_null"] = notNull,
        ["default"] = @default,
    };

    private static JsonObject Enum(uint oid, string name, string[] labels, string[]? labelsBefore) => new()
    {
        ["oid"] = (long)oid,
        ["name"] = name,
        ["labels"] = Strings(labels),
        ["labels_before"] = labelsBefore is null ? null : Strings(labelsBefore),
    };

    private static JsonArray Strings(string[] values) => new([.. values.Select(v => (JsonNode?)v)]);
}
