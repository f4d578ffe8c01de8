using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using DBSync.Generators.Diagnostics;
using DBSync.Generators.Helpers;
using DBSync.Generators.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace DBSync.Generators;

public sealed partial class SyncTableGenerator
{
    /// <summary>Turns an annotated type symbol into an <see cref="EntitySpec"/>, or into diagnostics.</summary>
    internal static class Parser
    {
        private static readonly SymbolDisplayFormat s_typeFormat = SymbolDisplayFormat.FullyQualifiedFormat
            .AddMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

        private static readonly SymbolDisplayFormat s_messageFormat = SymbolDisplayFormat.MinimallyQualifiedFormat
            .AddMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

        public static ParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var syntax = (TypeDeclarationSyntax)context.TargetNode;
            var location = syntax.Identifier.GetLocation();
            var diagnostics = new List<DiagnosticInfo>();
            var known = new KnownTypeSymbols(context.SemanticModel.Compilation);

            if (type.IsGenericType || ContainingTypes(type).Any(t => t.IsGenericType))
                return Fail(DiagnosticInfo.Create(DiagnosticDescriptors.GenericType, location, type.Name));

            foreach (var t in new[] { type }.Concat(ContainingTypes(type)))
            {
                var isPartial = t.DeclaringSyntaxReferences.Any(r =>
                    r.GetSyntax(cancellationToken) is TypeDeclarationSyntax d && d.Modifiers.Any(SyntaxKind.PartialKeyword));
                if (!isPartial)
                {
                    var why = SymbolEqualityComparer.Default.Equals(t, type)
                        ? " so DBSync can generate its decoder"
                        : $", because it contains [SyncTable] type '{type.Name}'";
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotPartial, location, t.Name, why));
                }
            }

            var tableName = context.Attributes[0].ConstructorArguments.FirstOrDefault().Value as string ?? "";
            if (!TrySplitTableName(tableName, out var schema, out var table))
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadTableName, location, tableName, type.Name));

            var columns = new List<ColumnSpec>();
            var hasUnresolvedTypes = false;
            var hasKeyAttribute = false;
            var columnTypes = new List<ITypeSymbol>();
            foreach (var property in MappedProperties(type, known))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var propertyLocation = property.Locations.FirstOrDefault();
                var keyOrder = -1;
                var columnName = NameConversions.ToSnakeCase(property.Name);
                foreach (var attribute in property.GetAttributes())
                {
                    if (KnownTypeSymbols.Is(attribute, known.ColumnAttribute) && attribute.ConstructorArguments.FirstOrDefault().Value is string explicitName)
                        columnName = explicitName;
                    else if (KnownTypeSymbols.Is(attribute, known.PrimaryKeyAttribute))
                        keyOrder = attribute.NamedArguments.FirstOrDefault(a => a.Key == "Order").Value.Value as int? ?? 0;
                }
                // A key property whose type is reported below still counts: "no [PrimaryKey] property" would be wrong.
                hasKeyAttribute |= keyOrder >= 0;
                if (IsUnresolved(property.Type))
                {
                    // The compiler already reports the missing type; no code until it resolves, and no second error.
                    hasUnresolvedTypes = true;
                    continue;
                }

                var unmapped = new Unmapped(propertyLocation, type.Name, property.Name, IsKey: keyOrder >= 0);
                var shape = Classify(property.Type, property.NullableAnnotation, unmapped, known, diagnostics);
                if (shape is null)
                    continue;
                var isNullable = shape.IsNullable;

                if (keyOrder >= 0 && isNullable)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NullableKey, propertyLocation, type.Name, property.Name));
                if (keyOrder >= 0 && (shape.ArrayRank > 0 || shape.ColumnType is "Bytes" or "ByteMemory" or "JsonDocument" or "JsonElement"))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedKeyType, propertyLocation, type.Name, property.Name,
                        property.Type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat)));
                }

                var duplicate = columns.FindIndex(c => c.ColumnName == columnName);
                if (duplicate >= 0)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateColumn, propertyLocation,
                        columns[duplicate].PropertyName, property.Name, type.Name, columnName));
                    continue;
                }

                columns.Add(new ColumnSpec(property.Name, columnName, shape.ColumnType, property.Type.ToDisplayString(s_typeFormat),
                    property.Type.ToDisplayString(s_messageFormat), isNullable, property.Type.IsReferenceType, keyOrder,
                    shape.ArrayRank, shape.ElementTypeDisplay, shape.ElementIsNullable, shape.Enum));
                columnTypes.Add(property.Type);
            }

            if (!hasKeyAttribute)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoPrimaryKey, location, type.Name));

            // Key positions: by Order, then declaration order, renumbered 0..n-1.
            var keys = columns.Select((c, i) => (Column: c, Index: i)).Where(x => x.Column.KeyOrder >= 0)
                .OrderBy(x => x.Column.KeyOrder).ThenBy(x => x.Index).Select(x => x.Index).ToList();
            for (var k = 0; k < keys.Count; k++)
                columns[keys[k]] = columns[keys[k]] with { KeyOrder = k };

            var constructorColumns = FindConstructor(type, columns, columnTypes);
            if (constructorColumns is null)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoConstructor, location, type.Name));

            if (diagnostics.Count > 0 || hasUnresolvedTypes)
                return new ParseResult(null, new EquatableArray<DiagnosticInfo>(diagnostics));

            var ns = type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString();
            var containing = ContainingTypes(type).Reverse().Select(t => new ContainingTypeSpec(Keyword(t), t.Name)).ToList();
            var hintName = (ns is null ? "" : ns + ".") + string.Join(".", containing.Select(c => c.Name).Concat([type.Name])) + ".SyncTable.g.cs";
            var entity = new EntitySpec(ns, type.Name, type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat), Keyword(type), type.IsValueType,
                new EquatableArray<ContainingTypeSpec>(containing), schema, table, new EquatableArray<ColumnSpec>(columns),
                new EquatableArray<int>(constructorColumns!), hintName);
            return new ParseResult(entity, EquatableArray<DiagnosticInfo>.Empty);

            static ParseResult Fail(DiagnosticInfo diagnostic) => new(null, new EquatableArray<DiagnosticInfo>([diagnostic]));
        }

        private static IEnumerable<INamedTypeSymbol> ContainingTypes(INamedTypeSymbol type)
        {
            for (var t = type.ContainingType; t is not null; t = t.ContainingType)
                yield return t;
        }

        private static IEnumerable<IPropertySymbol> MappedProperties(INamedTypeSymbol type, KnownTypeSymbols known)
            => type.GetMembers().OfType<IPropertySymbol>().Where(p =>
                p.DeclaredAccessibility == Accessibility.Public && !p.IsStatic && !p.IsIndexer && p.SetMethod is not null
                && !p.GetAttributes().Any(a => KnownTypeSymbols.Is(a, known.SyncIgnoreAttribute)));

        private static bool IsUnresolved(ITypeSymbol type) => type.TypeKind == TypeKind.Error
            || type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } n && n.TypeArguments[0].TypeKind == TypeKind.Error
            || type is IArrayTypeSymbol { ElementType.TypeKind: TypeKind.Error };

        /// <summary>How a property's type maps: its SyncColumnType (of the elements, for an array), nullability and rank.</summary>
        private sealed record Shape(string ColumnType, bool IsNullable, int ArrayRank, string? ElementTypeDisplay, bool ElementIsNullable, EnumSpec? Enum);

        /// <summary>The property a type is being classified for: where to report, and whether it is a key (which cannot be
        /// left unmapped with [SyncIgnore]).</summary>
        private sealed record Unmapped(Location? Location, string TypeName, string PropertyName, bool IsKey)
        {
            public DiagnosticInfo Report(ITypeSymbol type, KnownTypeSymbols known) => DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedType, Location, TypeName, PropertyName,
                type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat), Hint(type, known),
                IsKey ? DiagnosticDescriptors.UnsupportedKeyTypeFix : DiagnosticDescriptors.UnsupportedTypeFix);
        }

        /// <summary>Classifies a property type, or reports why it cannot be mapped (with the fix) and returns null.</summary>
        private static Shape? Classify(ITypeSymbol type, NullableAnnotation annotation, Unmapped property, KnownTypeSymbols known, List<DiagnosticInfo> diagnostics)
        {
            var isNullable = IsNullable(ref type, annotation);
            if (type is IArrayTypeSymbol array && !IsByteArray(array))
            {
                var element = array.ElementType;
                var elementIsNullable = IsNullable(ref element, array.ElementNullableAnnotation);
                if (element is IArrayTypeSymbol inner && !IsByteArray(inner))
                {
                    diagnostics.Add(property.Report(array, known));
                    return null;
                }
                var elementType = ScalarType(element, property, known, diagnostics, out var elementEnum);
                return elementType is null ? null : new Shape(elementType, isNullable, array.Rank, array.ElementType.ToDisplayString(s_typeFormat), elementIsNullable, elementEnum);
            }

            var scalar = ScalarType(type, property, known, diagnostics, out var enumSpec);
            return scalar is null ? null : new Shape(scalar, isNullable, 0, null, false, enumSpec);
        }

        /// <summary>Unwraps Nullable&lt;T&gt;; whether the type accepts NULL (a reference type unless annotated not-null).</summary>
        private static bool IsNullable(ref ITypeSymbol type, NullableAnnotation annotation)
        {
            if (type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } nullable)
            {
                type = nullable.TypeArguments[0];
                return true;
            }
            // Annotated, or written in a nullable-oblivious context: NULL is a legal value.
            return type.IsReferenceType && annotation != NullableAnnotation.NotAnnotated;
        }

        private static bool IsByteArray(IArrayTypeSymbol array) => array is { Rank: 1, ElementType.SpecialType: SpecialType.System_Byte };

        /// <summary>The SyncColumnType member of a scalar type, or null after reporting a diagnostic.</summary>
        private static string? ScalarType(ITypeSymbol type, Unmapped property, KnownTypeSymbols known, List<DiagnosticInfo> diagnostics, out EnumSpec? enumSpec)
        {
            enumSpec = null;
            var name = type.SpecialType switch
            {
                SpecialType.System_Boolean => "Boolean",
                SpecialType.System_Int16 => "Int16",
                SpecialType.System_Int32 => "Int32",
                SpecialType.System_Int64 => "Int64",
                SpecialType.System_Single => "Single",
                SpecialType.System_Double => "Double",
                SpecialType.System_Decimal => "Decimal",
                SpecialType.System_String => "String",
                SpecialType.System_DateTime => "DateTime",
                _ => type switch
                {
                    IArrayTypeSymbol array when IsByteArray(array) => "Bytes",
                    INamedTypeSymbol { TypeKind: TypeKind.Enum } => "Enum",
                    INamedTypeSymbol named => known.ColumnTypeOf(named),
                    _ => null,
                },
            };

            if (name == "Enum")
            {
                enumSpec = EnumOf((INamedTypeSymbol)type, property, known, diagnostics);
                return enumSpec is null ? null : name;
            }
            if (name is null)
                diagnostics.Add(property.Report(type, known));
            return name;
        }

        /// <summary>A fix for a type DBSync does not map, when there is an obvious one.</summary>
        private static string Hint(ITypeSymbol type, KnownTypeSymbols known) => type.SpecialType switch
        {
            SpecialType.System_Byte or SpecialType.System_SByte or SpecialType.System_UInt16 or SpecialType.System_UInt32 or SpecialType.System_UInt64 =>
                " PostgreSQL has no unsigned or one-byte integers: use short, int, long or decimal.",
            SpecialType.System_Char => " Use string for char(1).",
            SpecialType.System_Object => " Declare the column's type.",
            _ => type switch
            {
                IArrayTypeSymbol => " For a multi-dimensional array use T[,] (T[,,], ...), not an array of arrays.",
                INamedTypeSymbol { IsGenericType: true } named when named.AllInterfaces.Any(i => i.OriginalDefinition.SpecialType == SpecialType.System_Collections_Generic_IEnumerable_T) =>
                    " Use an array (T[]) for a PostgreSQL array.",
                // Symbols compare without the nullable annotation: JsonNode? needs the same fix as JsonNode.
                _ when known.IsJsonNode(type) => " Use JsonElement, JsonDocument or string for json and jsonb.",
                _ when known.IsUnmappedNumber(type) =>
                    " Use decimal, or string for numeric values outside decimal's range.",
                _ => "",
            },
        };

        /// <summary>The members and labels of an enum, or null after reporting why it cannot map to a PostgreSQL enum.</summary>
        private static EnumSpec? EnumOf(INamedTypeSymbol type, Unmapped property, KnownTypeSymbols known, List<DiagnosticInfo> diagnostics)
        {
            var display = type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat);
            if (type.GetAttributes().Any(a => KnownTypeSymbols.Is(a, known.FlagsAttribute)))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.FlagsEnum, property.Location, property.TypeName, property.PropertyName, display));
                return null;
            }

            var members = new List<EnumMemberSpec>();
            foreach (var field in type.GetMembers().OfType<IFieldSymbol>().Where(f => f.HasConstantValue))
            {
                var label = field.GetAttributes().FirstOrDefault(a => KnownTypeSymbols.Is(a, known.PgLabelAttribute))?
                    .ConstructorArguments.FirstOrDefault().Value as string ?? NameConversions.ToSnakeCase(field.Name);
                var clash = members.FirstOrDefault(m => m.Label == label);
                if (clash is not null)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateEnumLabel, property.Location, clash.Member, field.Name, display, label));
                    return null;
                }
                members.Add(new EnumMemberSpec(field.Name, label));
            }
            return new EnumSpec(type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat), new EquatableArray<EnumMemberSpec>(members));
        }

        /// <summary>The mapped columns a constructor takes, in parameter order; empty for a parameterless constructor; null when none fits.
        /// A parameter takes the column of the property with its name (in any case) and type.</summary>
        private static int[]? FindConstructor(INamedTypeSymbol type, List<ColumnSpec> columns, List<ITypeSymbol> columnTypes)
        {
            var candidates = type.InstanceConstructors
                .Where(c => c.DeclaredAccessibility is Accessibility.Public or Accessibility.Internal or Accessibility.ProtectedOrInternal or Accessibility.Private)
                .OrderBy(c => c.Parameters.Length);
            foreach (var constructor in candidates)
            {
                if (constructor.Parameters.Length == 0)
                    return [];
                var mapped = new List<int>();
                foreach (var parameter in constructor.Parameters)
                {
                    var index = -1;
                    for (var i = 0; i < columns.Count && index < 0; i++)
                    {
                        if (string.Equals(columns[i].PropertyName, parameter.Name, System.StringComparison.OrdinalIgnoreCase) && SameType(columnTypes[i], parameter.Type))
                            index = i;
                    }
                    if (index < 0)
                        break;
                    mapped.Add(index);
                }
                if (mapped.Count == constructor.Parameters.Length)
                    return [.. mapped];
            }
            return type.IsValueType ? [] : null;
        }

        /// <summary>The same type, but for the nullable annotation of the type itself (<c>string?</c> takes <c>string</c>); an
        /// element's annotation counts, and <c>int?</c> is another type than <c>int</c>.</summary>
        private static bool SameType(ITypeSymbol property, ITypeSymbol parameter)
            => SymbolEqualityComparer.IncludeNullability.Equals(property.WithNullableAnnotation(NullableAnnotation.NotAnnotated),
                parameter.WithNullableAnnotation(NullableAnnotation.NotAnnotated));

        private static bool TrySplitTableName(string name, out string schema, out string table)
        {
            var parts = name.Split('.');
            (schema, table) = parts.Length == 2 ? (parts[0], parts[1]) : ("public", parts[0]);
            return parts.Length is 1 or 2 && parts.All(p => p.Length > 0 && p.Trim() == p && Encoding.UTF8.GetByteCount(p) <= 63);
        }

        private static string Keyword(INamedTypeSymbol type) => (type.IsRecord, type.IsValueType) switch
        {
            (true, true) => "record struct",
            (true, false) => "record",
            (false, true) => "struct",
            _ => type.TypeKind == TypeKind.Interface ? "interface" : "class",
        };
    }
}
