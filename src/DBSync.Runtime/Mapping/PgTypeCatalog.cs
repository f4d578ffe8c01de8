using DBSync.Protocol;
using Npgsql;

namespace DBSync.Mapping;

/// <summary>
/// The types of one database that DBSync may meet in mapped columns beyond the built-in ones: enums, domains (resolved to
/// their base type), citext, and arrays of those. Read once when a run starts; the stream and snapshots resolve type
/// oids through it, so both decode a column the same way.
/// </summary>
internal sealed class PgTypeCatalog
{
    private readonly Dictionary<uint, UserType> _types;

    private PgTypeCatalog(Dictionary<uint, UserType> types) => _types = types;

    /// <summary>Built-in types only.</summary>
    public static PgTypeCatalog BuiltIn { get; } = new([]);

    /// <summary>A type of the database: <see cref="Kind"/> is pg_type.typtype ('e' enum, 'd' domain, 'b' base, ...), or 'a'
    /// for an array.</summary>
    private sealed record UserType(uint Oid, string Name, char Kind, uint BaseOid, uint ElementOid, string TypeName, string[] Labels);

    /// <summary>Built-in types and the given enums (for decoding recorded frames without a database).</summary>
    internal static PgTypeCatalog WithEnums(params (uint Oid, string Name)[] enums)
        => new(enums.ToDictionary(e => e.Oid, e => new UserType(e.Oid, e.Name, 'e', 0, 0, e.Name, [])));

    /// <summary>How values of <paramref name="oid"/> decode, or null when DBSync cannot decode them.</summary>
    public PgColumnType? Resolve(uint oid)
    {
        if (PgTypeOids.Resolve(oid) is { } builtIn)
            return builtIn;
        if (!_types.TryGetValue(oid, out var type))
            return null;
        switch (type.Kind)
        {
            case 'a':
                return Resolve(type.ElementOid) is { IsArray: false } element ? new PgColumnType(element.Scalar, true, type.Name) : null;
            case 'd':
                return Resolve(type.BaseOid) is { } baseType ? baseType with { Name = type.Name } : null;
            case 'e':
                return new PgColumnType(PgTypeOids.AnyEnum, false, type.Name);
            case 'b' when type.TypeName == "citext":
                // citext's send and output functions are text's.
                return new PgColumnType(PgTypeOids.Text, false, type.Name);
            default:
                return null;
        }
    }

    /// <summary>The name of a type this catalog read, resolvable or not.</summary>
    public string? NameOf(uint oid) => _types.TryGetValue(oid, out var type) ? type.Name : null;

    /// <summary>Whether the catalog read <paramref name="oid"/> (built-in types always count).</summary>
    public bool IsLoaded(uint oid) => PgTypeOids.Resolve(oid) is not null || _types.ContainsKey(oid);

    /// <summary>The enum under <paramref name="oid"/> (through domains and arrays): its name and labels, or null.</summary>
    public (string Name, string[] Labels)? EnumOf(uint oid)
    {
        for (var depth = 0; depth < 8 && _types.TryGetValue(oid, out var type); depth++)
        {
            switch (type.Kind)
            {
                case 'e':
                    return (type.Name, type.Labels);
                case 'a':
                    oid = type.ElementOid;
                    break;
                case 'd':
                    oid = type.BaseOid;
                    break;
                default:
                    return null;
            }
        }
        return null;
    }

    /// <summary>Reads the non-built-in types of the columns of <paramref name="tables"/>, and the types they are built on.</summary>
    public static async Task<PgTypeCatalog> LoadAsync(NpgsqlConnection connection, IEnumerable<SyncTableInfo> tables, CancellationToken cancellationToken)
    {
        // Types from FirstNormalObjectId (16384) on are the database's own; domains lead to their base type, arrays to their
        // element type (an array is a varlena type with an element type; fixed-size types like name have one too).
        const string sql = """
            WITH RECURSIVE used(oid) AS (
                SELECT a.atttypid FROM pg_attribute a
                 WHERE a.attrelid IN (SELECT to_regclass(t) FROM unnest($1::text[]) t) AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid >= 16384
              UNION
                SELECT next.oid FROM used JOIN pg_type p ON p.oid = used.oid
                 CROSS JOIN LATERAL (VALUES (p.typbasetype), (CASE WHEN p.typlen = -1 THEN p.typelem ELSE 0 END)) AS next(oid)
                 WHERE next.oid >= 16384
            )
            SELECT p.oid, format_type(p.oid, NULL), CASE WHEN p.typelem <> 0 AND p.typlen = -1 THEN 'a' ELSE p.typtype::text END,
                   p.typbasetype, p.typelem, p.typname::text,
                   ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = p.oid ORDER BY e.enumsortorder)
              FROM pg_type p WHERE p.oid IN (SELECT oid FROM used)
            """;
        var types = new Dictionary<uint, UserType>();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.QualifiedName).ToArray() });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var oid = reader.GetFieldValue<uint>(0);
            types[oid] = new UserType(oid, reader.GetString(1), reader.GetString(2)[0], reader.GetFieldValue<uint>(3), reader.GetFieldValue<uint>(4),
                reader.GetString(5), reader.GetFieldValue<string[]>(6));
        }
        return new PgTypeCatalog(types);
    }
}
