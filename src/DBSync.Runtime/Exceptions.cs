namespace DBSync;

/// <summary>The base type of the errors DBSync raises. Messages name the object involved and how to fix the problem.</summary>
public class DBSyncException : Exception
{
    /// <summary>Creates an exception.</summary>
    public DBSyncException(string message) : base(message)
    {
    }

    /// <summary>Creates an exception with an inner cause.</summary>
    public DBSyncException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}

/// <summary>The database is not set up the way change capture needs (wal_level, privileges, missing tables, replica identity).</summary>
public sealed class DBSyncConfigurationException(string message, Exception? innerException = null) : DBSyncException(message, innerException);

/// <summary>A mapped column is missing from a table or has a type its property cannot hold. The stream stops.</summary>
public sealed class SchemaMismatchException : DBSyncException
{
    /// <summary>Creates the exception.</summary>
    public SchemaMismatchException(SyncTableInfo table, string column, string? pgType, string clrType, string message) : base(message)
    {
        ArgumentNullException.ThrowIfNull(table);
        Table = table.DisplayName;
        Column = column;
        PgType = pgType;
        ClrType = clrType;
    }

    /// <summary>The table, as <c>schema.name</c>.</summary>
    public string Table { get; }

    /// <summary>The column name.</summary>
    public string Column { get; }

    /// <summary>The PostgreSQL type of the column, or null when the column is missing.</summary>
    public string? PgType { get; }

    /// <summary>The C# type of the property.</summary>
    public string ClrType { get; }
}

/// <summary>A value could not be decoded into its property: NULL for a non-nullable property, or a value outside the
/// property type's range. The stream stops; nothing is acknowledged past the failing transaction.</summary>
public sealed class DecodeException(string message, Exception? innerException = null) : DBSyncException(message, innerException);

/// <summary>A replication frame did not follow the pgoutput protocol.</summary>
public sealed class ProtocolException(string message) : DBSyncException(message);
