using BenchmarkDotNet.Attributes;
using DBSync.Runtime.Tests;
using DBSync.Sample;

namespace DBSync.Benchmarks;

/// <summary>
/// One recorded pgoutput Insert (PostgreSQL 15, binary tuples with protocol 2, text tuples with protocol 1) decoded into
/// a <see cref="Change{T}"/> and handed to a handler, through the registration the stream uses. Allocated bytes per
/// operation are the entity and its strings and arrays (DecodeAllocationTests asserts it exactly); 0 for the struct.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class DecodeBenchmarks
{
    private RecordedInsertDecoder<User> _users = null!;
    private RecordedInsertDecoder<Restaurant> _restaurants = null!;
    private RecordedInsertDecoder<Visit> _visits = null!;
    private RecordedInsertDecoder<AllTypesRow> _allTypes = null!;

    [Params("binary", "text")]
    public string Format { get; set; } = "binary";

    [GlobalSetup]
    public void Setup()
    {
        var file = $"{Format}.hex";
        _users = RecordedInsertDecoder<User>.Create(file);
        _restaurants = RecordedInsertDecoder<Restaurant>.Create(file);
        _visits = RecordedInsertDecoder<Visit>.Create(file);
        _allTypes = RecordedInsertDecoder<AllTypesRow>.Create(file);
    }

    /// <summary>users: serial key, five strings, a date, a text[] of five elements (one NULL, one quoted).</summary>
    [Benchmark]
    public User Users() => _users.Decode();

    /// <summary>restaurant: varchar key, REPLICA IDENTITY FULL, an empty text[].</summary>
    [Benchmark]
    public Restaurant Restaurant() => _restaurants.Decode();

    /// <summary>visit: composite key (int, varchar), a numeric.</summary>
    [Benchmark]
    public Visit Visit() => _visits.Decode();

    /// <summary>all_types as a record struct: bool, int2, int8, uuid, timestamp, timestamptz, numeric.</summary>
    [Benchmark]
    public AllTypesRow AllTypesStruct() => _allTypes.Decode();
}
