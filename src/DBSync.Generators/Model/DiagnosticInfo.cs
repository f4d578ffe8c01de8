using DBSync.Generators.Helpers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace DBSync.Generators.Model;

/// <summary>A diagnostic without a <see cref="Location"/> (which would pin a syntax tree in the pipeline).</summary>
internal sealed record DiagnosticInfo(string DescriptorId, string FilePath, TextSpan Span, LinePositionSpan LineSpan, EquatableArray<string> Arguments)
{
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, Location? location, params string[] arguments)
    {
        var span = location?.GetLineSpan();
        return new DiagnosticInfo(descriptor.Id, span?.Path ?? "", location?.SourceSpan ?? default, span?.Span ?? default, new EquatableArray<string>(arguments));
    }

    public Diagnostic ToDiagnostic()
    {
        var location = FilePath.Length == 0 ? Location.None : Location.Create(FilePath, Span, LineSpan);
        return Diagnostic.Create(Diagnostics.DiagnosticDescriptors.ById(DescriptorId), location, System.Linq.Enumerable.ToArray(System.Linq.Enumerable.Cast<object>(Arguments)));
    }
}

/// <summary>The parser's result for one annotated type: an entity to emit, or the diagnostics that prevent it.</summary>
internal sealed record ParseResult(EntitySpec? Entity, EquatableArray<DiagnosticInfo> Diagnostics);
