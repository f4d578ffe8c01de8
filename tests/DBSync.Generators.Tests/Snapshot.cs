using System.Runtime.CompilerServices;

namespace DBSync.Generators.Tests;

/// <summary>
/// Compares text with a checked-in file under Snapshots/. On a mismatch it writes NAME.received.txt beside the file and
/// fails; set DBSYNC_ACCEPT_SNAPSHOTS=1 to overwrite the checked-in files with what the generator produces now.
/// </summary>
internal static class Snapshot
{
    public static void Match(string actual, string name, [CallerFilePath] string callerPath = "")
    {
        var directory = Path.Combine(Path.GetDirectoryName(callerPath)!, "Snapshots");
        var expectedPath = Path.Combine(directory, name + ".verified.txt");
        var receivedPath = Path.Combine(directory, name + ".received.txt");
        actual = actual.ReplaceLineEndings("\n");

        if (Environment.GetEnvironmentVariable("DBSYNC_ACCEPT_SNAPSHOTS") == "1")
        {
            Directory.CreateDirectory(directory);
            File.WriteAllText(expectedPath, actual);
            File.Delete(receivedPath);
            return;
        }

        var expected = File.Exists(expectedPath) ? File.ReadAllText(expectedPath).ReplaceLineEndings("\n") : null;
        if (expected == actual)
        {
            File.Delete(receivedPath);
            return;
        }

        File.WriteAllText(receivedPath, actual);
        Assert.Fail(expected is null
            ? $"No snapshot {expectedPath}; the output is in {receivedPath}. Review it and rerun with DBSYNC_ACCEPT_SNAPSHOTS=1 to accept."
            : $"Generated code differs from {expectedPath}; see {receivedPath} (diff the two). Rerun with DBSYNC_ACCEPT_SNAPSHOTS=1 to accept the change.");
    }
}
