namespace DBSync.Replication;

/// <summary>
/// A WAL position that only moves forward, read and advanced from any thread: the position confirmed to the server (the
/// session's, and the one a transport reports in its status updates).
/// </summary>
internal sealed class ConfirmedPosition
{
    private long _value;

    public ulong Value => unchecked((ulong)Interlocked.Read(ref _value));

    /// <summary>Moves the position to <paramref name="lsn"/> if that is further; true when it moved.</summary>
    public bool Advance(ulong lsn)
    {
        var current = Interlocked.Read(ref _value);
        while (lsn > unchecked((ulong)current))
        {
            var seen = Interlocked.CompareExchange(ref _value, unchecked((long)lsn), current);
            if (seen == current)
                return true;
            current = seen;
        }
        return false;
    }
}
