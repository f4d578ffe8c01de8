using System.Diagnostics;
using System.Globalization;
using DBSync.Sample;
using Npgsql;

namespace DBSync.HostedSample;

/// <summary>
/// <c>./build.sh hosted-sample-pair</c>: two replicas of this program on one database and one slot, each a process of its
/// own, their logs shown as they come, prefixed with the replica's name. Replica a starts first and streams; replica b
/// finds the slot streaming to a and stands by (its log says who holds the slot). While a row is written every 200 ms,
/// a is killed with SIGKILL: the server frees the slot at once, b takes it over from the position a confirmed and goes on
/// delivering. Then b is stopped as a service manager stops it (SIGTERM) and the database is dropped.
/// </summary>
public static class InstancePair
{
    private const string Slot = "dbsync_hosted_pair";
    private static readonly TimeSpan s_stepTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync()
    {
        var exitCode = 1;
        await SeedDatabase.RunAsync(Slot, async (server, database) =>
        {
            var connectionString = server.ConnectionStringFor(database);
            using var stopWriting = new CancellationTokenSource();
            var written = 0;
            var writer = Task.CompletedTask;
            try
            {
                await using var a = Replica.Start("a", connectionString);
                await a.WaitForAsync("Streaming slot", "replica a to stream");
                await using var b = Replica.Start("b", connectionString);
                await b.WaitForAsync("standing by", "replica b to stand by");
                Say("a is active, b stands by (its log above names the holder of the slot)");

                writer = WriteAsync(connectionString, () => Interlocked.Increment(ref written), stopWriting.Token);
                await a.WaitForAsync("restaurant id=pair-3 ", "replica a to deliver the rows written");
                var lastBeforeKill = Volatile.Read(ref written);
                Say($"killing replica a (process {a.ProcessId}) with SIGKILL; {lastBeforeKill} rows written so far");
                var killed = Stopwatch.StartNew();
                a.Kill();

                await b.WaitForAsync("Took over slot", "replica b to take the slot over");
                var next = $"restaurant id=pair-{lastBeforeKill + 1} ";
                await b.WaitForAsync(next, "replica b to deliver the rows written after the kill");
                Say($"b took over and delivered pair-{lastBeforeKill + 1}, {killed.Elapsed.TotalSeconds:0.00} s after the kill " +
                    "(what a delivered but had not confirmed yet, b delivered again: at least once)");

                await stopWriting.CancelAsync();
                await writer;
                Say("stopping replica b (SIGTERM)");
                var code = await b.StopAsync();
                Say($"replica b exited with {code}");
                exitCode = code;
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                Say($"failed: {e.Message}");
            }
            finally
            {
                await stopWriting.CancelAsync();
                await writer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        });
        return exitCode;
    }

    /// <summary>Inserts a restaurant every 200 ms (pair-1, pair-2, ...) until cancelled.</summary>
    private static async Task WriteAsync(string connectionString, Func<int> next, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        while (!cancellationToken.IsCancellationRequested)
        {
            var n = next();
            await using (var insert = new NpgsqlCommand("INSERT INTO restaurant (id, name) VALUES ($1, $2)", connection))
            {
                insert.Parameters.Add(new NpgsqlParameter { Value = $"pair-{n}" });
                insert.Parameters.Add(new NpgsqlParameter { Value = $"Restaurant {n}" });
                await insert.ExecuteNonQueryAsync(CancellationToken.None);
            }
            try
            {
                await Task.Delay(200, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static void Say(string text) => Console.WriteLine($"== {text}");

    /// <summary>One replica: this program, in a process of its own, with its connection string in DBSync__ConnectionString
    /// (its application name says which replica it is, so the other's log names the holder of the slot).</summary>
    private sealed class Replica : IAsyncDisposable
    {
        private readonly string _name;
        private readonly Process _process;
        private readonly List<string> _lines = [];
        private readonly List<(string Text, TaskCompletionSource<string> Seen)> _waiters = [];

        private Replica(string name, Process process)
        {
            _name = name;
            _process = process;
        }

        public int ProcessId => _process.Id;

        public static Replica Start(string name, string connectionString)
        {
            // Run as it was run: the apphost, or "dotnet DBSync.HostedSample.dll".
            var path = Environment.ProcessPath ?? "dotnet";
            var start = new ProcessStartInfo(path) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            if (Path.GetFileNameWithoutExtension(path) == "dotnet")
                start.ArgumentList.Add(typeof(InstancePair).Assembly.Location);
            start.Environment["DBSync__ConnectionString"] = new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = $"hosted-sample-{name}" }.ConnectionString;
            start.Environment["DBSync__SlotName"] = Slot;
            start.Environment["DBSync__PublicationName"] = Slot;
            var process = new Process { StartInfo = start };
            var replica = new Replica(name, process);
            process.OutputDataReceived += (_, e) => replica.OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => replica.OnLine(e.Data);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            Say($"started replica {name} (process {process.Id})");
            return replica;
        }

        /// <summary>The first line of its output that contains <paramref name="text"/> (one already written included).</summary>
        public async Task<string> WaitForAsync(string text, string what)
        {
            var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_lines)
            {
                if (_lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } line)
                    return line;
                _waiters.Add((text, seen));
            }
            var exited = _process.WaitForExitAsync();
            if (await Task.WhenAny(seen.Task, exited, Task.Delay(s_stepTimeout)) != seen.Task)
            {
                throw exited.IsCompleted
                    ? new InvalidOperationException($"replica {_name} exited with {_process.ExitCode} while waiting for {what}")
                    : new TimeoutException($"waited {s_stepTimeout.TotalSeconds} s for {what}");
            }
            return await seen.Task;
        }

        public void Kill() => _process.Kill(); // SIGKILL on Linux and macOS

        /// <summary>Stops it as a service manager does (SIGTERM: the host stops, DBSync finishes the transaction in flight
        /// and confirms it) and returns its exit code.</summary>
        public async Task<int> StopAsync()
        {
            if (OperatingSystem.IsWindows())
            {
                _process.Kill();
            }
            else
            {
                using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])!;
                await kill.WaitForExitAsync();
            }
            await _process.WaitForExitAsync().WaitAsync(s_stepTimeout);
            return _process.ExitCode;
        }

        private void OnLine(string? line)
        {
            if (line is null)
                return;
            Console.WriteLine($"[{_name}] {line}");
            lock (_lines)
            {
                _lines.Add(line);
                foreach (var waiter in _waiters.Where(w => line.Contains(w.Text, StringComparison.Ordinal)).ToList())
                {
                    waiter.Seen.TrySetResult(line);
                    _waiters.Remove(waiter);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
        }
    }
}
