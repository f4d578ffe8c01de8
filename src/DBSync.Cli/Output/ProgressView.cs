namespace DBSync.Cli.Output;

/// <summary>
/// A progress bar per table: redrawn in place on a terminal, one line per change otherwise (a log, a pipe, a test).
/// <c>public.users  [############..................]  40%  4,000 of ~10,000 rows  4 chunks</c>
/// </summary>
internal sealed class ProgressView(TextWriter output, bool interactive)
{
    private const int BarWidth = 30;
    private string? _last;
    private bool _lineOpen;

    /// <summary>A table waiting for its turn.</summary>
    public void Queued(string table, int ahead)
        => Write($"{table}  queued{(ahead > 0 ? $" behind {ahead} table(s)" : "")}", final: false);

    /// <summary>A table being snapshotted: <paramref name="total"/> is the table's estimated size, null when unknown
    /// (a filtered snapshot).</summary>
    public void Running(string table, long rows, long chunks, long? total, bool paused)
    {
        var state = paused ? "  paused" : "";
        if (total is { } estimate)
        {
            // An estimate can be below the rows read; the bar stays short of full until the table is done.
            var share = estimate <= 0 ? 0 : Math.Min(0.99, (double)rows / estimate);
            Write($"{table}  {Bar(share)} {(int)(share * 100),3}%  {Units.Count(rows)} of ~{Units.Count(estimate)} rows  {Chunks(chunks)}{state}", final: false);
        }
        else
        {
            Write($"{table}  {Units.Count(rows)} rows  {Chunks(chunks)}{state}", final: false);
        }
    }

    /// <summary>A table's snapshot ended.</summary>
    public void Finished(FinishedSnapshot snapshot)
    {
        var line = snapshot.Outcome == SnapshotOutcome.Completed
            ? $"{snapshot.Table}  {Bar(1)} 100%  {Units.Count(snapshot.RowsRead)} rows  {Chunks(snapshot.Chunks)}  completed"
            : $"{snapshot.Table}  {snapshot.Outcome.ToString().ToLowerInvariant()} after {Units.Count(snapshot.RowsRead)} rows  {Chunks(snapshot.Chunks)}" +
              (snapshot.Detail is null ? "" : $": {snapshot.Detail}");
        Write(line, final: true);
    }

    /// <summary>A line of its own (a message between bars).</summary>
    public void Message(string message) => Write(message, final: true);

    private static string Chunks(long chunks) => chunks == 1 ? "1 chunk" : $"{Units.Count(chunks)} chunks";

    private static string Bar(double share)
    {
        var filled = (int)Math.Round(share * BarWidth);
        return $"[{new string('#', filled)}{new string('.', BarWidth - filled)}]";
    }

    private void Write(string line, bool final)
    {
        if (line == _last && !final)
            return;
        if (interactive)
        {
            // The same table's bar is redrawn over itself; another table's, or a final line, starts below it.
            if (_lineOpen && SameTable(line, _last))
                output.Write("\r" + line.PadRight(_last!.Length));
            else if (_lineOpen)
                output.Write(Environment.NewLine + line);
            else
                output.Write(line);
            _lineOpen = !final;
            if (final)
                output.WriteLine();
        }
        else
        {
            output.WriteLine(line);
        }
        output.Flush();
        _last = line;
    }

    private static bool SameTable(string line, string? other)
        => other is not null && line.Split("  ", 2)[0] == other.Split("  ", 2)[0];
}
