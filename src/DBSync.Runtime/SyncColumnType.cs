namespace DBSync;

/// <summary>The CLR shape of a mapped property, as the generator classified it. Decides which PostgreSQL types the
/// column may have and how its values are decoded.</summary>
public enum SyncColumnType
{
    /// <summary><see cref="bool"/>, from <c>boolean</c>.</summary>
    Boolean,
    /// <summary><see cref="short"/>, from <c>smallint</c>.</summary>
    Int16,
    /// <summary><see cref="int"/>, from <c>integer</c> or <c>smallint</c>.</summary>
    Int32,
    /// <summary><see cref="long"/>, from <c>bigint</c>, <c>integer</c> or <c>smallint</c>.</summary>
    Int64,
    /// <summary><see cref="decimal"/>, from <c>numeric</c> or an integer type.</summary>
    Decimal,
    /// <summary><see cref="string"/>, from <c>text</c>, <c>varchar</c>, <c>char</c> or <c>name</c>.</summary>
    String,
    /// <summary><see cref="System.DateOnly"/>, from <c>date</c>.</summary>
    DateOnly,
    /// <summary><see cref="System.DateTime"/>, from <c>timestamp</c> (Kind Unspecified) or <c>timestamptz</c> (Kind Utc).</summary>
    DateTime,
    /// <summary><see cref="System.DateTimeOffset"/> (offset zero), from <c>timestamptz</c>.</summary>
    DateTimeOffset,
    /// <summary><see cref="System.Guid"/>, from <c>uuid</c>.</summary>
    Guid,
    /// <summary><c>string[]</c>, from <c>text[]</c>, <c>varchar[]</c> or <c>char[]</c> (one dimension; NULL elements are null).</summary>
    StringArray,
}
