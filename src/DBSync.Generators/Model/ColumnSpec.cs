using DBSync.Generators.Helpers;

namespace DBSync.Generators.Model;

/// <summary>One mapped property. <see cref="ColumnType"/> is the name of a DBSync.SyncColumnType member, which is also
/// the suffix of the runtime's reader methods (ReadInt32, ReadString, ...); for an array property it is the element's.</summary>
/// <param name="PropertyName">The property.</param>
/// <param name="ColumnName">The PostgreSQL column.</param>
/// <param name="ColumnType">The SyncColumnType member of the property (of its elements, for an array).</param>
/// <param name="TypeDisplay">The property type, fully qualified, with nullable annotations.</param>
/// <param name="ClrTypeName">The property type as the user wrote it, for runtime messages.</param>
/// <param name="IsNullable">Whether the property accepts NULL.</param>
/// <param name="IsReferenceType">Whether the property type is a reference type (its local needs <c>default!</c>).</param>
/// <param name="KeyOrder">Position in the primary key, or -1.</param>
/// <param name="ArrayRank">0, or the dimensions of an array property.</param>
/// <param name="ElementTypeDisplay">The element type of an array property, fully qualified, with its nullability.</param>
/// <param name="ElementIsNullable">Whether an array property's elements accept NULL.</param>
/// <param name="Enum">The enum of an enum property (or of its elements).</param>
internal sealed record ColumnSpec(
    string PropertyName,
    string ColumnName,
    string ColumnType,
    string TypeDisplay,
    string ClrTypeName,
    bool IsNullable,
    bool IsReferenceType,
    int KeyOrder,
    int ArrayRank,
    string? ElementTypeDisplay,
    bool ElementIsNullable,
    EnumSpec? Enum);

/// <summary>A C# enum mapped to a PostgreSQL enum: its members and their labels, in declaration order.</summary>
internal sealed record EnumSpec(string FullName, EquatableArray<EnumMemberSpec> Members);

/// <summary>One enum member and its PostgreSQL label.</summary>
internal sealed record EnumMemberSpec(string Member, string Label);
