using DBSync.Mapping;

namespace DBSync.Protocol;

// STUB: the protocol work replaces these bodies. The public surface is the contract generated code compiles against.

/// <summary>
/// Reads the values of one pgoutput TupleData section for generated decoders. Yields only values that fill a mapped
/// property; unmapped columns are skipped, unchanged TOAST values are recorded in <see cref="UnchangedToast"/>, and for a
/// key-only old tuple every non-key column is skipped.
/// </summary>
public ref struct TupleReader
{
    internal TupleReader(ReadOnlySpan<byte> tuple, ColumnBinding binding, bool keyOnly)
    {
        throw new NotImplementedException();
    }

    /// <summary>Columns of the entity whose value was an unchanged TOAST value ('u').</summary>
    public readonly ColumnSet UnchangedToast => throw new NotImplementedException();

    /// <summary>Moves to the next value that fills a property.</summary>
    public bool TryReadNext(out TupleValue value) => throw new NotImplementedException();
}

/// <summary>One column value of a tuple, in text or binary format, or NULL.</summary>
public readonly ref struct TupleValue
{
    /// <summary>The entity column (index into <see cref="SyncTableInfo.Columns"/>) this value fills.</summary>
    public int Target => throw new NotImplementedException();

    /// <summary>Whether the value is SQL NULL.</summary>
    public bool IsNull => throw new NotImplementedException();

    /// <summary>Reads a boolean.</summary>
    public bool ReadBoolean() => throw new NotImplementedException();

    /// <summary>Reads a smallint.</summary>
    public short ReadInt16() => throw new NotImplementedException();

    /// <summary>Reads an integer (smallint or integer).</summary>
    public int ReadInt32() => throw new NotImplementedException();

    /// <summary>Reads a bigint (or a narrower integer).</summary>
    public long ReadInt64() => throw new NotImplementedException();

    /// <summary>Reads a numeric (or an integer).</summary>
    public decimal ReadDecimal() => throw new NotImplementedException();

    /// <summary>Reads text, varchar, char or name.</summary>
    public string ReadString() => throw new NotImplementedException();

    /// <summary>Reads a date.</summary>
    public DateOnly ReadDateOnly() => throw new NotImplementedException();

    /// <summary>Reads a timestamp (Kind Unspecified) or timestamptz (Kind Utc).</summary>
    public DateTime ReadDateTime() => throw new NotImplementedException();

    /// <summary>Reads a timestamptz with offset zero.</summary>
    public DateTimeOffset ReadDateTimeOffset() => throw new NotImplementedException();

    /// <summary>Reads a uuid.</summary>
    public Guid ReadGuid() => throw new NotImplementedException();

    /// <summary>Reads a one-dimensional text[] (NULL elements are null).</summary>
    public string[] ReadStringArray() => throw new NotImplementedException();
}
