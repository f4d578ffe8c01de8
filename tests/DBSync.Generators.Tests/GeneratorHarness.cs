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
            // The hosting package and the Microsoft.Extensions assemblies it and a host use, for the README's hosting block.
            .Append(typeof(Hosting.DBSyncBuilder).Assembly.Location)
            .Concat(Directory.GetFiles(AppContext.BaseDirectory, "Microsoft.Extensions.*.dll"))
            // The JetStream package and the NATS client, for docs/nats.md's blocks.
            .Append(typeof(Nats.JetStreamPublisher).Assembly.Location)
            .Concat(Directory.GetFiles(AppContext.BaseDirectory, "NATS.Client.*.dll"))
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

    /// <summary>The seed schema's entities, read from the sample (their one definition).</summary>
    public static string SeedEntities { get; } =
        "global using System;\n" + File.ReadAllText(Path.Combine(RepositoryRoot(), "samples", "DBSync.Sample", "Entities.cs")); // the sample has implicit usings

    /// <summary>The integration tests' entity with a property of every mapped type (its one definition).</summary>
    public static string TypeRowEntity { get; } =
        "global using System;\n" + File.ReadAllText(Path.Combine(RepositoryRoot(), "tests", "DBSync.IntegrationTests", "Types", "TypeRow.cs"));

    public static string RepositoryRoot([System.Runtime.CompilerServices.CallerFilePath] string path = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));
}
