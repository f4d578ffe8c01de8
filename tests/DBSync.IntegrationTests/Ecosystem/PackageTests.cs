using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;
using DBSync.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace DBSync.IntegrationTests.Ecosystem;

/// <summary>
/// The packages as a user gets them: <c>dotnet pack</c> of what this test run built, into a folder feed; a fresh
/// project outside the repository (none of its props or central versions) references DBSync.Runtime from that feed,
/// builds with the generator the package carries, and runs; the CLI's tool package installs and runs.
/// </summary>
[Collection(PostgresCollection.Name)] // not beside other tests: builds take both cores for a while
[Trait("Category", "Ecosystem")]
[Trait("Category", "Package")]
public sealed class PackageTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string s_version = typeof(DBSyncClient).Assembly.GetName().Version!.ToString(3);

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("dbsync-package-");

    [Fact]
    public async Task RuntimePackage_ConsumedByAFreshProject_BuildsWithTheGenerator_AndRuns()
    {
        var clock = Stopwatch.StartNew();
        var feed = await PackAsync("src/DBSync.Runtime/DBSync.Runtime.csproj");
        var package = Path.Combine(feed, $"DBSync.Runtime.{s_version}.nupkg");
        using (var zip = ZipFile.OpenRead(package))
        {
            var files = zip.Entries.Select(e => e.FullName).ToList();
            output.WriteLine(string.Join("\n", files));
            Assert.Contains("analyzers/dotnet/cs/DBSync.Generators.dll", files);
            Assert.Contains("lib/net10.0/DBSync.Runtime.dll", files);
            Assert.Contains("lib/net10.0/DBSync.Runtime.xml", files);
            Assert.Contains("README.md", files);
            Assert.Contains("LICENSE", files);
            var nuspec = Nuspec(zip, "DBSync.Runtime.nuspec");
            Assert.Equal(s_version, Element(nuspec, "version"));
            Assert.Equal("MIT", Element(nuspec, "license"));
            Assert.Equal("README.md", Element(nuspec, "readme"));
            Assert.Contains("postgresql", Element(nuspec, "tags"), StringComparison.Ordinal);
            var repository = nuspec.Descendants().Single(e => e.Name.LocalName == "repository");
            Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");
            // The generator is an analyzer only: no dependency of the package.
            Assert.DoesNotContain(nuspec.Descendants().Where(e => e.Name.LocalName == "dependency"), d => d.Attribute("id")!.Value.Contains("Generators", StringComparison.Ordinal));
        }
        Assert.True(File.Exists(Path.Combine(feed, $"DBSync.Runtime.{s_version}.snupkg")), "No symbols package next to the package.");
        using (var symbols = ZipFile.OpenRead(Path.Combine(feed, $"DBSync.Runtime.{s_version}.snupkg")))
        {
            var pdb = symbols.GetEntry("lib/net10.0/DBSync.Runtime.pdb");
            Assert.NotNull(pdb);
            using var reader = new StreamReader(pdb.Open());
            // SourceLink: the portable PDB maps the sources to the repository at the commit built.
            Assert.Contains("https://raw.githubusercontent.com/", await reader.ReadToEndAsync(), StringComparison.Ordinal);
        }

        var app = Directory.CreateDirectory(Path.Combine(_work.FullName, "app")).FullName;
        WriteIsolatedNuGetConfig(app, feed);
        // Nothing of the repository's build settings reaches the project, wherever the temp directory is.
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Build.props"), "<Project />");
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Build.targets"), "<Project />");
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Packages.props"), "<Project />");
        await File.WriteAllTextAsync(Path.Combine(app, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                <EmitCompilerGeneratedFiles>true</EmitCompilerGeneratedFiles>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="DBSync.Runtime" Version="{s_version}" />
              </ItemGroup>
            </Project>
            """);
        // Compiles only if the generator implemented ISyncTable<Order>.
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), """
            using DBSync;

            Console.WriteLine(Describe<Order>());

            static string Describe<T>() where T : ISyncTable<T>
                => $"{SnapshotTable.Of<T>().Table}: {string.Join(", ", T.TableInfo.Columns.Select(c => c.Name))}";

            [SyncTable("sales.orders")]
            public partial class Order
            {
                [PrimaryKey] public long Id { get; set; }
                public string CustomerName { get; set; } = "";
                public decimal Total { get; set; }
            }
            """);

        var build = await ChildProcess.RunAsync("dotnet", ["build", app, "-c", "Release", "--disable-build-servers", "-nologo"], TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, $"The consumer did not build ({build.ExitCode}):\n{build.Output}");
        var generated = Directory.GetFiles(Path.Combine(app, "obj"), "*.SyncTable.g.cs", SearchOption.AllDirectories);
        Assert.Equal(["Order.SyncTable.g.cs"], generated.Select(Path.GetFileName));
        Assert.Contains(Path.Combine("generated", "DBSync.Generators"), generated[0], StringComparison.Ordinal);
        // Restored from the feed just packed, into this test's own packages folder.
        Assert.True(Directory.Exists(Path.Combine(_work.FullName, "packages", "dbsync.runtime", s_version)), "DBSync.Runtime was not restored from the test's feed.");

        var run = await ChildProcess.RunAsync("dotnet", [Path.Combine(app, "bin", "Release", "net10.0", "Consumer.dll")], TimeSpan.FromMinutes(1));
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal("sales.orders: id, customer_name, total", run.Output.Trim());
        output.WriteLine($"Pack, fresh build and run: {clock.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task CliToolPackage_InstallsAsADotnetTool_AndRuns()
    {
        var clock = Stopwatch.StartNew();
        var feed = await PackAsync("src/DBSync.Cli/DBSync.Cli.csproj");
        using (var zip = ZipFile.OpenRead(Path.Combine(feed, $"DBSync.Cli.{s_version}.nupkg")))
        {
            var files = zip.Entries.Select(e => e.FullName).ToList();
            output.WriteLine(string.Join("\n", files));
            Assert.Contains("tools/net10.0/any/DBSync.Cli.dll", files);
            Assert.Contains("tools/net10.0/any/DBSync.Runtime.dll", files);
            Assert.Contains("README.md", files);
            using var settings = new StreamReader(zip.GetEntry("tools/net10.0/any/DotnetToolSettings.xml")!.Open());
            var command = XDocument.Parse(await settings.ReadToEndAsync()).Descendants("Command").Single();
            Assert.Equal("dbsync", command.Attribute("Name")?.Value);
            Assert.Equal("MIT", Element(Nuspec(zip, "DBSync.Cli.nuspec"), "license"));
        }

        WriteIsolatedNuGetConfig(_work.FullName, feed);
        var tools = Path.Combine(_work.FullName, "tools");
        var install = await ChildProcess.RunAsync("dotnet", ["tool", "install", "DBSync.Cli", "--version", s_version, "--tool-path", tools], TimeSpan.FromMinutes(3),
            workingDirectory: _work.FullName);
        Assert.True(install.ExitCode == 0, $"dotnet tool install failed ({install.ExitCode}):\n{install.Output}");
        var help = await ChildProcess.RunAsync(Path.Combine(tools, "dbsync"), ["--help"], TimeSpan.FromMinutes(1));
        Assert.True(help.ExitCode == 0, help.Output);
        Assert.Contains("Exit codes:", help.Output, StringComparison.Ordinal);
        Assert.Contains("snapshot", help.Output, StringComparison.Ordinal);
        var noConnection = await ChildProcess.RunAsync(Path.Combine(tools, "dbsync"), ["slots"], TimeSpan.FromMinutes(1),
            new Dictionary<string, string?> { ["DBSYNC_CONNECTION"] = null });
        Assert.Equal(2, noConnection.ExitCode);
        output.WriteLine($"Pack, install and run: {clock.Elapsed.TotalSeconds:0.0} s");
    }

    public void Dispose() => _work.Delete(recursive: true);

    /// <summary>Packs what this test run built (the project is built, in this configuration, before the tests run), into a
    /// feed of this test's own; the nuspec goes there too, so the repository's obj folders are not written.</summary>
    private async Task<string> PackAsync(string project)
    {
        var configuration = typeof(PackageTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        var feed = Path.Combine(_work.FullName, "feed");
        var pack = await ChildProcess.RunAsync("dotnet", ["pack", Path.Combine(ChildProcess.RepositoryRoot(), project), "-c", configuration, "--no-build", "-o", feed,
            $"-p:NuspecOutputPath={Path.Combine(_work.FullName, "nuspec")}{Path.DirectorySeparatorChar}", "--disable-build-servers", "-nologo"], TimeSpan.FromMinutes(3));
        Assert.True(pack.ExitCode == 0, $"dotnet pack {project} failed ({pack.ExitCode}):\n{pack.Output}");
        return feed;
    }

    /// <summary>A nuget.config with the feed and the machine's usual sources, and a packages folder of this test's own
    /// (the machine's as a read-only fallback for the rest), so a package restored once from an earlier feed is never
    /// taken for the one just packed.</summary>
    private void WriteIsolatedNuGetConfig(string directory, string feed)
    {
        var machine = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // A machine folder that holds a DBSync.Runtime of this version (from a consumer elsewhere) must not serve it.
        var fallback = Directory.Exists(Path.Combine(machine, "dbsync.runtime", s_version)) || Directory.Exists(Path.Combine(machine, "dbsync.cli", s_version))
            ? ""
            : $"""<fallbackPackageFolders><add key="machine" value="{machine}" /></fallbackPackageFolders>""";
        File.WriteAllText(Path.Combine(directory, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <config><add key="globalPackagesFolder" value="{Path.Combine(_work.FullName, "packages")}" /></config>
              {fallback}
              <packageSources><add key="dbsync-test-feed" value="{feed}" /></packageSources>
            </configuration>
            """);
    }

    private static XDocument Nuspec(ZipArchive zip, string name)
    {
        using var reader = new StreamReader(zip.GetEntry(name)!.Open());
        return XDocument.Parse(reader.ReadToEnd());
    }

    private static string Element(XDocument nuspec, string name) => nuspec.Descendants().Single(e => e.Name.LocalName == name).Value;
}
