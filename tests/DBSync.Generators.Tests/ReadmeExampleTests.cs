using Microsoft.CodeAnalysis;

namespace DBSync.Generators.Tests;

/// <summary>README.md shows real code: its first C# block, and every later block that starts with the line
/// <c>// compiled by ReadmeExampleTests</c> (compiled together with the first), must compile with the generator, without
/// warnings.</summary>
public sealed class ReadmeExampleTests
{
    private const string Marker = "// compiled by ReadmeExampleTests";
    private const string ImplicitUsings = "global using System; global using System.Threading; global using System.Threading.Tasks;";

    private static List<string> CSharpBlocks()
    {
        var readme = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), "README.md"));
        var blocks = new List<string>();
        for (var start = readme.IndexOf("```csharp\n", StringComparison.Ordinal); start >= 0; start = readme.IndexOf("```csharp\n", start, StringComparison.Ordinal))
        {
            start += "```csharp\n".Length;
            var end = readme.IndexOf("```", start, StringComparison.Ordinal);
            blocks.Add(readme[start..end]);
            start = end + 3;
        }
        return blocks;
    }

    [Fact]
    public void ReadmeExample_CompilesWithTheGenerator()
    {
        var blocks = CSharpBlocks();
        Assert.True(blocks.Count > 0, "README.md has no ```csharp block");
        AssertCompiles(blocks[0]);
    }

    [Fact]
    public void MarkedReadmeBlocks_CompileWithTheFirst()
    {
        var marked = CSharpBlocks().Skip(1).Where(b => b.StartsWith(Marker, StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(marked);
        foreach (var block in marked)
            AssertCompiles(CSharpBlocks()[0], block);
    }

    private static void AssertCompiles(params string[] blocks)
    {
        var (output, diagnostics, sources) = GeneratorHarness.Run([ImplicitUsings, .. blocks]);
        Assert.Empty(diagnostics);
        Assert.Contains("User.SyncTable.g.cs", sources.Keys);
        var problems = output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
