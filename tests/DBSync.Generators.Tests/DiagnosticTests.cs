using Microsoft.CodeAnalysis;

namespace DBSync.Generators.Tests;

public sealed class DiagnosticTests
{
    [Fact]
    public void TypeNotPartial_ReportsDBSYNC001()
        => AssertSingle("[SyncTable(\"t\")] public class Plain { [PrimaryKey] public int Id { get; set; } }",
            "DBSYNC001", "Plain", "Type 'Plain' must be declared partial so DBSync can generate its decoder");

    [Fact]
    public void ContainingTypeNotPartial_ReportsDBSYNC001NamingIt()
        => AssertSingle("public class Outer { [SyncTable(\"t\")] public partial class Inner { [PrimaryKey] public int Id { get; set; } } }",
            "DBSYNC001", "Inner", "Type 'Outer' must be declared partial, because it contains [SyncTable] type 'Inner'");

    [Fact]
    public void NoPrimaryKey_ReportsDBSYNC002NamingTheAttributeForCompositeKeys()
    {
        // An entity called Order: the message must not read "with Order" as if it meant the type.
        var diagnostic = AssertSingle("[SyncTable(\"orders\")] public partial class Order { public int Id { get; set; } }",
            "DBSYNC002", "Order", "Type 'Order' has no [PrimaryKey] property; mark the property that holds the table's primary key with [PrimaryKey]");
        Assert.Contains("each of its properties with [PrimaryKey(Order = n)]", diagnostic.GetMessage(), StringComparison.Ordinal);
        Assert.DoesNotContain("with Order)", diagnostic.GetMessage(), StringComparison.Ordinal);
    }

