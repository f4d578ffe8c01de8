using System.Collections.Immutable;
using DBSync.Generators;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace DBSync.Generators.Tests;

/// <summary>Runs the generator over source text, compiled against the real DBSync.Runtime and the framework.</summary>
internal static class GeneratorHarness
{
    private static readonly CSharpParseOptions s_parseOptions = new(LanguageVersion.Latest);

    private static readonly Lazy<ImmutableArray<MetadataReference>> s_references = new(() =>
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Append(typeof(ISyncTable<>).Assembly.Location)
            .Append(typeof(Npgsql.NpgsqlConnection).Assembly.Location)
            .Distinct();
        return [.. paths.Select(p => MetadataReference.CreateFromFile(p))];
    });

    public static CSharpCompilation Compile(params string[] sources)
        => CSharpCompilation.Create("Consumer",
            sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, s_parseOptions, path: $"Source{i}.cs")),
            s_references.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    public static GeneratorDriver CreateDriver()
        => CSharpGeneratorDriver.Create([new SyncTableGenerator().AsSourceGenerator()], parseOptions: s_parseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator; returns the output compilation, the generator's diagnostics and its sources by hint name.</summary>
    public static (Compilation Output, ImmutableArray<Diagnostic> Diagnostics, IReadOnlyDictionary<string, string> Sources) Run(params string[] sources)
    {
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(Compile(sources), out var output, out var diagnostics);
        var generated = driver.GetRunResult().Results.Single().GeneratedSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString());
        return (output, diagnostics, generated);
    }

    public const string SeedEntities = """
        using System;
        using DBSync;

        namespace Seed;

        [SyncTable("users")]
        public partial class User
        {
            [PrimaryKey] public int Id { get; set; }
            public string FirstName { get; set; } = "";
            public string UserName { get; set; } = "";
            public string Email { get; set; } = "";
            public string? Avatar { get; set; }
            public string? Homepage { get; set; }
            public DateOnly? DateOfBirth { get; set; }
            public string? Address { get; set; }
            public string[]? Interests { get; set; }
        }

        [SyncTable("restaurant")]
        public partial class Restaurant
        {
            [PrimaryKey] public string Id { get; set; } = "";
            public string Name { get; set; } = "";
            public string? Description { get; set; }
            public string? Address { get; set; }
            public int? Rating { get; set; }
            public string[]? Tags { get; set; }
        }

        [SyncTable("visit")]
        public partial class Visit
        {
            [PrimaryKey(Order = 0)] public int UserId { get; set; }
            [PrimaryKey(Order = 1)] public string RestaurantId { get; set; } = "";
            public decimal AmountSpent { get; set; }
            public int? VisitRating { get; set; }
        }
        """;
}
