namespace DBSync.ApplyBench;

/// <summary>How the benchmark's applier writes pgbench's tables into the target: the generated mappings (upserts sent as
/// pipelined batches, snapshot chunks through binary COPY), onto tables of the same names.</summary>
internal static class PgbenchMapping
{
    public static void MapPgbenchTables(PostgresApplier applier)
    {
        applier.MapTable<PgbenchAccount>();
        applier.MapTable<PgbenchBranch>();
        applier.MapTable<PgbenchTeller>();
        applier.MapTable<PgbenchHistory>();
    }
}
