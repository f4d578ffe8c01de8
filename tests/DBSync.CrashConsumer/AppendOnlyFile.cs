using System.Runtime.InteropServices;
using System.Text;

/// <summary>
/// A file several processes append lines to at once: opened with <c>O_APPEND</c>, each line written by one
/// <c>write</c> call, which the kernel puts at the end of the file whole. (.NET's <c>FileMode.Append</c> only seeks to
/// the end when it opens, so two processes' lines can overwrite each other.) Linux only, as the tests that use it.
/// </summary>
internal sealed partial class AppendOnlyFile : IDisposable
{
    private const int WriteOnly = 0x1, Create = 0x40, Append = 0x400;
    private readonly int _fd;

    public AppendOnlyFile(string path)
    {
        _fd = Open(path, WriteOnly | Create | Append, Convert.ToInt32("644", 8));
        if (_fd < 0)
            throw new IOException($"Cannot open {path} for appending (errno {Marshal.GetLastPInvokeError()}).");
    }

    public void AppendLine(string line)
    {
        var bytes = Encoding.UTF8.GetBytes(line + "\n");
        if (Write(_fd, bytes, bytes.Length) != bytes.Length)
            throw new IOException($"A line was not appended whole (errno {Marshal.GetLastPInvokeError()}).");
    }

    public void Dispose() => _ = Close(_fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, byte[] buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