    [Fact]
    public void UnsupportedPropertyType_ReportsDBSYNC003WithTheSupportedList()
    {
        var diagnostic = AssertSingle("[SyncTable(\"t\")] public partial class T1 { [PrimaryKey] public int Id { get; set; } public System.Uri Link { get; set; } = null!; }",
            "DBSYNC003", "Link", "Property 'T1.Link' has type 'Uri'");
        Assert.Contains("bool, short, int, long, float, double, decimal, string, DateOnly, TimeOnly, DateTime, DateTimeOffset, TimeSpan, Guid, byte[]", diagnostic.GetMessage(), StringComparison.Ordinal);
        Assert.Contains("arrays of these (T[], T[,], ...; T?[] for NULL elements)", diagnostic.GetMessage(), StringComparison.Ordinal);
        Assert.EndsWith("Change the type or mark the property [SyncIgnore].", diagnostic.GetMessage(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("uint", "PostgreSQL has no unsigned or one-byte integers")]
    [InlineData("System.Uri", "")]
    [InlineData("int[][]", "not an array of arrays")]
    public void UnsupportedKeyPropertyType_ReportsDBSYNC003_WithoutSuggestingSyncIgnore(string type, string fix)
    {
        var diagnostic = AssertSingle($"[SyncTable(\"t\")] public partial class T10 {{ [PrimaryKey] public {type} Id {{ get; set; }} = default!; }}",
            "DBSYNC003", "Id", "Property 'T10.Id' has type");
        var message = diagnostic.GetMessage();
        Assert.Contains(fix, message, StringComparison.Ordinal);
        Assert.EndsWith("Change the type to one that holds the key column; a [PrimaryKey] property identifies the row, so it cannot be [SyncIgnore].", message, StringComparison.Ordinal);
        Assert.DoesNotContain("or mark the property [SyncIgnore]", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("int[][]", "Use T[,] (T[,,], ...), not an array of arrays")]
    [InlineData("uint", "PostgreSQL has no unsigned or one-byte integers: use short, int, long or decimal")]
    [InlineData("System.Collections.Generic.List<string>", "Use an array (T[]) for a PostgreSQL array")]
    [InlineData("System.Text.Json.Nodes.JsonNode", "Use JsonElement, JsonDocument or string for json and jsonb")]
    [InlineData("System.Text.Json.Nodes.JsonNode?", "Use JsonElement, JsonDocument or string for json and jsonb")]
    [InlineData("System.Text.Json.Nodes.JsonObject?", "Use JsonElement, JsonDocument or string for json and jsonb")]
    [InlineData("System.Numerics.BigInteger?", "Use decimal, or string for numeric values outside decimal's range")]
    [InlineData("System.Numerics.BigInteger", "Use decimal, or string for numeric values outside decimal's range")]
    [InlineData("object", "Declare the column's type")]
    public void UnsupportedPropertyType_ReportsDBSYNC003WithTheFix(string type, string fix)
    {
        var diagnostic = AssertSingle($"[SyncTable(\"t\")] public partial class T1 {{ [PrimaryKey] public int Id {{ get; set; }} public {type} Value {{ get; set; }} = default!; }}",
            "DBSYNC003", "Value", "Property 'T1.Value' has type");
        Assert.Contains(fix.Replace("Use T[,]", "For a multi-dimensional array use T[,]", StringComparison.Ordinal), diagnostic.GetMessage(), StringComparison.Ordinal);
    }

    [Fact]
    public void TwoEnumMembersWithOneLabel_ReportsDBSYNC009NamingBoth()
        => AssertSingle("public enum Mood { Happy, [PgLabel(\"happy\")] Glad } [SyncTable(\"t\")] public partial class T7 { [PrimaryKey] public int Id { get; set; } public Mood Mood { get; set; } }",
            "DBSYNC009", "Mood", "Members 'Happy' and 'Glad' of enum 'Mood' both have the PostgreSQL label 'happy'");

    [Fact]
    public void FlagsEnum_ReportsDBSYNC010WithTheFix()
    {
        var diagnostic = AssertSingle("[Flags] public enum Access { Read = 1, Write = 2 } [SyncTable(\"t\")] public partial class T8 { [PrimaryKey] public int Id { get; set; } public Access[] Rights { get; set; } = []; }",
            "DBSYNC010", "Rights", "Property 'T8.Rights' has [Flags] enum type 'Access'");
        Assert.Contains("map the column to an integer property", diagnostic.GetMessage(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("int[]")]
    [InlineData("byte[]")]
    [InlineData("System.Text.Json.JsonElement")]
    public void KeyOfATypeWithoutValueEquality_ReportsDBSYNC011(string type)
        => AssertSingle($"[SyncTable(\"t\")] public partial class T9 {{ [PrimaryKey] public {type} Id {{ get; set; }} = default!; }}",
            "DBSYNC011", "Id", "Primary key property 'T9.Id' has type");

    [Fact]
    public void TwoPropertiesOnOneColumn_ReportsDBSYNC004NamingBoth()
        => AssertSingle("[SyncTable(\"t\")] public partial class T2 { [PrimaryKey] public int Id { get; set; } public string? UserName { get; set; } [Column(\"user_name\")] public string? Login { get; set; } }",
            "DBSYNC004", "Login", "Properties 'UserName' and 'Login' of 'T2' both map to column 'user_name'");

    [Theory]
    [InlineData("")]
    [InlineData("a.b.c")]
    [InlineData("public.")]
    [InlineData(" users")]
    public void BadTableName_ReportsDBSYNC005(string name)
        => AssertSingle($"[SyncTable(\"{name}\")] public partial class T3 {{ [PrimaryKey] public int Id {{ get; set; }} }}",
            "DBSYNC005", "T3", $"[SyncTable(\"{name}\")] on 'T3' is not a valid table name");

    [Fact]
    public void GenericType_ReportsDBSYNC006()
        => AssertSingle("[SyncTable(\"t\")] public partial class Box<T> { [PrimaryKey] public int Id { get; set; } }",
            "DBSYNC006", "Box", "Type 'Box' is generic");

    [Fact]
    public void NullablePrimaryKey_ReportsDBSYNC007()
        => AssertSingle("[SyncTable(\"t\")] public partial class T4 { [PrimaryKey] public int? Id { get; set; } }",
            "DBSYNC007", "Id", "Primary key property 'T4.Id' is nullable");

    [Fact]
    public void NoUsableConstructor_ReportsDBSYNC008()
        => AssertSingle("[SyncTable(\"t\")] public partial class T5 { public T5(string unrelated) { } [PrimaryKey] public int Id { get; set; } }",
            "DBSYNC008", "T5", "Type 'T5' needs an accessible parameterless constructor");

    [Fact]
    public void ConstructorParameterOfTheNullableType_IsNoMatch_ReportsDBSYNC008()
    {
        // An int parameter cannot take the int? value of its property: the constructor is not usable, which is a
        // diagnostic, not generated code that fails to compile.
        var (output, diagnostics, _) = GeneratorHarness.Run("using DBSync; [SyncTable(\"t\")] public partial class T7 { public T7(int id, int rating) { Id = id; Rating = rating; } " +
            "[PrimaryKey] public int Id { get; set; } public int? Rating { get; set; } }");
        Assert.Equal("DBSYNC008", Assert.Single(diagnostics).Id);
        Assert.DoesNotContain(output.GetDiagnostics(), d => d.Severity == DiagnosticSeverity.Error);
    }

    [Fact]
    public void UnresolvedPropertyType_LeavesTheErrorToTheCompiler_AndGeneratesNothing()
    {
        var (output, diagnostics, sources) = GeneratorHarness.Run("using DBSync; [SyncTable(\"t\")] public partial class T6 { [PrimaryKey] public int Id { get; set; } public Missing? Thing { get; set; } }");
        Assert.Empty(diagnostics);
        Assert.Empty(sources);
        Assert.Contains(output.GetDiagnostics(), d => d.Id == "CS0246");
    }

    [Fact]
    public void EntityWithErrors_GetsNoGeneratedCode()
    {
        var (_, diagnostics, sources) = GeneratorHarness.Run("using DBSync; [SyncTable(\"t\")] public partial class Keyless { public int Id { get; set; } }");
        Assert.Single(diagnostics);
        Assert.Empty(sources);
    }

    private static Diagnostic AssertSingle(string source, string id, string locatedAt, string messageStart)
    {
        var text = "using System; using DBSync;\n" + source;
        var (_, diagnostics, _) = GeneratorHarness.Run(text);

        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal(id, diagnostic.Id);
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        Assert.StartsWith(messageStart, diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        // The generator rebuilds locations from path and span (pipeline values hold no syntax trees).
        Assert.Equal("Source0.cs", diagnostic.Location.GetLineSpan().Path);
        Assert.Equal(locatedAt, text.Substring(diagnostic.Location.SourceSpan.Start, diagnostic.Location.SourceSpan.Length));
        Assert.False(string.IsNullOrEmpty(diagnostic.Descriptor.Title.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return diagnostic;
    }
}
