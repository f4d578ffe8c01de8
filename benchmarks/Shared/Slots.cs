using Npgsql;

namespace DBSync.Bench;

/// <summary>Replication slot clean-up, so that no benchmark slot keeps WAL for the phases after it.</summary>
internal static class Slots
{
    public static async Task DropAsync(string connectionString, string slotName)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        // A walsender releases its slot a moment after the client disconnects.
        for (var attempt = 0; attempt < 100; attempt++)
        {
            await using (var drop = new NpgsqlCommand(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = @slot AND NOT active", connection))
            {
                drop.Parameters.AddWithValue("slot", slotName);
                await drop.ExecuteNonQueryAsync();
            }
            await using (var left = new NpgsqlCommand("SELECT count(*) FROM pg_replication_slots WHERE slot_name = @slot", connection))
            {
                left.Parameters.AddWithValue("slot", slotName);
                if ((long)(await left.ExecuteScalarAsync())! == 0)
                    return;
            }
            await Task.Delay(100);
        }
        throw new InvalidOperationException($"Replication slot {slotName} stayed active; it could not be dropped.");
    }
}
