using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace DBSync.Nats;

/// <summary>
/// The body of a change's message: a map with <c>row</c> (the new row: a map keyed by column name; null for deletes and
/// truncates), <c>old</c> (for updates and deletes that carry it: the old key's columns, or every column under
/// <c>REPLICA IDENTITY FULL</c>) and <c>unchanged_toast</c> (the names of the columns whose values PostgreSQL left out of
/// an update because they did not change; their values in <c>row</c> are null). Keys that do not apply are left out.
/// </summary>
internal static class ChangeMessages
{
    public static void WriteBody<T>(IBufferWriter<byte> output, in Change<T> change, BodyFormat format) where T : ISyncTable<T>
    {
        if (format == BodyFormat.Json)
        {
            using var json = new Utf8JsonWriter(output);
            var body = new JsonBody(json);
            WriteBody(ref body, change);
            json.Flush();
            return;
        }
        var pack = new MessagePackBody(output);
        WriteBody(ref pack, change);
        pack.Flush();
    }

    private static void WriteBody<T, TBody>(ref TBody body, in Change<T> change) where T : ISyncTable<T> where TBody : IBodyWriter, allows ref struct
    {
        var hasOld = change.Old is not null && change.OldRowKind != OldRowKind.None;
        var unchanged = change.UnchangedToast;
        var count = 1 + (hasOld ? 2 : 0) + (unchanged.IsEmpty ? 0 : 1);
        body.MapStart(count);
        body.Key("row");
        if (change.New is { } row)
            WriteRow(ref body, row, keysOnly: false);
        else
            body.Nil();
        if (hasOld)
        {
            body.Key("old");
            WriteRow(ref body, change.Old!, keysOnly: change.OldRowKind == OldRowKind.Key);
            body.Key("old_kind");
            body.String(change.OldRowKind == OldRowKind.Key ? "key" : "full");
        }
        if (!unchanged.IsEmpty)
        {
            var columns = T.TableInfo.Columns;
            var names = new List<string>();
            for (var i = 0; i < columns.Length; i++)
            {
                if (unchanged.Contains(i))
                    names.Add(columns[i].Name);
            }
            body.Key("unchanged_toast");
            body.ArrayStart(names.Count);
            foreach (var name in names)
                body.String(name);
            body.ArrayEnd();
        }
        body.MapEnd();
    }

    private static void WriteRow<T, TBody>(ref TBody body, T row, bool keysOnly) where T : ISyncTable<T> where TBody : IBodyWriter, allows ref struct
    {
        var columns = T.TableInfo.Columns;
        var count = 0;
        foreach (var column in columns)
            count += !keysOnly || column.IsKey ? 1 : 0;
        body.MapStart(count);
        var writer = new RowWriter<TBody>(body, columns, keysOnly);
        T.WriteRow(row, ref writer);
        body = writer.Body;
        body.MapEnd();
    }

    /// <summary>The key of <paramref name="row"/> as a MessagePack array of its key columns' values, in key order and
    /// in the body's own forms: the bytes the partition hash is computed over.</summary>
    public static void WriteKey<T>(IBufferWriter<byte> output, T row) where T : ISyncTable<T>
    {
        var columns = T.TableInfo.Columns;
        var keys = 0;
        foreach (var column in columns)
            keys += column.IsKey ? 1 : 0;
        var pack = new MessagePackBody(output);
        pack.ArrayStart(keys);
        var writer = new KeyWriter(pack, columns, keys);
        T.WriteRow(row, ref writer);
        pack = writer.Body;
        pack.Flush();
    }

    /// <summary>The partition of a key: FNV-1a (64-bit) of the key's MessagePack bytes (<see cref="WriteKey"/>), modulo
    /// the partition count. The same in every process, .NET version and language that encodes the key the same way.</summary>
    public static int Partition(ReadOnlySpan<byte> key, int partitions)
    {
        const ulong offsetBasis = 14695981039346656037;
        const ulong prime = 1099511628211;
        var hash = offsetBasis;
        foreach (var b in key)
        {
            hash ^= b;
            hash *= prime;
        }
        return (int)(hash % (ulong)partitions);
    }

    /// <summary>The <c>DBSync-Kind</c> of the message that ends a transaction.</summary>
    public const string CommitKind = "commit";

    /// <summary>The kind as the <c>DBSync-Kind</c> header says it.</summary>
    public static string KindName(ChangeKind kind) => kind switch
    {
        ChangeKind.Insert => "insert",
        ChangeKind.Update => "update",
        ChangeKind.Delete => "delete",
        ChangeKind.Truncate => "truncate",
        ChangeKind.Read => "read",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private ref struct RowWriter<TBody>(TBody body, System.Collections.Immutable.ImmutableArray<SyncColumnInfo> columns, bool keysOnly) : IRowWriter
        where TBody : IBodyWriter, allows ref struct
    {
        public TBody Body = body;

        public void Write<TValue>(int column, TValue value)
        {
            var info = columns[column];
            if (keysOnly && !info.IsKey)
                return;
            Body.Key(info.Name);
            MessageValues.Write(ref Body, value, info);
        }
    }

    /// <summary>The key columns in key order, whatever order the properties are declared in.</summary>
    private ref struct KeyWriter(MessagePackBody body, System.Collections.Immutable.ImmutableArray<SyncColumnInfo> columns, int keys) : IRowWriter
    {
        public MessagePackBody Body = body;
        private readonly object?[] _values = new object?[keys];
        private readonly SyncColumnInfo[] _infos = new SyncColumnInfo[keys];
        private int _written;

        public void Write<TValue>(int column, TValue value)
        {
            var info = columns[column];
            if (!info.IsKey)
                return;
            _values[info.KeyOrder] = value;
            _infos[info.KeyOrder] = info;
            if (++_written < _values.Length)
                return;
            for (var i = 0; i < _values.Length; i++)
                MessageValues.Write(ref Body, _values[i], _infos[i]);
        }
    }

    public static string Lsn(NpgsqlTypes.NpgsqlLogSequenceNumber lsn) => lsn.ToString();

    public static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>How message bodies are written.</summary>
public enum BodyFormat
{
    /// <summary>MessagePack (the default): compact, typed, readable from any language.</summary>
    MessagePack,

    /// <summary>JSON, UTF-8.</summary>
    Json,
}
