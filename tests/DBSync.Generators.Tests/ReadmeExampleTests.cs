using Microsoft.CodeAnalysis;

namespace DBSync.Generators.Tests;

/// <summary>README.md and the pages under docs/ show real code: README's first C# block compiles alone, and every other
/// C# block of README.md and docs/*.md starts with the line <c>// compiled by ReadmeExampleTests</c> and compiles together
/// with README's first block (which declares <c>User</c>), with the generator, without warnings.</summary>
public sealed class ReadmeExampleTests
{
    private const string Marker = "// compiled by ReadmeExampleTests";
    private const string ImplicitUsings = "global using System; global using System.Threading; global using System.Threading.Tasks;";
    private const string Fence = "```csharp\n";

    /// <summary>README.md and every page under docs/, as paths relative to the repository root.</summary>
    public static TheoryData<string> Pages()
    {
        var pages = new TheoryData<string> { "README.md" };
        foreach (var page in DocsPages())
            pages.Add(page);
        return pages;
    }

    internal static List<string> DocsPages()
    {
        var root = GeneratorHarness.RepositoryRoot();
        return [.. Directory.GetFiles(Path.Combine(root, "docs"), "*.md").Select(p => Path.GetRelativePath(root, p).Replace('\\', '/')).Order(StringComparer.Ordinal)];
    }

    /// <summary>The C# blocks of a page, with the line each starts on.</summary>
    private static List<(int Line, string Code)> CSharpBlocks(string page)
    {
        var text = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), page)).ReplaceLineEndings("\n");
        var blocks = new List<(int, string)>();
        for (var start = text.IndexOf(Fence, StringComparison.Ordinal); start >= 0; start = text.IndexOf(Fence, start, StringComparison.Ordinal))
        {
            var line = text.AsSpan(0, start).Count('\n') + 2;
            start += Fence.Length;
            var end = text.IndexOf("```", start, StringComparison.Ordinal);
            blocks.Add((line, text[start..end]));
            start = end + 3;
        }
        return blocks;
    }

    /// <summary>Every block but README's first, which the others are compiled with.</summary>
    private static IEnumerable<(int Line, string Code)> OtherBlocks(string page)
        => page == "README.md" ? CSharpBlocks(page).Skip(1) : CSharpBlocks(page);

    private static string ReadmeExample()
    {
        var blocks = CSharpBlocks("README.md");
        Assert.True(blocks.Count > 0, "README.md has no ```csharp block");
        return blocks[0].Code;
    }

    [Fact]
    public void ReadmeExample_CompilesWithTheGenerator() => AssertCompiles(ReadmeExample());

    [Fact]
    public void DocsPages_HaveCompiledBlocks()
    {
        var pages = DocsPages();
        Assert.NotEmpty(pages);
        Assert.Contains(pages, page => OtherBlocks(page).Any(b => b.Code.StartsWith(Marker, StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public void EveryCSharpBlock_IsMarkedToCompile(string page)
    {
        var unmarked = OtherBlocks(page).Where(b => !b.Code.StartsWith(Marker, StringComparison.Ordinal)).Select(b => $"{page}:{b.Line}").ToList();
        Assert.True(unmarked.Count == 0,
            $"C# blocks that no test compiles (start each with \"{Marker}\", and make it compile with README.md's first block): {string.Join(", ", unmarked)}");
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public void MarkedBlocks_CompileWithTheReadmeExample(string page)
    {
        var example = ReadmeExample();
        foreach (var block in OtherBlocks(page).Where(b => b.Code.StartsWith(Marker, StringComparison.Ordinal)))
            AssertCompiles(example, block.Code);
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
