using System.Numerics;

namespace DBSync;

/// <summary>
/// A small immutable set of column positions (indexes into <see cref="SyncTableInfo.Columns"/>). Used to report which
/// columns of a change were not sent because they hold an unchanged TOASTed value. Allocation-free up to 64 columns.
/// </summary>
public readonly struct ColumnSet : IEquatable<ColumnSet>
{
    private readonly ulong _low;
    private readonly ulong[]? _high;

    private ColumnSet(ulong low, ulong[]? high)
    {
        _low = low;
        _high = high;
    }

    /// <summary>The empty set.</summary>
    public static ColumnSet Empty => default;

    /// <summary>Whether the set has no columns.</summary>
    public bool IsEmpty => _low == 0 && _high is null;

    /// <summary>The number of columns in the set.</summary>
    public int Count
    {
        get
        {
            var count = BitOperations.PopCount(_low);
            if (_high is not null)
            {
                foreach (var word in _high)
                    count += BitOperations.PopCount(word);
            }
            return count;
        }
    }

    /// <summary>Whether the column at <paramref name="index"/> is in the set.</summary>
    public bool Contains(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        if (index < 64)
            return (_low & (1UL << index)) != 0;
        var word = (index >> 6) - 1;
        return _high is not null && word < _high.Length && (_high[word] & (1UL << (index & 63))) != 0;
    }

    /// <summary>Returns a set that also contains <paramref name="index"/>.</summary>
    public ColumnSet Add(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        if (index < 64)
            return new ColumnSet(_low | (1UL << index), _high);
        var word = (index >> 6) - 1;
        var high = new ulong[Math.Max(word + 1, _high?.Length ?? 0)];
        _high?.CopyTo(high, 0);
        high[word] |= 1UL << (index & 63);
        return new ColumnSet(_low, high);
    }

    /// <summary>The column positions in ascending order.</summary>
    public IEnumerable<int> Indexes
    {
        get
        {
            for (var i = 0; i < 64; i++)
            {
                if ((_low & (1UL << i)) != 0)
                    yield return i;
            }
            if (_high is null)
                yield break;
            for (var w = 0; w < _high.Length; w++)
            {
                for (var i = 0; i < 64; i++)
                {
                    if ((_high[w] & (1UL << i)) != 0)
                        yield return 64 * (w + 1) + i;
                }
            }
        }
    }

    /// <inheritdoc />
    public bool Equals(ColumnSet other)
    {
        if (_low != other._low)
            return false;
        var a = _high ?? [];
        var b = other._high ?? [];
        var n = Math.Max(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if ((i < a.Length ? a[i] : 0) != (i < b.Length ? b[i] : 0))
                return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ColumnSet other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => _low.GetHashCode();

    /// <summary>Equality.</summary>
    public static bool operator ==(ColumnSet left, ColumnSet right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(ColumnSet left, ColumnSet right) => !left.Equals(right);

    /// <inheritdoc />
    public override string ToString() => "{" + string.Join(", ", Indexes) + "}";
}
