using System.Diagnostics;
using System.Globalization;
using Npgsql;
using DBSync.Bench;

namespace DBSync.SnapshotBench;

/// <summary>
/// pg_recvlogical streaming a publication with pgoutput into /dev/null on a slot of its own: what logical decoding costs
/// the server with a client that does nothing with the changes. Disposing stops it and drops the slot.
/// </summary>
internal sealed class Recvlogical : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _connectionString;
    private readonly string _slotName;

    private Recvlogical(Process process, string connectionString, string slotName)
    {
        _process = process;
        _connectionString = connectionString;
        _slotName = slotName;
    }

    public static async Task<Recvlogical> StartAsync(string? binDirectory, string connectionString, string slotName, string publication)
    {
        await UsersTable.ExecuteAsync(connectionString, $"SELECT pg_create_logical_replication_slot('{slotName}', 'pgoutput')");
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        var start = new ProcessStartInfo(Pgbench.FindTool(binDirectory, "pg_recvlogical"))
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in new[]
                 {
                     "-h", target.Host!, "-p", target.Port.ToString(CultureInfo.InvariantCulture), "-U", target.Username!, "-d", target.Database!,
                     "--slot", slotName, "--start", "--no-loop", "-f", "/dev/null",
                     "-o", "proto_version=1", "-o", $"publication_names={publication}",
                 })
        {
            start.ArgumentList.Add(argument);
        }
        if (!string.IsNullOrEmpty(target.Password))
            start.Environment["PGPASSWORD"] = target.Password;
        var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {start.FileName}.");
        var recvlogical = new Recvlogical(process, connectionString, slotName);

        // Streaming once the slot is active.
        for (var attempt = 0; ; attempt++)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"{start.FileName} exited with {process.ExitCode}: {await process.StandardError.ReadToEndAsync()}");
            var active = await UsersTable.ScalarAsync<bool>(connectionString, $"SELECT active FROM pg_replication_slots WHERE slot_name = '{slotName}'");
            if (active)
                return recvlogical;
            if (attempt == 100)
            {
                await recvlogical.DisposeAsync();
                throw new InvalidOperationException($"{start.FileName} did not start streaming slot {slotName}.");
            }
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
            _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
        await Slots.DropAsync(_connectionString, _slotName);
    }
}
