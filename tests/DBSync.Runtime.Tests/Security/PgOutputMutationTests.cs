using System.Diagnostics;
using DBSync.Mapping;
using DBSync.Protocol;
using DBSync.Sample;

namespace DBSync.Runtime.Tests.Security;

/// <summary>
/// The pgoutput parser and the tuple and value readers against corrupted input: every frame recorded from PostgreSQL 15,
/// in both formats, mutated at random (bits, bytes, Int16 and Int32 fields, lengths, tuple column kinds, truncation,
/// insertion), then decoded as the stream decodes it, into the generated entities. Seeded, so a failure names the case
/// that reproduces it. The only acceptable outcomes are a value, a <see cref="ProtocolException"/> or a
/// <see cref="DecodeException"/> (and, for a mutated Relation message, the <see cref="SchemaMismatchException"/> its new
/// shape deserves); never another exception, a hang, or an allocation out of proportion to the frame.
/// </summary>
[Trait("Category", "Security")]
[Collection(SecurityCollection.Name)]
public sealed class PgOutputMutationTests
{
    private const int Cases = 25_000;

    /// <summary>Far above what a value of these small frames may allocate (its strings, arrays and error message), far
    /// below what trusting a corrupt length allocates.</summary>
    private const long AllocationLimit = 8 << 20;

    private static readonly int[] s_interestingInt32 =
        [0, 1, 2, 3, 4, 5, 8, 16, -1, -2, -4, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x3FFFFFFF, 0x40000000, 0x7FFFFFFB, int.MaxValue, int.MinValue, int.MinValue + 1];

    private static readonly short[] s_interestingInt16 = [0, 1, 2, -1, -2, 0x7F, 0xFF, 0x100, 0x7FFF, short.MinValue, 6, 7];

    private static readonly byte[] s_interestingBytes = [0, 1, 0x7F, 0x80, 0xFF, (byte)'n', (byte)'u', (byte)'t', (byte)'b', (byte)'K', (byte)'O', (byte)'N', (byte)'{', (byte)'"', (byte)'\\', (byte)','];

    [Theory]
    [InlineData("binary.hex", 16)]
    [InlineData("text.hex", 17)]
    public async Task CorruptedRecordedFrames_EndInAProtocolOrDecodeError_OnlyAndBounded(string file, int seed)
    {
        var frames = Frames.Recorded(file);
        var stream = RecordedStream.From(frames);
        var outcome = await Task.Run(() => Run(stream, frames, seed)).WaitAsync(TimeSpan.FromMinutes(3));

        Assert.True(outcome.Failures.Count == 0,
            $"{outcome.Failures.Count} of {Cases} corrupted frames ended otherwise ({string.Join(", ", outcome.Kinds)}; the first ones below, rerun a case with its seed and number):\n" +
            string.Join("\n", outcome.Failures.Take(8)));
        // The mutations reach every layer: some frames still decode, the parser refuses some, the value readers others.
        Assert.True(outcome.Decoded > Cases / 50 && outcome.ProtocolErrors > Cases / 50 && outcome.DecodeErrors > Cases / 500,
            $"decoded {outcome.Decoded}, protocol errors {outcome.ProtocolErrors}, decode errors {outcome.DecodeErrors}, schema errors {outcome.SchemaErrors}");
    }

