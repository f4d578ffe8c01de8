using System.Buffers.Binary;
using DBSync.Mapping;

namespace DBSync.Protocol;

/// <summary>
/// Reads the values of one pgoutput TupleData section for generated decoders. Yields only values that fill a mapped
/// property; unmapped columns are skipped, unchanged TOAST values are recorded in <see cref="UnchangedToast"/>, and for a
/// key-only old tuple every non-key column is skipped. Allocates nothing.
/// </summary>
public ref struct TupleReader : IRowValues
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly ColumnBinding _binding;
    private readonly bool _keyOnly;
    private readonly int _count;
    private int _position;
    private int _column;
    private ColumnSet _unchanged;

    internal TupleReader(ReadOnlySpan<byte> tuple, ColumnBinding binding, bool keyOnly)
    {
        // The parser has measured the section, so its lengths are known to be in bounds.
        _data = tuple;
        _binding = binding;
        _keyOnly = keyOnly;
        _count = BinaryPrimitives.ReadInt16BigEndian(tuple);
        _position = 2;
        if (_count != binding.ColumnCount)
        {
            throw new ProtocolException(
                $"A tuple of {binding.Table.DisplayName} has {_count} columns but its Relation message described {binding.ColumnCount}.");
        }
    }

    /// <summary>Columns of the entity whose value was an unchanged TOAST value ('u').</summary>
    public readonly ColumnSet UnchangedToast => _unchanged;

    /// <summary>Moves to the next value that fills a property.</summary>
    public bool TryReadNext(out TupleValue value)
    {
        while (_column < _count)
        {
            var column = _column++;
            var kind = _data[_position++];
            ReadOnlySpan<byte> bytes = default;
            if (kind is (byte)'t' or (byte)'b')
            {
                var length = BinaryPrimitives.ReadInt32BigEndian(_data[_position..]);
                bytes = _data.Slice(_position + 4, length);
                _position += 4 + length;
            }

            var target = _binding.TargetOf(column);
            if (target < 0 || (_keyOnly && !_binding.Table.Columns[target].IsKey))
                continue;
            if (kind == (byte)'u')
            {
                _unchanged = _unchanged.Add(target);
                continue;
            }

            value = new TupleValue(kind, bytes, _binding.Table, target, _binding.TypeOf(column));
            return true;
        }

        value = default;
        return false;
    }
}
