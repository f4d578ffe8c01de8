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
    public void NoPrimaryKey_ReportsDBSYNC002()
        => AssertSingle("[SyncTable(\"t\")] public partial class Keyless { public int Id { get; set; } }",
            "DBSYNC002", "Keyless", "Type 'Keyless' has no [PrimaryKey] property");

    [Fact]
    public void UnsupportedPropertyType_ReportsDBSYNC003WithTheSupportedList()
    {
        var diagnostic = AssertSingle("[SyncTable(\"t\")] public partial class T1 { [PrimaryKey] public int Id { get; set; } public System.Uri Link { get; set; } = null!; }",
            "DBSYNC003", "Link", "Property 'T1.Link' has type 'Uri'");
        Assert.Contains("bool, short, int, long, decimal, string, DateOnly, DateTime, DateTimeOffset, Guid, string[]", diagnostic.GetMessage(), StringComparison.Ordinal);
        Assert.Contains("[SyncIgnore]", diagnostic.GetMessage(), StringComparison.Ordinal);
    }

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
