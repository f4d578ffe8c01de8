using System.Diagnostics.Metrics;
using DBSync.Protocol;
using DBSync.Sample;

namespace DBSync.Runtime.Tests;

/// <summary>
/// Decoding a recorded Insert into a <see cref="Change{T}"/>, through the same registration the stream uses, allocates
/// exactly what an equal entity built by hand allocates: the entity, its strings and its arrays. Nothing else: no
/// boxing, no intermediate strings or buffers, no closures. Counted with the thread's allocated-bytes counter, which is
/// exact and does not depend on timing.
/// </summary>
public sealed class DecodeAllocationTests
{
    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void User_AllocatesTheEntityAndItsStringsOnly(string file)
        => AssertDecodeAllocates<User>(file, u => new User
        {
            Id = u.Id, FirstName = Copy(u.FirstName), UserName = Copy(u.UserName), Email = Copy(u.Email), Avatar = Copy(u.Avatar),
            Homepage = Copy(u.Homepage), DateOfBirth = u.DateOfBirth, Address = Copy(u.Address), Interests = Copy(u.Interests),
        });

    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void Restaurant_AllocatesTheEntityAndItsStringsOnly(string file)
        => AssertDecodeAllocates<Restaurant>(file, r => new Restaurant
        {
            Id = Copy(r.Id), Name = Copy(r.Name), Description = Copy(r.Description), Address = Copy(r.Address), Rating = r.Rating, Tags = Copy(r.Tags),
        });

    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void Visit_AllocatesTheEntityAndItsStringsOnly(string file)
        => AssertDecodeAllocates<Visit>(file, v => new Visit { UserId = v.UserId, RestaurantId = Copy(v.RestaurantId), AmountSpent = v.AmountSpent, VisitRating = v.VisitRating });

    /// <summary>A frame as the stream hands it over, inside its transaction, through the transaction assembler and the
    /// relation map: still the entity and its strings only.</summary>
    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void Visit_ThroughTheTransactionAssembler_AllocatesTheEntityAndItsStringsOnly(string file)
    {
        using var harness = new AssemblerHarness(record: false);
        var frames = Frames.RecordedWithPositions(file);
        var visit = frames.Select(f => f.Frame).Where(f => PgOutputParser.KindOf(f) == PgOutputMessageKind.Relation)
            .Select(f => PgOutputParser.ReadRelation(f, inStream: false)).First(r => r.Name == "visit").RelationId;
        var insert = frames.ToList().FindIndex(f => PgOutputParser.KindOf(f.Frame) == PgOutputMessageKind.Insert && PgOutputParser.ReadInsert(f.Frame, inStream: false).RelationId == visit);
        foreach (var (lsn, frame) in frames.Take(insert))
            harness.Feed(frame, lsn); // up to the insert, its transaction begun
        var (insertLsn, insertFrame) = frames[insert];

        AssertAllocates(() =>
        {
            harness.Feed(insertFrame, insertLsn);
            return harness.LastVisit!;
        }, v => new Visit { UserId = v.UserId, RestaurantId = Copy(v.RestaurantId), AmountSpent = v.AmountSpent, VisitRating = v.VisitRating });
    }

    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void StructWithFixedSizeColumns_AllocatesNothing(string file)
        => AssertDecodeAllocates<AllTypesRow>(file, row => row, expectedBytes: 0);

    /// <summary>With a listener on every DBSync instrument, each change is counted and its handler timed, and decoding
    /// still allocates exactly the entity: the tags are pre-built and nothing is boxed or captured per event.</summary>
    [Theory]
    [InlineData("binary.hex")]
    [InlineData("text.hex")]
    public void WithMetricsListening_StillAllocatesTheEntityOnly(string file)
    {
        var seen = new MeasurementCounts();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == DBSyncDiagnostics.MeterName)
                l.EnableMeasurementEvents(instrument, seen);
        };
        listener.SetMeasurementEventCallback<long>(static (instrument, value, _, state) =>
        {
            if (instrument.Name == DBSyncDiagnostics.Metrics.Changes)
                Interlocked.Add(ref ((MeasurementCounts)state!).Changes, value);
        });
        listener.SetMeasurementEventCallback<double>(static (instrument, _, _, state) =>
        {
            if (instrument.Name == DBSyncDiagnostics.Metrics.HandlerDuration)
                Interlocked.Increment(ref ((MeasurementCounts)state!).Durations);
        });
        listener.Start();

        Visit_AllocatesTheEntityAndItsStringsOnly(file);
        StructWithFixedSizeColumns_AllocatesNothing(file);

        // Each helper decodes three times; other tests of this class may run meanwhile and add to the counts.
        Assert.True(Volatile.Read(ref seen.Changes) >= 6, $"{Volatile.Read(ref seen.Changes)} changes counted");
        Assert.True(Volatile.Read(ref seen.Durations) >= 6, $"{Volatile.Read(ref seen.Durations)} handler durations recorded");
    }

    private sealed class MeasurementCounts
    {
        public long Changes;
        public long Durations;
    }

    private static void AssertDecodeAllocates<T>(string file, Func<T, T> buildByHand, long? expectedBytes = null) where T : ISyncTable<T>
        => AssertAllocates(RecordedInsertDecoder<T>.Create(file).Decode, buildByHand, expectedBytes);

    private static void AssertAllocates<T>(Func<T> decode, Func<T, T> buildByHand, long? expectedBytes = null)
    {
        decode(); // JIT and first-use work
        var entity = decode();
        var before = GC.GetAllocatedBytesForCurrentThread();
        decode();
        var decoding = GC.GetAllocatedBytesForCurrentThread() - before;

        buildByHand(entity);
        before = GC.GetAllocatedBytesForCurrentThread();
        var copy = buildByHand(entity);
        var byHand = GC.GetAllocatedBytesForCurrentThread() - before;

        GC.KeepAlive(copy);
        Assert.Equal(expectedBytes ?? byHand, byHand);
        Assert.Equal(byHand, decoding);
    }

    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(value))]
    private static string? Copy(string? value) => value is null || value.Length == 0 ? value : new string(value.AsSpan());

    private static string?[]? Copy(string?[]? values)
    {
        if (values is null)
            return null;
        if (values.Length == 0)
            return [];
        var copy = new string?[values.Length];
        for (var i = 0; i < values.Length; i++)
            copy[i] = Copy(values[i]);
        return copy;
    }
}
