using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace DBSync.Protocol;

/// <summary>
/// Arrays in both formats, of any element type and any number of dimensions. The dimensions are read first, the result
/// array is allocated once, and each element is handed to the property's element reader as a <see cref="TupleValue"/>
/// of the element type, so scalars and elements share one decoder. Lower bounds are not kept (C# arrays start at 0).
/// </summary>
internal static class PgArrays
{
    private const int MaxDimensions = 6; // PostgreSQL's MAXDIM

    public static TArray Read<TArray, T, TReader>(in TupleValue owner, int rank) where TArray : class where TReader : IElementReader<T>
        => owner.IsBinary ? ReadBinary<TArray, T, TReader>(owner, rank) : ReadText<TArray, T, TReader>(owner, rank);

    /// <summary>array_send: Int32 ndim, Int32 has-null flag, element oid, (size, lower bound) per dimension, then each
    /// element as Int32 length (-1 for NULL) and bytes.</summary>
    private static TArray ReadBinary<TArray, T, TReader>(in TupleValue owner, int rank) where TArray : class where TReader : IElementReader<T>
    {
        var data = owner.Data;
        if (data.Length < 12)
            owner.Fail($"is a truncated array ({data.Length} bytes)");
        var dimensions = BinaryPrimitives.ReadInt32BigEndian(data);
        if (dimensions is < 0 or > MaxDimensions || data.Length < 12 + 8 * dimensions)
            owner.Fail($"is a malformed array ({dimensions} dimensions in {data.Length} bytes)");
        Span<int> lengths = stackalloc int[Math.Max(dimensions, 1)];
        for (var d = 0; d < dimensions; d++)
        {
            lengths[d] = BinaryPrimitives.ReadInt32BigEndian(data[(12 + 8 * d)..]);
            if (lengths[d] < 0)
                owner.Fail($"is a malformed array (dimension {d + 1} has {lengths[d]} elements)");
        }

        // Each element takes at least its 4-byte length: the dimensions cannot claim more than the value holds.
        var position = 12 + 8 * dimensions;
        var result = Allocate<TArray, T>(owner, rank, lengths[..dimensions], (data.Length - position) / 4, out var elements);
        for (var i = 0; i < elements.Length; i++)
        {
            if (data.Length - position < 4)
                owner.Fail($"is a truncated array (element {i + 1})");
            var length = BinaryPrimitives.ReadInt32BigEndian(data[position..]);
            position += 4;
            if (length == -1)
            {
                elements[i] = TReader.Read(owner.Element(isNull: true, default, i));
                continue;
            }
            if (length < 0 || data.Length - position < length)
                owner.Fail($"is a truncated array (element {i + 1} of {length} bytes)");
            elements[i] = TReader.Read(owner.Element(isNull: false, data.Slice(position, length), i));
            position += length;
        }
        if (position != data.Length)
            owner.Fail($"has {data.Length - position} bytes after its last element");
        return result;
    }

