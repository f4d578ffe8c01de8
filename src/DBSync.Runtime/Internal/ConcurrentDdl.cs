using Npgsql;

namespace DBSync.Internal;

/// <summary>
/// Set-up statements that several instances of a pipeline may run at the same moment (replicas starting together):
/// <c>CREATE TABLE IF NOT EXISTS</c> and <c>CREATE PUBLICATION</c> check for the object before inserting its catalog
/// rows, so the slower of two sessions fails on the catalog's unique index (23505), or finds the object made meanwhile
/// (42P07, 42710). Either way the object exists, which is all the caller needs.
/// </summary>
internal static class ConcurrentDdl
{
    public static bool CreatedMeanwhile(PostgresException e) => e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.DuplicateTable
        or PostgresErrorCodes.DuplicateObject;
}
