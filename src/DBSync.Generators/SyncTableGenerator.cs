using DBSync.Generators.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace DBSync.Generators;

/// <summary>
/// Implements <c>DBSync.ISyncTable&lt;T&gt;</c> for every <c>[SyncTable]</c> type: table identity and columns, a pgoutput
/// tuple decoder, a snapshot row reader, and primary-key equality and hashing. This file is the pipeline only; symbols
/// become <see cref="EntitySpec"/> values in <c>SyncTableGenerator.Parser.cs</c> and text in <c>SyncTableGenerator.Emitter.cs</c>.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class SyncTableGenerator : IIncrementalGenerator
{
    private const string SyncTableAttribute = "DBSync.SyncTableAttribute";

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var results = context.SyntaxProvider
            .ForAttributeWithMetadataName(SyncTableAttribute,
                static (node, _) => node is TypeDeclarationSyntax,
                static (syntax, cancellationToken) => Parser.Parse(syntax, cancellationToken))
            .WithTrackingName(TrackingNames.Parse);

        var entities = results
            .Where(static r => r.Entity is not null)
            .Select(static (r, _) => r.Entity!)
            .WithTrackingName(TrackingNames.Entities);

        var diagnostics = results
            .SelectMany(static (r, _) => r.Diagnostics)
            .WithTrackingName(TrackingNames.Diagnostics);

        context.RegisterSourceOutput(entities, static (output, entity) => output.AddSource(entity.HintName, Emitter.Emit(entity)));
        context.RegisterSourceOutput(diagnostics, static (output, diagnostic) => output.ReportDiagnostic(diagnostic.ToDiagnostic()));
    }
}