    /// <summary>Array literals: <c>{{1,2},{3,NULL}}</c>, <c>{"a b","q\"x"}</c>, optionally preceded by a
    /// <c>[lo:hi]=</c> decoration. Two passes over the text (shape, then elements), so the only allocations are the
    /// result and what the elements themselves allocate.</summary>
    private static TArray ReadText<TArray, T, TReader>(in TupleValue owner, int rank) where TArray : class where TReader : IElementReader<T>
    {
        var data = owner.Data;
        var start = 0;
        if (data.Length > 0 && data[0] == (byte)'[')
        {
            var equals = data.IndexOf((byte)'=');
            if (equals < 0)
                owner.Fail($"'{PgTextValues.Printable(data)}' has a dimension decoration without '='");
            start = equals + 1;
        }
        if (start >= data.Length || data[start] != (byte)'{')
            owner.Fail($"'{PgTextValues.Printable(data)}' does not start with '{{'");

        Span<int> lengths = stackalloc int[MaxDimensions];
        var dimensions = Shape(data, start, lengths, owner, out var escaped);
        var result = Allocate<TArray, T>(owner, rank, lengths[..dimensions], data.Length, out var elements);
        if (elements.IsEmpty)
            return result;

        var rented = escaped ? ArrayPool<byte>.Shared.Rent(data.Length) : null;
        try
        {
            var scanner = new Scanner(data, start);
            for (var i = 0; i < elements.Length; i++)
            {
                scanner.NextElement(owner, out var element, out var quoted, out var hasEscapes);
                if (!quoted && element.Length == 4 && Ascii.EqualsIgnoreCase(element, "NULL"u8))
                    elements[i] = TReader.Read(owner.Element(isNull: true, default, i));
                else
                    elements[i] = TReader.Read(owner.Element(isNull: false, hasEscapes ? Unescape(element, rented!) : element, i));
            }
        }
        finally
        {
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented);
        }
        return result;
    }

    /// <summary>Counts the dimensions and their lengths, checking the literal is well formed and rectangular.</summary>
    private static int Shape(ReadOnlySpan<byte> data, int start, Span<int> lengths, in TupleValue owner, out bool escaped)
    {
        escaped = false;
        var dimensions = 0;
        while (start + dimensions < data.Length && data[start + dimensions] == (byte)'{')
            dimensions++;
        if (dimensions > MaxDimensions)
            owner.Fail($"'{PgTextValues.Printable(data)}' has more than {MaxDimensions} dimensions");
        if (dimensions == 1 && start + 1 < data.Length && data[start + 1] == (byte)'}')
        {
            if (start + 2 != data.Length)
                owner.Fail($"'{PgTextValues.Printable(data)}' has text after its closing '}}'");
            return 0; // {}: no dimensions at all
        }

        Span<int> counts = stackalloc int[MaxDimensions];
        lengths[..dimensions].Fill(-1);
        var scanner = new Scanner(data, start);
        scanner.Open();
        counts[0] = 0;
        while (scanner.Depth > 0)
        {
            // A value is expected: a sub-array down to the innermost level, elements there.
            if (scanner.Peek(owner) == (byte)'{')
            {
                if (scanner.Depth >= dimensions)
                    owner.Fail($"'{PgTextValues.Printable(data)}' is not rectangular (nested deeper than {dimensions} dimensions)");
                scanner.Open();
                counts[scanner.Depth - 1] = 0;
                continue;
            }
            if (scanner.Depth < dimensions)
                owner.Fail($"'{PgTextValues.Printable(data)}' is not rectangular (an element where a sub-array belongs)");
            scanner.SkipElement(owner, out var hasEscapes);
            escaped |= hasEscapes;

            // After an item: ',' continues its level, '}' closes the level (the closed sub-array is an item of the one above).
            while (scanner.Depth > 0)
            {
                counts[scanner.Depth - 1]++;
                var next = scanner.Peek(owner);
                if (next == (byte)',')
                {
                    scanner.Advance();
                    break;
                }
                if (next != (byte)'}')
                    owner.Fail($"'{PgTextValues.Printable(data)}' has '{(char)next}' where ',' or '}}' belongs");
                var level = scanner.Depth - 1;
                if (lengths[level] == -1)
                    lengths[level] = counts[level];
                else if (lengths[level] != counts[level])
                    owner.Fail($"'{PgTextValues.Printable(data)}' is not rectangular (sub-arrays of {lengths[level]} and {counts[level]} elements)");
                scanner.Close();
            }
        }
        if (scanner.Position != data.Length)
            owner.Fail($"'{PgTextValues.Printable(data)}' has text after its closing '}}'");
        return dimensions;
    }

    /// <summary>Allocates the result for <paramref name="lengths"/> and returns its elements in row-major order (PostgreSQL's
    /// order too). An array without dimensions becomes an empty array of the property's rank. Dimensions that claim more
    /// than <paramref name="maxElements"/> (what the value's bytes can hold) are malformed, and nothing is allocated.</summary>
    private static TArray Allocate<TArray, T>(in TupleValue owner, int rank, ReadOnlySpan<int> lengths, int maxElements, out Span<T> elements) where TArray : class
    {
        if (lengths.Length != 0 && lengths.Length != rank)
        {
            var shape = "[" + new string(',', lengths.Length - 1) + "]";
            owner.Fail($"is a {lengths.Length}-dimensional array, which a {rank}-dimensional property cannot hold. Declare the property with {shape} " +
                       "(or keep the column's arrays at the property's dimensions)");
        }

        long total = lengths.Length == 0 || lengths.Contains(0) ? 0 : 1;
        foreach (var length in lengths)
        {
            // Checked at each step, the product stays far from overflowing.
            total *= length;
            if (total > maxElements)
                owner.Fail($"is a malformed array (its dimensions {string.Join(" x ", lengths.ToArray())} claim more elements than its {owner.Data.Length} bytes hold)");
        }

        if (rank == 1)
        {
            var array = total == 0 ? [] : new T[total];
            elements = array;
            return Unsafe.As<TArray>(array);
        }

        var sizes = new int[rank];
        lengths.CopyTo(sizes);
        var multi = Array.CreateInstanceFromArrayType(typeof(TArray), sizes);
        elements = MemoryMarshal.CreateSpan(ref Unsafe.As<byte, T>(ref MemoryMarshal.GetArrayDataReference(multi)), (int)total);
        return Unsafe.As<TArray>(multi);
    }

    /// <summary>A quoted element with its backslash escapes removed, in <paramref name="buffer"/>.</summary>
    private static ReadOnlySpan<byte> Unescape(ReadOnlySpan<byte> element, byte[] buffer)
    {
        var length = 0;
        for (var i = 0; i < element.Length; i++)
        {
            if (element[i] == (byte)'\\')
                i++;
            buffer[length++] = element[i];
        }
        return buffer.AsSpan(0, length);
    }

    /// <summary>A cursor over an array literal: braces, delimiters and elements (quoted or not).</summary>
    private ref struct Scanner(ReadOnlySpan<byte> data, int start)
    {
        private readonly ReadOnlySpan<byte> _data = data;

        public int Position { get; private set; } = start;

        public int Depth { get; private set; }

        public readonly byte Peek(in TupleValue owner)
        {
            if (Position >= _data.Length)
                owner.Fail($"'{PgTextValues.Printable(_data)}' ends early");
            return _data[Position];
        }

        public void Advance() => Position++;

        public void Open()
        {
            Position++;
            Depth++;
        }

        public void Close()
        {
            Position++;
            Depth--;
        }

        public void SkipElement(in TupleValue owner, out bool escaped) => Read(owner, out _, out _, out escaped);

        /// <summary>Moves past braces and delimiters to the next element and reads it.</summary>
        public void NextElement(in TupleValue owner, out ReadOnlySpan<byte> element, out bool quoted, out bool escaped)
        {
            while (Position < _data.Length && _data[Position] is (byte)'{' or (byte)'}' or (byte)',')
                Position++;
            Read(owner, out element, out quoted, out escaped);
        }

        private void Read(in TupleValue owner, out ReadOnlySpan<byte> element, out bool quoted, out bool escaped)
        {
            escaped = false;
            quoted = Peek(owner) == (byte)'"';
            if (!quoted)
            {
                var end = Position;
                while (end < _data.Length && _data[end] is not ((byte)',' or (byte)'}'))
                {
                    if (_data[end] is (byte)'{' or (byte)'"')
                        owner.Fail($"'{PgTextValues.Printable(_data)}' has '{(char)_data[end]}' inside an unquoted element");
                    end++;
                }
                element = _data[Position..end];
                Position = end;
                return;
            }

            var begin = ++Position;
            while (true)
            {
                var b = Peek(owner);
                if (b == (byte)'"')
                    break;
                if (b == (byte)'\\')
                {
                    escaped = true;
                    Position++;
                    Peek(owner);
                }
                Position++;
            }
            element = _data[begin..Position];
            Position++; // the closing quote
        }
    }
}
