using Npgsql;

namespace DBSync.Internal;

/// <summary>Writes this pipeline's own transactional logical messages (snapshot watermarks, heartbeats): they reach the
/// stream at their transaction's place, and every slot of the database sees them, so their prefix names the pipeline.</summary>
internal static class LogicalMessages
{
    public static async Task EmitAsync(NpgsqlConnection connection, string prefix, string content, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_logical_emit_message(true, $1, $2)", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = prefix });
        command.Parameters.Add(new NpgsqlParameter { Value = content });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
