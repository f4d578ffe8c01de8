using System.Globalization;

namespace DBSync.Snapshots;

/// <summary>
/// Which transactions a chunk's MVCC snapshot sees, from <c>pg_current_snapshot()</c> (<c>xmin:xmax:xip,...</c>). A
/// transaction can be committed in the WAL, and so decoded and delivered, while still invisible to a new snapshot (its
/// backend waits for a synchronous standby); DBSync treats such a transaction as newer than the chunk.
/// </summary>
/// <remarks>The stream reports 32-bit transaction ids; snapshot values are 64-bit (epoch and xid), so comparisons use
/// the low 32 bits modulo 2^32, as PostgreSQL's TransactionIdPrecedes does.</remarks>
internal sealed class SnapshotVisibility
{
    private readonly HashSet<uint> _inProgress;

    private SnapshotVisibility(uint xmin, uint xmax, HashSet<uint> inProgress)
    {
        Xmin = xmin;
        Xmax = xmax;
        _inProgress = inProgress;
    }

    /// <summary>Every transaction before this one is finished (committed or aborted) for the snapshot.</summary>
    public uint Xmin { get; }

    /// <summary>Transactions from this one on had not started for the snapshot.</summary>
    public uint Xmax { get; }

    public static SnapshotVisibility Parse(string text)
    {
        var parts = text.Split(':');
        if (parts.Length != 3)
            throw new FormatException($"'{text}' is not a pg_snapshot (xmin:xmax:xip_list).");
        var inProgress = new HashSet<uint>();
        foreach (var xid in parts[2].Split(',', StringSplitOptions.RemoveEmptyEntries))
            inProgress.Add(Low32(xid));
        return new SnapshotVisibility(Low32(parts[0]), Low32(parts[1]), inProgress);
    }

    /// <summary>Whether the snapshot sees the effects of committed transaction <paramref name="xid"/>.</summary>
    public bool Sees(uint xid) => Precedes(xid, Xmin) || (Precedes(xid, Xmax) && !_inProgress.Contains(xid));

    private static bool Precedes(uint a, uint b) => unchecked((int)(a - b)) < 0;

    private static uint Low32(string xid8) => unchecked((uint)ulong.Parse(xid8, NumberStyles.None, CultureInfo.InvariantCulture));
}
