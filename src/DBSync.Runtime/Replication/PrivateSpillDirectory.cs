namespace DBSync.Replication;

/// <summary>Where the frames of large streamed transactions go when they spill to disk (<see cref="StreamedTransactions"/>):
/// a directory of DBSync's own that nobody else may write to.</summary>
internal static class PrivateSpillDirectory
{
    /// <summary>How to fix a spill directory DBSync refuses.</summary>
    public const string Fix = "remove it (DBSync creates it again, private), or set DBSyncOptions.StreamingSpillDirectory to a directory of your own";

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// DBSync's own directory in <paramref name="parent"/>, created owner-only (0700) when missing. An existing one that is
    /// a link, or that other users may write to (they could replace what is in it), is refused, as ssh refuses such
    /// directories. Its owner cannot be read from .NET; a private directory of another user cannot be written to unless
    /// this process is root, and even then the owner-only files stay unreadable to that user.
    /// </summary>
    public static string Prepare(string parent)
    {
        var directory = Path.Combine(Path.GetFullPath(parent), "dbsync-" + UserNameForPath());
        try
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory); // under the user's own temporary directory by default
                return directory;
            }
            Directory.CreateDirectory(directory, OwnerOnly); // also creates a missing parent, owner-only
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DBSyncConfigurationException(
                $"DBSync cannot create its spill directory {directory} for large transactions ({e.Message}): {Fix}.", e);
        }

        // Checked after creating, since creating an existing path (a link planted there, say) succeeds silently.
        var info = new DirectoryInfo(directory);
        if (info.LinkTarget is { } target)
            throw new DBSyncConfigurationException($"The spill directory {directory} is a symbolic link (to {target}); DBSync keeps the rows of large transactions there only in a directory of its own: {Fix}.");
        var mode = File.GetUnixFileMode(directory);
        if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            throw new DBSyncConfigurationException(
                $"The spill directory {directory} can be written by other users (mode {Convert.ToString((int)mode, 8)}); DBSync keeps the rows of large transactions there. " +
                $"Make it private (chmod 700 {directory}) if it is yours, or {Fix}.");
        }
        return directory;
    }

    private static string UserNameForPath()
    {
        var name = Environment.UserName;
        Span<char> safe = stackalloc char[Math.Min(name.Length, 64)];
        for (var i = 0; i < safe.Length; i++)
            safe[i] = char.IsAsciiLetterOrDigit(name[i]) || name[i] is '_' or '-' or '.' ? name[i] : '_';
        return safe.IsEmpty ? "user" : new string(safe);
    }
}
