namespace DBSync;

/// <summary>
/// Keeps checkpoints as files in a directory, one per slot (<c>&lt;slot&gt;.dbsync-checkpoint</c>). Each save writes a
/// temporary file, flushes it to disk and renames it over the previous one, so a crash leaves either the old or the new
/// record, never a torn one.
/// </summary>
public sealed class FileCheckpointStore : ICheckpointStore
{
    /// <summary>Creates a store in <paramref name="directory"/> (created on the first save if missing).</summary>
    public FileCheckpointStore(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
    }

    /// <summary>The directory that holds the checkpoint files.</summary>
    public string Directory { get; }

    /// <summary>The file that holds the checkpoint of <paramref name="slotName"/>.</summary>
    public string PathOf(string slotName) => Path.Combine(Directory, slotName + ".dbsync-checkpoint");

    /// <inheritdoc />
    public async Task<byte[]?> LoadAsync(string slotName, CancellationToken cancellationToken)
    {
        var path = PathOf(slotName);
        return File.Exists(path) ? await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false) : null;
    }

    /// <summary>Deletes the checkpoint of <paramref name="slotName"/> (after its slot was dropped: a new slot starts
    /// without one); false when there was none.</summary>
    public Task<bool> DeleteAsync(string slotName, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var path = PathOf(slotName);
        var existed = File.Exists(path);
        File.Delete(path);
        return Task.FromResult(existed);
    }

    /// <inheritdoc />
    public async Task SaveAsync(string slotName, ReadOnlyMemory<byte> checkpoint, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = PathOf(slotName);
        var temporary = path + ".tmp";
        await using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.Asynchronous))
        {
            await file.WriteAsync(checkpoint, cancellationToken).ConfigureAwait(false);
            file.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
    }
}
