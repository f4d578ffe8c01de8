using System.Buffers;
using System.Text.Json;
using MessagePack;

namespace DBSync.Nats;

/// <summary>The shapes a message body is made of, in MessagePack or in JSON: what <see cref="MessageValues"/> and
/// <see cref="ChangeMessages"/> write, once for both formats.</summary>
internal interface IBodyWriter
{
    void Nil();
    void Boolean(bool value);
    void Integer(long value);
    void Single(float value);
    void Double(double value);
    void String(string value);
    void Bytes(ReadOnlySpan<byte> value);
    void ArrayStart(int count);
    void ArrayEnd();
    void MapStart(int count);
    void MapEnd();
    void Key(string name);
}

/// <summary>MessagePack, each value in its smallest form (so that the same values always give the same bytes: the
/// partition hash relies on it).</summary>
internal ref struct MessagePackBody(IBufferWriter<byte> output) : IBodyWriter
{
    private MessagePackWriter _writer = new(output);

    public void Nil() => _writer.WriteNil();
    public void Boolean(bool value) => _writer.Write(value);
    public void Integer(long value) => _writer.Write(value);
    public void Single(float value) => _writer.Write(value);
    public void Double(double value) => _writer.Write(value);
    public void String(string value) => _writer.Write(value);
    public void Bytes(ReadOnlySpan<byte> value) => _writer.Write(value);
    public void ArrayStart(int count) => _writer.WriteArrayHeader(count);
    public readonly void ArrayEnd() { }
    public void MapStart(int count) => _writer.WriteMapHeader(count);
    public readonly void MapEnd() { }
    public void Key(string name) => _writer.Write(name);
    public void Flush() => _writer.Flush();
}

/// <summary>JSON (UTF-8): bytes as base64 strings, NaN and the infinities of floats as the strings PostgreSQL writes
/// (<c>"NaN"</c>, <c>"Infinity"</c>, <c>"-Infinity"</c>), since JSON has no number for them.</summary>
internal readonly struct JsonBody(Utf8JsonWriter writer) : IBodyWriter
{
    public void Nil() => writer.WriteNullValue();
    public void Boolean(bool value) => writer.WriteBooleanValue(value);
    public void Integer(long value) => writer.WriteNumberValue(value);

    public void Single(float value)
    {
        if (float.IsFinite(value))
            writer.WriteNumberValue(value);
        else
            writer.WriteStringValue(NonFinite(value));
    }

    public void Double(double value)
    {
        if (double.IsFinite(value))
            writer.WriteNumberValue(value);
        else
            writer.WriteStringValue(NonFinite(value));
    }

    public void String(string value) => writer.WriteStringValue(value);
    public void Bytes(ReadOnlySpan<byte> value) => writer.WriteBase64StringValue(value);
    public void ArrayStart(int count) => writer.WriteStartArray();
    public void ArrayEnd() => writer.WriteEndArray();
    public void MapStart(int count) => writer.WriteStartObject();
    public void MapEnd() => writer.WriteEndObject();
    public void Key(string name) => writer.WritePropertyName(name);

    private static string NonFinite(double value) => double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
}
