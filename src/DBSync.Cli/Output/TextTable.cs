namespace DBSync.Cli.Output;

/// <summary>Rows written as aligned columns under upper-case headers, two spaces apart; an empty cell shows as <c>-</c>.</summary>
internal sealed class TextTable(params string[] headers)
{
    private readonly List<string[]> _rows = [];

    public int Count => _rows.Count;

    public void Add(params string?[] cells)
    {
        if (cells.Length != headers.Length)
            throw new ArgumentException($"A row of {cells.Length} cells for {headers.Length} columns.", nameof(cells));
        _rows.Add([.. cells.Select(c => string.IsNullOrEmpty(c) ? "-" : c)]);
    }

    public void WriteTo(TextWriter writer, string indent = "")
    {
        var widths = headers.Select((h, i) => _rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        Write(writer, indent, headers, widths);
        foreach (var row in _rows)
            Write(writer, indent, row, widths);
    }

    private static void Write(TextWriter writer, string indent, string[] cells, int[] widths)
        => writer.WriteLine(indent + string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd());
}
