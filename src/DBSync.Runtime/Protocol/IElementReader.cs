namespace DBSync.Protocol;

/// <summary>Reads one array element; the generator writes one per array property, with the property's element type.</summary>
/// <typeparam name="T">The element type.</typeparam>
public interface IElementReader<T>
{
    /// <summary>Reads <paramref name="element"/>, which may be NULL.</summary>
    static abstract T Read(in TupleValue element);
}
