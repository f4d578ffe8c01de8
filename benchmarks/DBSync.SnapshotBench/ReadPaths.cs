using System.Buffers.Binary;
using System.Diagnostics;
using DBSync.Bench;
using Npgsql;
using static DBSync.Bench.Stats;

namespace DBSync.SnapshotBench;

/// <summary>
/// Issue 18's question for the chunk read: which path hands DBSync a chunk's raw column values faster. DBSync decodes the
/// values itself (the stream's decoders), so both paths stop at the raw binary value of each column, and the decoding,
/// the same for both, is left out:
/// <list type="bullet">
/// <item>binary results (DBSync's path): <c>SELECT cols FROM users WHERE id &gt; $1 ORDER BY id LIMIT $2</c> through
/// Npgsql's data reader with sequential access, each value's bytes copied out with <c>GetBytes</c>;</item>
/// <item>binary COPY of the chunk query: <c>COPY (SELECT ... WHERE id &gt; last ORDER BY id LIMIT n) TO STDOUT (FORMAT
/// BINARY)</c> (COPY takes no parameters: the key is written into the statement), read from Npgsql's raw binary copy
/// stream and parsed here (signature, header, then per row a field count and each field's length and bytes).</item>
/// </list>
/// Both read every chunk of the table, one after the other on one connection, and count rows and value bytes.
/// </summary>
internal static class ReadPaths
{
    private const string SelectSql = "SELECT " + UsersTable.Columns + " FROM users WHERE id > $1 ORDER BY id LIMIT $2";

    public static async Task CompareAsync(string connectionString, BenchSettings settings)
    {
        await UsersTable.CreateSchemaAsync(connectionString);
        await UsersTable.LoadAsync(connectionString, 1, settings.Rows);
        var selects = new List<double>();
        var copies = new List<double>();
        for (var round = 1; round <= settings.Rounds; round++)
        {
            // The order turns every round.
            foreach (var copyFirst in round % 2 == 0 ? new[] { true, false } : [false, true])
            {
                var (seconds, rows, bytes) = copyFirst ? Copy(connectionString, settings.ChunkSize) : Select(connectionString, settings.ChunkSize);
                if (rows != settings.Rows)
                    throw new InvalidOperationException($"{(copyFirst ? "COPY" : "SELECT")} read {rows} rows, not {settings.Rows}");
                (copyFirst ? copies : selects).Add(seconds);
                FullRun.Log($"round {round}: {(copyFirst ? "binary COPY of the chunk query" : "binary results")}: {seconds:0.000} s, {rows:N0} rows, {bytes:N0} value bytes");
            }
        }
        var select = Median(selects);
        var copy = Median(copies);
        FullRun.Log($"{settings.Rows:N0} users rows in chunks of {settings.ChunkSize:N0}, raw values only, medians of {settings.Rounds}: binary results {select:0.000} s, binary COPY of the chunk query {copy:0.000} s");
        Console.WriteLine($"ratio chunk read copy/select = {copy / select:0.00}");
    }

    private static (double Seconds, long Rows, long Bytes) Select(string connectionString, int chunkSize)
    {
        var watch = Stopwatch.StartNew();
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using var command = new NpgsqlCommand(SelectSql, connection);
        var last = new NpgsqlParameter<int> { TypedValue = int.MinValue };
        command.Parameters.Add(last);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = chunkSize });
        var buffer = new byte[4096];
        long rows = 0, bytes = 0;
        int read;
        do
        {
            read = 0;
            using var reader = command.ExecuteReader(System.Data.CommandBehavior.SequentialAccess);
            var columns = reader.FieldCount;
            while (reader.Read())
            {
                for (var i = 0; i < columns; i++)
                {
                    if (reader.IsDBNull(i))
                        continue;
                    var length = checked((int)reader.GetBytes(i, 0, null, 0, 0));
                    if (buffer.Length < length)
                        buffer = new byte[Math.Max(length, buffer.Length * 2)];
                    reader.GetBytes(i, 0, buffer, 0, length);
                    bytes += length;
                    if (i == 0)
                        last.TypedValue = BinaryPrimitives.ReadInt32BigEndian(buffer);
                }
                read++;
            }
            rows += read;
        }
        while (read == chunkSize);
        return (watch.Elapsed.TotalSeconds, rows, bytes);
    }

    private static (double Seconds, long Rows, long Bytes) Copy(string connectionString, int chunkSize)
    {
        var watch = Stopwatch.StartNew();
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        var chunk = new MemoryStream();
        var last = int.MinValue;
        long rows = 0, bytes = 0;
        int read;
        do
        {
            chunk.SetLength(0);
            using (var copy = connection.BeginRawBinaryCopy(
                       $"COPY (SELECT {UsersTable.Columns} FROM users WHERE id > {last} ORDER BY id LIMIT {chunkSize}) TO STDOUT (FORMAT BINARY)"))
                copy.CopyTo(chunk);
            var data = chunk.GetBuffer().AsSpan(0, (int)chunk.Length);
            // Signature (11 bytes), flags, header extension length and the extension.
            var position = 11 + 4 + 4 + BinaryPrimitives.ReadInt32BigEndian(data[15..]);
            read = 0;
            while (true)
            {
                var fields = BinaryPrimitives.ReadInt16BigEndian(data[position..]);
                position += 2;
                if (fields == -1)
                    break;
                for (var i = 0; i < fields; i++)
                {
                    var length = BinaryPrimitives.ReadInt32BigEndian(data[position..]);
                    position += 4;
                    if (length < 0)
                        continue;
                    if (i == 0)
                        last = BinaryPrimitives.ReadInt32BigEndian(data[position..]);
                    bytes += length;
                    position += length;
                }
                read++;
            }
            rows += read;
        }
        while (read == chunkSize);
        return (watch.Elapsed.TotalSeconds, rows, bytes);
    }
}
