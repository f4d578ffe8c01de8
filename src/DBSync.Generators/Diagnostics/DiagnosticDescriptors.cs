using Microsoft.CodeAnalysis;

namespace DBSync.Generators.Diagnostics;

/// <summary>DBSync's diagnostics. Ids are stable and listed in AnalyzerReleases.*.md; each message says how to fix the code.</summary>
internal static class DiagnosticDescriptors
{
    private const string Category = "DBSync";

    public const string SupportedTypes =
        "bool, short, int, long, float, double, decimal, string, DateOnly, TimeOnly, DateTime, DateTimeOffset, TimeSpan, Guid, byte[], " +
        "ReadOnlyMemory<byte>, JsonDocument, JsonElement, IPAddress, IPNetwork, enums, DBSync.PgDate, PgTimestamp, PgTimeTz, PgInterval, PgInet, " +
        "arrays of these (T[], T[,], ...; T?[] for NULL elements), and Nullable<T> of the value types";

    public static readonly DiagnosticDescriptor NotPartial = new(
        "DBSYNC001", "Sync table type must be partial",
        "Type '{0}' must be declared partial{1}",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true,
        description: "The generator adds ISyncTable<T> to [SyncTable] types in a partial declaration; the type and every type containing it must be partial.");

    public static readonly DiagnosticDescriptor NoPrimaryKey = new(
        "DBSYNC002", "Sync table type has no primary key",
        "Type '{0}' has no [PrimaryKey] property; mark the property that holds the table's primary key with [PrimaryKey], or, for a composite key, each of its properties with [PrimaryKey(Order = n)] (n = 0, 1, 2 in the order of the key's columns)",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true,
        description: "Changes are matched to rows by primary key; every [SyncTable] type needs at least one [PrimaryKey] property.");

    public static readonly DiagnosticDescriptor UnsupportedType = new(
        "DBSYNC003", "Unsupported property type",
        "Property '{0}.{1}' has type '{2}', which DBSync cannot decode.{3} Supported types are " + SupportedTypes + ". {4}.",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    /// <summary>DBSYNC003's last sentence for a property that can be left unmapped.</summary>
    public const string UnsupportedTypeFix = "Change the type or mark the property [SyncIgnore]";

    /// <summary>DBSYNC003's last sentence for a [PrimaryKey] property: it identifies rows, so it cannot be left unmapped.</summary>
    public const string UnsupportedKeyTypeFix = "Change the type to one that holds the key column; a [PrimaryKey] property identifies the row, so it cannot be [SyncIgnore]";

    public static readonly DiagnosticDescriptor DuplicateColumn = new(
        "DBSYNC004", "Two properties map to the same column",
        "Properties '{0}' and '{1}' of '{2}' both map to column '{3}'; give one of them another [Column(\"...\")] name or mark it [SyncIgnore]",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor BadTableName = new(
        "DBSYNC005", "Bad table name",
        "[SyncTable(\"{0}\")] on '{1}' is not a valid table name: write \"table\" or \"schema.table\", each part non-empty, without surrounding spaces, at most 63 bytes",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor GenericType = new(
        "DBSYNC006", "Generic sync table types are not supported",
        "Type '{0}' is generic (or nested in a generic type); [SyncTable] types must be non-generic",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor NullableKey = new(
        "DBSYNC007", "Primary key property is nullable",
        "Primary key property '{0}.{1}' is nullable, but key columns are NOT NULL in PostgreSQL; make its type non-nullable",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor NoConstructor = new(
        "DBSYNC008", "No usable constructor",
        "Type '{0}' needs an accessible parameterless constructor, or one whose parameters all match mapped properties by name and type, so DBSync can create it",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor DuplicateEnumLabel = new(
        "DBSYNC009", "Two enum members have the same PostgreSQL label",
        "Members '{0}' and '{1}' of enum '{2}' both have the PostgreSQL label '{3}', so a value with that label would be ambiguous; give one of them another [PgLabel(\"...\")]",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor FlagsEnum = new(
        "DBSYNC010", "Flags enums cannot map to a PostgreSQL enum",
        "Property '{0}.{1}' has [Flags] enum type '{2}', but a PostgreSQL enum value is one label, never a combination; map the column to an integer property (int, long) and convert, or remove [Flags]",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor UnsupportedKeyType = new(
        "DBSYNC011", "Unsupported primary key type",
        "Primary key property '{0}.{1}' has type '{2}', which DBSync cannot compare as a key (arrays, byte buffers and JSON compare by reference); key properties must be scalars such as int, long, string, Guid, DateTime or an enum",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static DiagnosticDescriptor ById(string id) => id switch
    {
        "DBSYNC001" => NotPartial,
        "DBSYNC002" => NoPrimaryKey,
        "DBSYNC003" => UnsupportedType,
        "DBSYNC004" => DuplicateColumn,
        "DBSYNC005" => BadTableName,
        "DBSYNC006" => GenericType,
        "DBSYNC007" => NullableKey,
        "DBSYNC008" => NoConstructor,
        "DBSYNC009" => DuplicateEnumLabel,
        "DBSYNC010" => FlagsEnum,
        _ => UnsupportedKeyType,
    };
}
