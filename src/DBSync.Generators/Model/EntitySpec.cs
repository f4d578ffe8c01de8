using DBSync.Generators.Helpers;

namespace DBSync.Generators.Model;

/// <summary>Everything the emitter needs for one entity; strings and values only, so it compares by value.</summary>
internal sealed record EntitySpec(
    string? Namespace,
    string TypeName,
    string FullTypeName,
    string Keyword,
    bool IsValueType,
    EquatableArray<ContainingTypeSpec> ContainingTypes,
    string Schema,
    string Table,
    EquatableArray<ColumnSpec> Columns,
    EquatableArray<int> ConstructorColumns,
    string HintName);

/// <summary>A type that contains the entity (outermost first): its keyword and name with type parameters.</summary>
internal sealed record ContainingTypeSpec(string Keyword, string Name);
