namespace DBSync;

/// <summary>The PostgreSQL labels of a C# enum's members (written by the generator for each enum property), for
/// decoding and for the startup check that every label of the PostgreSQL enum has a member.</summary>
public abstract class PgEnumLabels
{
    private protected PgEnumLabels(string enumName, string[] labels)
    {
        EnumName = enumName;
        Labels = labels;
    }

    /// <summary>The C# enum's name.</summary>
    public string EnumName { get; }

    /// <summary>The labels, in member declaration order.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>The label of a member of the enum (boxed), or null when <paramref name="value"/> is none of its members.</summary>
    internal abstract string? LabelOf(object value);
}

/// <summary>The PostgreSQL labels of <typeparamref name="TEnum"/>'s members; decodes a label without allocating.</summary>
/// <typeparam name="TEnum">The C# enum.</typeparam>
public sealed class PgEnumLabels<TEnum> : PgEnumLabels where TEnum : struct, Enum
{
    private readonly byte[][] _utf8;
    private readonly TEnum[] _values;

    /// <summary>Creates the table (called by generated code).</summary>
    /// <param name="labels">The label of each member.</param>
    /// <param name="values">The members, in the order of <paramref name="labels"/>.</param>
    public PgEnumLabels(string[] labels, TEnum[] values) : base(typeof(TEnum).Name, labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(values);
        if (labels.Length != values.Length)
            throw new ArgumentException("One label per value.", nameof(values));
        _utf8 = [.. labels.Select(System.Text.Encoding.UTF8.GetBytes)];
        _values = values;
    }

    internal override string? LabelOf(object value)
    {
        if (value is not TEnum member)
            return null;
        var index = Array.IndexOf(_values, member);
        return index < 0 ? null : Labels[index];
    }

    internal bool TryGet(ReadOnlySpan<byte> label, out TEnum value)
    {
        for (var i = 0; i < _utf8.Length; i++)
        {
            if (label.SequenceEqual(_utf8[i]))
            {
                value = _values[i];
                return true;
            }
        }
        value = default;
        return false;
    }
}
