using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;
using Npgsql;

namespace DBSync.Applying;

/// <summary>
/// PostgreSQL's binary COPY format written by hand into a buffer that goes to the server between rows: the header, per
/// row the field count and each field's length and send-format bytes, the trailer. For tables whose every column is one
/// of the plain types <see cref="TargetColumn.RawCopy"/> names, it replaces Npgsql's importer, whose per-value type
/// resolution cost more than the target's own work on a snapshot chunk. Strings are encoded as Npgsql encodes them
/// (strict UTF-8: a lone surrogate is an error, not a replacement character).
/// </summary>
internal sealed class BinaryCopyBuffer : IDisposable
{
    /// <summary>Rows are sent once this many bytes wait.</summary>
    private const int SendAt = 64 * 1024;

    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // "PGCOPY\n\377\r\n\0", then flags (no OIDs) and the header extension's length, both 0.
    private static ReadOnlySpan<byte> Header => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(SendAt + 8 * 1024);
    private int _length;

    public BinaryCopyBuffer()
    {
        Header.CopyTo(_buffer);
        _length = Header.Length;
    }

    /// <summary>Whether enough waits to be sent (checked between rows).</summary>
    public bool Full => _length >= SendAt;

    /// <summary>Sends what waits into <paramref name="copy"/>.</summary>
    public async ValueTask SendAsync(NpgsqlRawCopyStream copy, CancellationToken cancellationToken)
    {
        await copy.WriteAsync(_buffer.AsMemory(0, _length), cancellationToken).ConfigureAwait(false);
        _length = 0;
    }

    /// <summary>Starts a row of <paramref name="fields"/> fields.</summary>
    public void StartRow(int fields) => BinaryPrimitives.WriteInt16BigEndian(Reserve(2), checked((short)fields));

    /// <summary>The end of the data (sent with the last rows).</summary>
    public void Trailer() => BinaryPrimitives.WriteInt16BigEndian(Reserve(2), -1);

    public void Null() => BinaryPrimitives.WriteInt32BigEndian(Reserve(4), -1);

    public void Boolean(bool value) => Field(1)[0] = value ? (byte)1 : (byte)0;

    public void Int16(short value) => BinaryPrimitives.WriteInt16BigEndian(Field(2), value);

    public void Int32(int value) => BinaryPrimitives.WriteInt32BigEndian(Field(4), value);

    public void Int64(long value) => BinaryPrimitives.WriteInt64BigEndian(Field(8), value);

    public void Single(float value) => BinaryPrimitives.WriteSingleBigEndian(Field(4), value);

    public void Double(double value) => BinaryPrimitives.WriteDoubleBigEndian(Field(8), value);

    public void Guid(Guid value) => value.TryWriteBytes(Field(16), bigEndian: true, out _);

    public void Bytes(ReadOnlySpan<byte> value) => value.CopyTo(Field(value.Length));

    /// <summary>A string as UTF-8; the length is written once it is known.</summary>
    public void Text(string value)
    {
        var lengthAt = _length;
        var room = Reserve(4 + s_utf8.GetMaxByteCount(value.Length));
        var written = s_utf8.GetBytes(value, room[4..]);
        BinaryPrimitives.WriteInt32BigEndian(room, written);
        _length = lengthAt + 4 + written;
    }

    /// <summary>A field's length and the room for its bytes.</summary>
    private Span<byte> Field(int length)
    {
        var room = Reserve(4 + length);
        BinaryPrimitives.WriteInt32BigEndian(room, length);
        return room.Slice(4, length);
    }

    /// <summary><paramref name="count"/> bytes at the end, the buffer grown when a row does not fit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Span<byte> Reserve(int count)
    {
        if (_buffer.Length - _length < count)
            Grow(count);
        var room = _buffer.AsSpan(_length, count);
        _length += count;
        return room;
    }

    private void Grow(int count)
    {
        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + count));
        _buffer.AsSpan(0, _length).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}

/// <summary>Writes a row's columns into a <see cref="BinaryCopyBuffer"/> (a table whose columns are all
/// <see cref="TargetColumn.RawCopy"/>); with <paramref name="keysOnly"/> (a staged delete) the other columns are null.</summary>
internal readonly struct RawCopyWriter(BinaryCopyBuffer buffer, TargetTable table, bool keysOnly) : IRowWriter
{
    public void Write<T>(int column, T value)
    {
        if (value is null || (keysOnly && !table.Columns[column].Source.IsKey))
        {
            buffer.Null();
            return;
        }
        // typeof(T) is a constant in the code compiled for each value type, so each instance keeps one branch.
        if (typeof(T) == typeof(int))
            buffer.Int32(Unsafe.As<T, int>(ref value));
        else if (typeof(T) == typeof(int?))
            buffer.Int32(Unsafe.As<T, int?>(ref value).GetValueOrDefault());
        else if (typeof(T) == typeof(long))
            buffer.Int64(Unsafe.As<T, long>(ref value));
        else if (typeof(T) == typeof(long?))
            buffer.Int64(Unsafe.As<T, long?>(ref value).GetValueOrDefault());
        else if (typeof(T) == typeof(short))
            buffer.Int16(Unsafe.As<T, short>(ref value));
        else if (typeof(T) == typeof(short?))
            buffer.Int16(Unsafe.As<T, short?>(ref value).GetValueOrDefault());
        else if (typeof(T) == typeof(bool))
            buffer.Boolean(Unsafe.As<T, bool>(ref value));
        else if (typeof(T) == typeof(bool?))
            buffer.Boolean(Unsafe.As<T, bool?>(ref value).GetValueOrDefault());
        else if (typeof(T) == typeof(float))
            buffer.Single(Unsafe.As<T, float>(ref value));
        else if (typeof(T) == typeof(float?))
            buffer.Single(Unsafe.As<T, float?>(ref value).GetValueOrDefault());
        else if (typeof(T) == typeof(double))
            buffer.Double(Unsafe.As<T, double>(ref value));
        else if (typeof(T) == typeof(double?))
            buffer.Double(Unsafe.As<T, double?>(ref value).GetValueOrDefault());
        else if (typeof(T) == typeof(Guid))
            buffer.Guid(Unsafe.As<T, Guid>(ref value));
        else if (typeof(T) == typeof(Guid?))
            buffer.Guid(Unsafe.As<T, Guid?>(ref value).GetValueOrDefault());
        else if (typeof(T) == typeof(ReadOnlyMemory<byte>))
            buffer.Bytes(Unsafe.As<T, ReadOnlyMemory<byte>>(ref value).Span);
        else if (typeof(T) == typeof(ReadOnlyMemory<byte>?))
            buffer.Bytes(Unsafe.As<T, ReadOnlyMemory<byte>?>(ref value).GetValueOrDefault().Span);
        else if (value is string text)
            buffer.Text(text);
        else if (value is byte[] bytes)
            buffer.Bytes(bytes);
        else
            throw new InvalidOperationException($"Column {table.Columns[column].Source.Name} of {table.DisplayName}: a {typeof(T)} has no binary COPY encoding here.");
    }
}