    private static Outcome Run(RecordedStream stream, IReadOnlyList<byte[]> frames, int seed)
    {
        var outcome = new Outcome();
        for (var i = 0; i < Cases; i++)
        {
            var random = new Random(HashCode.Combine(seed, i));
            var index = random.Next(frames.Count);
            var frame = Mutator.Mutate(frames[index], random);
            var inStream = random.Next(10) == 0;
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            try
            {
                stream.Decode(frame, inStream);
                outcome.Decoded++;
            }
            catch (ProtocolException)
            {
                outcome.ProtocolErrors++;
            }
            catch (DecodeException)
            {
                outcome.DecodeErrors++;
            }
            catch (SchemaMismatchException) when (frame.Length > 0 && frame[0] == (byte)'R')
            {
                outcome.SchemaErrors++;
            }
            catch (Exception e)
            {
                var origin = new StackTrace(e, fNeedFileInfo: false).GetFrame(0)?.GetMethod() is { } method ? $"{method.DeclaringType?.Name}.{method.Name}" : "?";
                outcome.Failures.Add($"seed {seed} case {i} (recorded frame {index}, inStream {inStream}): {e.GetType().Name} in {origin}: {e.Message}\n  {Convert.ToHexString(frame)}");
                outcome.Kinds.Add($"{e.GetType().Name} in {origin}");
                continue;
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
            if (allocated > AllocationLimit)
                outcome.Failures.Add($"seed {seed} case {i} (recorded frame {index}, inStream {inStream}): allocated {allocated} bytes for a frame of {frame.Length}\n  {Convert.ToHexString(frame)}");
            if (clock.Elapsed > TimeSpan.FromSeconds(2))
                outcome.Failures.Add($"seed {seed} case {i} (recorded frame {index}, inStream {inStream}): took {clock.Elapsed.TotalSeconds:0.0} s\n  {Convert.ToHexString(frame)}");
        }
        return outcome;
    }

    private sealed class Outcome
    {
        public int Decoded;
        public int ProtocolErrors;
        public int DecodeErrors;
        public int SchemaErrors;
        public readonly List<string> Failures = [];
        public readonly SortedSet<string> Kinds = new(StringComparer.Ordinal);
    }

    private delegate void TupleDecoder(ReadOnlySpan<byte> tuple, bool keyOnly);

    /// <summary>The recording's relations bound to the generated entities, and the session's way through one frame.</summary>
    private sealed class RecordedStream
    {
        private readonly Dictionary<uint, (RelationMessage Relation, TupleDecoder Decode)> _relations = [];
        private readonly PgTypeCatalog _types;

        private RecordedStream(PgTypeCatalog types) => _types = types;

        public static RecordedStream From(IReadOnlyList<byte[]> frames)
        {
            var enums = frames.Where(f => PgOutputParser.KindOf(f) == PgOutputMessageKind.Type).Select(f => PgOutputParser.ReadType(f, inStream: false))
                .Select(t => (t.TypeOid, t.Name)).ToArray();
            var stream = new RecordedStream(PgTypeCatalog.WithEnums(enums));
            foreach (var frame in frames.Where(f => PgOutputParser.KindOf(f) == PgOutputMessageKind.Relation))
            {
                var relation = PgOutputParser.ReadRelation(frame, inStream: false);
                stream._relations[relation.RelationId] = (relation, stream.Bind(relation));
            }
            return stream;
        }

        public void Decode(byte[] frame, bool inStream)
        {
            switch (PgOutputParser.KindOf(frame))
            {
                case PgOutputMessageKind.Begin:
                    PgOutputParser.ReadBegin(frame);
                    break;
                case PgOutputMessageKind.Commit:
                    PgOutputParser.ReadCommit(frame);
                    break;
                case PgOutputMessageKind.Origin:
                    PgOutputParser.ReadOrigin(frame);
                    break;
                case PgOutputMessageKind.Type:
                    PgOutputParser.ReadType(frame, inStream);
                    break;
                case PgOutputMessageKind.Relation:
                    Bind(PgOutputParser.ReadRelation(frame, inStream));
                    break;
                case PgOutputMessageKind.Insert:
                {
                    var insert = PgOutputParser.ReadInsert(frame, inStream);
                    DecoderOf(insert.RelationId)?.Invoke(insert.NewTuple, false);
                    break;
                }
                case PgOutputMessageKind.Update:
                {
                    var update = PgOutputParser.ReadUpdate(frame, inStream);
                    var decode = DecoderOf(update.RelationId);
                    if (update.OldKind != OldTupleKind.None)
                        decode?.Invoke(update.OldTuple, update.OldKind == OldTupleKind.Key);
                    decode?.Invoke(update.NewTuple, false);
                    break;
                }
                case PgOutputMessageKind.Delete:
                {
                    var delete = PgOutputParser.ReadDelete(frame, inStream);
                    DecoderOf(delete.RelationId)?.Invoke(delete.OldTuple, delete.OldKind == OldTupleKind.Key);
                    break;
                }
                case PgOutputMessageKind.Truncate:
                    PgOutputParser.ReadTruncate(frame, inStream);
                    break;
                case PgOutputMessageKind.Message:
                    PgOutputParser.ReadMessage(frame, inStream);
                    break;
                case PgOutputMessageKind.StreamStart:
                    PgOutputParser.ReadStreamStart(frame);
                    break;
                case PgOutputMessageKind.StreamStop:
                    PgOutputParser.ReadStreamStop(frame);
                    break;
                case PgOutputMessageKind.StreamCommit:
                    PgOutputParser.ReadStreamCommit(frame);
                    break;
                case PgOutputMessageKind.StreamAbort:
                    PgOutputParser.ReadStreamAbort(frame);
                    break;
                default:
                    // The session ignores kinds it does not know (prepared transactions are not asked for).
                    break;
            }
        }

        // A relation id the recording does not know is one the session has no binding for either.
        private TupleDecoder? DecoderOf(uint relationId) => _relations.TryGetValue(relationId, out var relation) ? relation.Decode : null;

        private TupleDecoder Bind(RelationMessage relation) => relation.Name switch
        {
            "users" => Decoder<User>(relation),
            "restaurant" => Decoder<Restaurant>(relation),
            "visit" => Decoder<Visit>(relation),
            "all_types" => Decoder<AllTypesRow>(relation),
            _ => static (_, _) => { },
        };

        private TupleDecoder Decoder<T>(RelationMessage relation) where T : ISyncTable<T>
        {
            var binding = ColumnBinding.Create(T.TableInfo, relation, types: _types);
            return (tuple, keyOnly) =>
            {
                var reader = new TupleReader(tuple, binding, keyOnly);
                _ = T.DecodeTuple(ref reader);
            };
        }
    }

    /// <summary>Corrupts a copy of a frame: one to three mutations, each chosen at random.</summary>
    private static class Mutator
    {
        public static byte[] Mutate(byte[] original, Random random)
        {
            var frame = new List<byte>(original);
            var fields = Fields(original);
            var count = 1 + (random.Next(4) == 0 ? random.Next(1, 3) : 0);
            for (var m = 0; m < count; m++)
                MutateOnce(frame, fields, random);
            return [.. frame];
        }

        private static void MutateOnce(List<byte> frame, List<(int Offset, int Size)> fields, Random random)
        {
            switch (random.Next(10))
            {
                case 0 when frame.Count > 0:
                    for (var flips = random.Next(1, 4); flips > 0; flips--)
                    {
                        var at = random.Next(frame.Count);
                        frame[at] ^= (byte)(1 << random.Next(8));
                    }
                    break;
                case 1 when frame.Count > 1:
                    frame[random.Next(1, frame.Count)] = random.Next(2) == 0 ? s_interestingBytes[random.Next(s_interestingBytes.Length)] : (byte)random.Next(256);
                    break;
                case 2 when frame.Count >= 5:
                    WriteInt32(frame, random.Next(1, frame.Count - 3), random);
                    break;
                case 3 when frame.Count >= 3:
                    WriteInt16(frame, random.Next(1, frame.Count - 1), random);
                    break;
                case 4 when frame.Count > 1:
                {
                    var keep = random.Next(1, frame.Count);
                    frame.RemoveRange(keep, frame.Count - keep);
                    break;
                }
                case 5:
                {
                    var extra = new byte[random.Next(1, 17)];
                    random.NextBytes(extra);
                    frame.InsertRange(random.Next(1, frame.Count + 1), extra);
                    break;
                }
                case 6 when frame.Count > 2:
                {
                    var at = random.Next(1, frame.Count);
                    frame.RemoveRange(at, Math.Min(random.Next(1, 9), frame.Count - at));
                    break;
                }
                case 7 when frame.Count > 2:
                {
                    var at = random.Next(1, frame.Count);
                    var length = Math.Min(random.Next(1, 33), frame.Count - at);
                    frame.InsertRange(random.Next(1, frame.Count + 1), frame.GetRange(at, length));
                    break;
                }
                default:
                    // A structural field of a tuple (its column count, a column's kind or length, an Int32 inside a value),
                    // at its place in the unmutated frame.
                    if (fields.Count == 0)
                    {
                        if (frame.Count >= 5)
                            WriteInt32(frame, random.Next(1, frame.Count - 3), random);
                        break;
                    }
                    var (offset, size) = fields[random.Next(fields.Count)];
                    if (offset + size > frame.Count)
                        break;
                    if (size == 4)
                        WriteInt32(frame, offset, random);
                    else if (size == 2)
                        WriteInt16(frame, offset, random);
                    else
                        frame[offset] = s_interestingBytes[random.Next(s_interestingBytes.Length)];
                    break;
            }
        }

        private static void WriteInt32(List<byte> frame, int offset, Random random)
        {
            var current = (frame[offset] << 24) | (frame[offset + 1] << 16) | (frame[offset + 2] << 8) | frame[offset + 3];
            var value = random.Next(3) switch
            {
                0 => s_interestingInt32[random.Next(s_interestingInt32.Length)],
                1 => current + random.Next(-4, 5),
                _ => random.Next(int.MinValue, int.MaxValue),
            };
            for (var i = 0; i < 4; i++)
                frame[offset + i] = (byte)(value >> (24 - 8 * i));
        }

        private static void WriteInt16(List<byte> frame, int offset, Random random)
        {
            var current = (short)((frame[offset] << 8) | frame[offset + 1]);
            var value = random.Next(2) == 0 ? s_interestingInt16[random.Next(s_interestingInt16.Length)] : (short)(current + random.Next(-2, 3));
            frame[offset] = (byte)(value >> 8);
            frame[offset + 1] = (byte)value;
        }

        /// <summary>Where the tuples of an Insert, Update or Delete keep their structure: the column count (2 bytes), each
        /// column's kind (1) and length (4), and the Int32-aligned words at the start of each value (4), where array,
        /// numeric and other binary headers keep their counts.</summary>
        private static List<(int Offset, int Size)> Fields(byte[] frame)
        {
            var fields = new List<(int, int)>();
            switch (PgOutputParser.KindOf(frame))
            {
                case PgOutputMessageKind.Insert:
                    AddTuple(frame, PgOutputParser.ReadInsert(frame, inStream: false).NewTuple, fields);
                    break;
                case PgOutputMessageKind.Update:
                    var update = PgOutputParser.ReadUpdate(frame, inStream: false);
                    if (update.OldKind != OldTupleKind.None)
                        AddTuple(frame, update.OldTuple, fields);
                    AddTuple(frame, update.NewTuple, fields);
                    break;
                case PgOutputMessageKind.Delete:
                    AddTuple(frame, PgOutputParser.ReadDelete(frame, inStream: false).OldTuple, fields);
                    break;
            }
            return fields;
        }

        private static void AddTuple(byte[] frame, ReadOnlySpan<byte> tuple, List<(int, int)> fields)
        {
            if (!frame.AsSpan().Overlaps(tuple, out var start))
                return;
            fields.Add((start, 2));
            var count = (tuple[0] << 8) | tuple[1];
            var position = 2;
            for (var i = 0; i < count; i++)
            {
                fields.Add((start + position, 1));
                var kind = tuple[position++];
                if (kind is not ((byte)'t' or (byte)'b'))
                    continue;
                fields.Add((start + position, 4));
                var length = (tuple[position] << 24) | (tuple[position + 1] << 16) | (tuple[position + 2] << 8) | tuple[position + 3];
                position += 4;
                for (var word = 0; word + 4 <= Math.Min(length, 64); word += 4)
                    fields.Add((start + position + word, 4));
                position += length;
            }
        }
    }
}
