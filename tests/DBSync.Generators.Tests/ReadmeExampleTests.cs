using Microsoft.CodeAnalysis;

namespace DBSync.Generators.Tests;

/// <summary>README.md shows real code: its first C# block must compile, with the generator, without warnings.</summary>
public sealed class ReadmeExampleTests
{
    [Fact]
    public void ReadmeExample_CompilesWithTheGenerator()
    {
        var readme = File.ReadAllText(Path.Combine(GeneratorHarness.RepositoryRoot(), "README.md"));
        var start = readme.IndexOf("```csharp\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no ```csharp block");
        start += "```csharp\n".Length;
        var example = readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)];

        const string implicitUsings = "global using System; global using System.Threading; global using System.Threading.Tasks;";
        var (output, diagnostics, sources) = GeneratorHarness.Run(implicitUsings, example);

        Assert.Empty(diagnostics);
        Assert.Contains("User.SyncTable.g.cs", sources.Keys);
        var problems = output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
