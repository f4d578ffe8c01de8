using System.Diagnostics;
using System.Globalization;
using System.Text;
using DBSync.IntegrationTests.Infrastructure;
using Npgsql;

namespace DBSync.FailoverBench;

/// <summary>One DBSync instance: a process of tests/DBSync.CrashConsumer standing by for the slot (SlotInUse.Wait),
/// through a network of its own (<see cref="TcpProxy"/>) when the run silences networks.</summary>
internal sealed class Instance : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _errors = new();

    private Instance(Process process, int run, TcpProxy? network)
    {
        _process = process;
        Run = run;
        Network = network;
        ProcessId = process.Id;
    }

    public int Run { get; }

    public int ProcessId { get; }

    public TcpProxy? Network { get; }

    public bool HasExited => _process.HasExited;

    public static Instance Start(Settings settings, string source, string replica, string log, string events, int run)
    {
        TcpProxy? network = null;
        if (settings.Silent > 0)
        {
            var direct = new NpgsqlConnectionStringBuilder(source);
            network = TcpProxy.Start(direct.Host!, direct.Port);
            direct.Host = "127.0.0.1";
            direct.Port = network.Port;
            source = direct.ConnectionString;
        }
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(settings.Consumer);
        start.Environment["DBSYNC_CRASH_SOURCE"] = source;
        start.Environment["DBSYNC_CRASH_REPLICA"] = replica;
        start.Environment["DBSYNC_CRASH_LOG"] = log;
        start.Environment["DBSYNC_CRASH_EVENTS"] = events;
        start.Environment["DBSYNC_CRASH_RUN"] = run.ToString(CultureInfo.InvariantCulture);
        start.Environment["DBSYNC_CRASH_STANDBY"] = "1";
        start.Environment["DBSYNC_CRASH_STANDBY_POLL_MS"] = settings.StandbyPollMilliseconds.ToString(CultureInfo.InvariantCulture);
        start.Environment["DBSYNC_CRASH_STDERR_LOG"] = "1";
        start.Environment["DBSYNC_CRASH_RECEIVE_TIMEOUT_S"] = settings.ReceiveTimeoutSeconds.ToString(CultureInfo.InvariantCulture);
        var instance = new Instance(Process.Start(start) ?? throw new InvalidOperationException("Could not start the consumer."), run, network);
        instance._process.ErrorDataReceived += (_, e) => instance.Keep(e.Data);
        instance._process.OutputDataReceived += (_, e) => instance.Keep(e.Data);
        instance._process.BeginErrorReadLine();
        instance._process.BeginOutputReadLine();
        return instance;
    }

    private void Keep(string? line)
    {
        if (line is null)
            return;
        lock (_errors)
            _errors.AppendLine(line);
    }

    /// <summary>DBSync's log lines (UTC ticks first) written after <paramref name="ticks"/>.</summary>
    public List<(long Ticks, string Text)> LogSince(long ticks)
        => [.. Output().Split('\n').Select(line => line.Split(' ', 2))
            .Where(f => f.Length == 2 && long.TryParse(f[0], CultureInfo.InvariantCulture, out var t) && t > ticks)
            .Select(f => (long.Parse(f[0], CultureInfo.InvariantCulture), f[1].TrimEnd()))];

    /// <summary>What the process wrote (its errors, when it ended by itself).</summary>
    public string Output()
    {
        lock (_errors)
            return _errors.ToString();
    }

    public int ExitCode => _process.ExitCode;

    public void ThrowIfExited()
    {
        if (!_process.HasExited)
            return;
        _process.WaitForExit();
        throw new InvalidOperationException($"Instance run {Run} (pid {ProcessId}) ended by itself with code {_process.ExitCode}:\n{Output()}");
    }

    /// <summary>SIGKILL.</summary>
    public void Kill() => _process.Kill();

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
            _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
        if (Network is not null)
            await Network.DisposeAsync();
    }
}

/// <summary>The lines appended to a file since the last look (a line not yet ended waits for the next).</summary>
internal sealed class LineTail(string path)
{
    private long _position;
    private string _partial = "";

    public List<string> ReadNew()
    {
        if (!File.Exists(path))
            return [];
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        file.Seek(_position, SeekOrigin.Begin);
        using var reader = new StreamReader(file, Encoding.ASCII);
        var text = _partial + reader.ReadToEnd();
        _position = file.Position;
        var end = text.LastIndexOf('\n') + 1;
        _partial = text[end..];
        return [.. text[..end].Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }
}
