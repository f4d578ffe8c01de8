using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace DBSync.Generators.Helpers;

/// <summary>
/// The types the parser recognizes, looked up in one compilation. Made inside the transform and dropped with it, so no
/// symbol reaches the pipeline's values; types are compared with <see cref="SymbolEqualityComparer.Default"/>, never by
/// their display text. A type the compilation lacks (or has twice) is null and matches nothing.
/// </summary>
internal sealed class KnownTypeSymbols
{
    private readonly Dictionary<ITypeSymbol, string> _columnTypes = new(SymbolEqualityComparer.Default);
    private readonly HashSet<ITypeSymbol> _jsonNodes = new(SymbolEqualityComparer.Default);
    private readonly HashSet<ITypeSymbol> _unmappedNumbers = new(SymbolEqualityComparer.Default);

    public KnownTypeSymbols(Compilation compilation)
    {
        ColumnAttribute = compilation.GetTypeByMetadataName("DBSync.ColumnAttribute");
        PrimaryKeyAttribute = compilation.GetTypeByMetadataName("DBSync.PrimaryKeyAttribute");
        SyncIgnoreAttribute = compilation.GetTypeByMetadataName("DBSync.SyncIgnoreAttribute");
        PgLabelAttribute = compilation.GetTypeByMetadataName("DBSync.PgLabelAttribute");
        FlagsAttribute = compilation.GetTypeByMetadataName("System.FlagsAttribute");

        // Named types DBSync maps beyond the special types, with their SyncColumnType member.
        foreach (var (metadataName, columnType) in new[]
        {
            ("System.DateOnly", "DateOnly"), ("System.TimeOnly", "TimeOnly"), ("System.DateTimeOffset", "DateTimeOffset"),
            ("System.TimeSpan", "TimeSpan"), ("System.Guid", "Guid"), ("System.Text.Json.JsonDocument", "JsonDocument"),
            ("System.Text.Json.JsonElement", "JsonElement"), ("System.Net.IPAddress", "IPAddress"), ("System.Net.IPNetwork", "IPNetwork"),
            ("DBSync.PgDate", "PgDate"), ("DBSync.PgTimestamp", "PgTimestamp"), ("DBSync.PgTimeTz", "PgTimeTz"),
            ("DBSync.PgInterval", "PgInterval"), ("DBSync.PgInet", "PgInet"),
        })
        {
            Add(_columnTypes, compilation.GetTypeByMetadataName(metadataName), columnType);
        }
        var byteMemory = compilation.GetTypeByMetadataName("System.ReadOnlyMemory`1")?.Construct(compilation.GetSpecialType(SpecialType.System_Byte));
        Add(_columnTypes, byteMemory, "ByteMemory");

        foreach (var name in new[] { "System.Text.Json.Nodes.JsonNode", "System.Text.Json.Nodes.JsonObject", "System.Text.Json.Nodes.JsonArray" })
            Add(_jsonNodes, compilation.GetTypeByMetadataName(name));
        foreach (var name in new[] { "System.Int128", "System.UInt128", "System.Numerics.BigInteger", "System.Half" })
            Add(_unmappedNumbers, compilation.GetTypeByMetadataName(name));
    }

    public INamedTypeSymbol? ColumnAttribute { get; }

    public INamedTypeSymbol? PrimaryKeyAttribute { get; }

    public INamedTypeSymbol? SyncIgnoreAttribute { get; }

    public INamedTypeSymbol? PgLabelAttribute { get; }

    public INamedTypeSymbol? FlagsAttribute { get; }

    /// <summary>Whether <paramref name="attribute"/> is an instance of <paramref name="attributeType"/>.</summary>
    public static bool Is(AttributeData attribute, INamedTypeSymbol? attributeType)
        => attributeType is not null && SymbolEqualityComparer.Default.Equals(attribute.AttributeClass, attributeType);

    /// <summary>The SyncColumnType member of a named type DBSync maps (nullable annotations aside), or null.</summary>
    public string? ColumnTypeOf(ITypeSymbol type) => _columnTypes.TryGetValue(type, out var columnType) ? columnType : null;

    /// <summary>System.Text.Json's mutable nodes, which have no column type of their own.</summary>
    public bool IsJsonNode(ITypeSymbol type) => _jsonNodes.Contains(type);

    /// <summary>Number types no PostgreSQL type maps onto: 128-bit and arbitrary-size integers, half floats.</summary>
    public bool IsUnmappedNumber(ITypeSymbol type) => _unmappedNumbers.Contains(type);

    private static void Add(Dictionary<ITypeSymbol, string> map, ITypeSymbol? type, string value)
    {
        if (type is not null)
            map[type] = value;
    }

    private static void Add(HashSet<ITypeSymbol> set, ITypeSymbol? type)
    {
        if (type is not null)
            set.Add(type);
    }
}
