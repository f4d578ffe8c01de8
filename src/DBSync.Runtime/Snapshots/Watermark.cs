using System.Globalization;
using System.Text;

namespace DBSync.Snapshots;

/// <summary>Which side of a chunk a watermark marks.</summary>
internal enum WatermarkKind : byte
{
    Low = (byte)'L',
    High = (byte)'H',
}

/// <summary>
/// A low or high watermark: a transactional logical message (<c>pg_logical_emit_message(true, prefix, content)</c>)
/// written around a chunk read, so nothing is written to user tables. Logical messages reach every slot of the
/// database, so the prefix names this pipeline (its slot) and the content names the run and chunk; a watermark from
/// another pipeline or an earlier run never matches.
/// </summary>
internal readonly record struct Watermark(WatermarkKind Kind, string RunId, long Chunk)
{
    public static string PrefixFor(string slot) => "dbsync.wm." + slot;

    public string Content => string.Create(CultureInfo.InvariantCulture, $"{(char)Kind}:{RunId}:{Chunk}");

    /// <summary>Parses watermark content; false for anything that is not one (a message of the application's own).</summary>
    public static bool TryParse(ReadOnlySpan<byte> content, out Watermark watermark)
    {
        watermark = default;
        var text = Encoding.UTF8.GetString(content);
        var parts = text.Split(':');
        if (parts.Length != 3 || parts[0] is not ("L" or "H") || parts[1].Length == 0
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var chunk))
        {
            return false;
        }
        watermark = new Watermark((WatermarkKind)parts[0][0], parts[1], chunk);
        return true;
    }
}
