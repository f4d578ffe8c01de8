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
/// builds with the generator the package carries, and runs; another references only DBSync.Extensions.Hosting, gets the
/// generator through it, and runs a host built with <c>AddDBSync</c> against the test server; the CLI's tool package
/// installs and runs.
/// </summary>
[Collection(PostgresCollection.Name)] // not beside other tests: builds take both cores for a while
[Trait("Category", "Ecosystem")]
[Trait("Category", "Package")]
public sealed class PackageTests(PostgresFixture fixture, ITestOutputHelper output) : IDisposable
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
            var files = AssertLibraryPackage(zip, "DBSync.Runtime");
            Assert.Contains("analyzers/dotnet/cs/DBSync.Generators.dll", files);
            // The generator is an analyzer only: no dependency of the package.
            Assert.DoesNotContain(Dependencies(Nuspec(zip, "DBSync.Runtime.nuspec")), d => d.Attribute("id")!.Value.Contains("Generators", StringComparison.Ordinal));
        }
        await AssertSymbolsAsync(feed, "DBSync.Runtime");

        // Compiles only if the generator implemented ISyncTable<Order>.
        var app = await WriteConsumerAsync(feed, [("DBSync.Runtime", s_version)], """
            using DBSync;

            Console.WriteLine(Describe<Order>());

            static string Describe<T>() where T : ISyncTable<T>
                => $"{SnapshotTable.Of<T>().Table}: {string.Join(", ", T.TableInfo.Columns.Select(c => c.Name))}";
            """);
        await BuildWithTheGeneratorAsync(app, "dbsync.runtime");

        var run = await ChildProcess.RunAsync("dotnet", [Path.Combine(app, "bin", "Release", "net10.0", "Consumer.dll")], TimeSpan.FromMinutes(1));
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal("sales.orders: id, customer_name, total", run.Output.Trim());
        output.WriteLine($"Pack, fresh build and run: {clock.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task HostingPackage_AloneInAFreshProject_BringsTheGenerator_AndRunsAHostBuiltWithAddDBSync()
    {
        var clock = Stopwatch.StartNew();
        await PackAsync("src/DBSync.Runtime/DBSync.Runtime.csproj");
        var feed = await PackAsync("src/DBSync.Extensions.Hosting/DBSync.Extensions.Hosting.csproj");
        using (var zip = ZipFile.OpenRead(Path.Combine(feed, $"DBSync.Extensions.Hosting.{s_version}.nupkg")))
        {
            AssertLibraryPackage(zip, "DBSync.Extensions.Hosting");
            // The runtime comes with its analyzers (the generator), which a dependency excludes by default.
            var runtime = Assert.Single(Dependencies(Nuspec(zip, "DBSync.Extensions.Hosting.nuspec")), d => d.Attribute("id")!.Value == "DBSync.Runtime");
            Assert.Equal(s_version, runtime.Attribute("version")?.Value);
            Assert.DoesNotContain("Analyzers", runtime.Attribute("exclude")?.Value ?? "", StringComparison.OrdinalIgnoreCase);
        }
        await AssertSymbolsAsync(feed, "DBSync.Extensions.Hosting");

        // Only the hosting package (and the host itself): AddChangeHandler<Order, ...> compiles only if the generator ran.
        var app = await WriteConsumerAsync(feed, [("DBSync.Extensions.Hosting", s_version), ("Microsoft.Extensions.Hosting", "10.0.0")], """
            using DBSync;
            using DBSync.Hosting;
            using Microsoft.Extensions.Configuration;
            using Microsoft.Extensions.DependencyInjection;
            using Microsoft.Extensions.Hosting;
            using Npgsql;

            var builder = Host.CreateApplicationBuilder(args);
            builder.Services.AddDBSync(builder.Configuration.GetSection("DBSync")).AddChangeHandler<Order, OrderHandler>();
            builder.Services.AddHostedService<Writer>(); // after AddDBSync: it starts once the slot streams
            await builder.Build().RunAsync();
            return Environment.ExitCode;

            public sealed class OrderHandler(IHostApplicationLifetime lifetime) : IChangeHandler<Order>
            {
                public ValueTask HandleAsync(Change<Order> change, CancellationToken cancellationToken)
                {
                    Console.WriteLine($"handled: {change.Kind} {Change<Order>.Table} id={change.New!.Id} customer={change.New.CustomerName} #{change.IndexInTransaction}");
                    lifetime.StopApplication();
                    return ValueTask.CompletedTask;
                }
            }

            public sealed class Writer(IConfiguration configuration) : IHostedService
            {
                public async Task StartAsync(CancellationToken cancellationToken)
                {
                    await using var connection = new NpgsqlConnection(configuration["DBSync:ConnectionString"]);
                    await connection.OpenAsync(cancellationToken);
                    await using var command = new NpgsqlCommand("INSERT INTO sales.orders VALUES (1, 'ada', 9.50)", connection);
                    await command.ExecuteNonQueryAsync(cancellationToken);
                }

                public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
            }
            """);
        await BuildWithTheGeneratorAsync(app, "dbsync.extensions.hosting");

        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync("CREATE SCHEMA sales; CREATE TABLE sales.orders (id bigint PRIMARY KEY, customer_name text NOT NULL, total numeric NOT NULL)");
        var run = await ChildProcess.RunAsync("dotnet", [Path.Combine(app, "bin", "Release", "net10.0", "Consumer.dll")], TimeSpan.FromMinutes(2), new()
        {
            ["DBSync__ConnectionString"] = db.ConnectionString,
            ["DBSync__InitialSnapshot"] = "false",
            ["DBSync__ReplicationTransport"] = TestTransport.Current.ToString(),
        });
        Assert.True(run.ExitCode == 0, $"The hosted consumer failed ({run.ExitCode}):\n{run.Output}");
        Assert.Contains("handled: Insert sales.orders id=1 customer=ada #0", run.Output, StringComparison.Ordinal);
        output.WriteLine($"Pack, fresh build and hosted run: {clock.Elapsed.TotalSeconds:0.0} s");
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

    /// <summary>Checks what every library package carries: the assembly and its XML docs, README, license, and the
    /// metadata of Directory.Build.props; returns the package's files.</summary>
    private List<string> AssertLibraryPackage(ZipArchive zip, string id)
    {
        var files = zip.Entries.Select(e => e.FullName).ToList();
        output.WriteLine(string.Join("\n", files));
        Assert.Contains($"lib/net10.0/{id}.dll", files);
        Assert.Contains($"lib/net10.0/{id}.xml", files);
        Assert.Contains("README.md", files);
        Assert.Contains("LICENSE", files);
        var nuspec = Nuspec(zip, $"{id}.nuspec");
        Assert.Equal(s_version, Element(nuspec, "version"));
        Assert.Equal("MIT", Element(nuspec, "license"));
        Assert.Equal("README.md", Element(nuspec, "readme"));
        Assert.Contains("postgresql", Element(nuspec, "tags"), StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(Element(nuspec, "description")));
        var repository = nuspec.Descendants().Single(e => e.Name.LocalName == "repository");
        Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");
        return files;
    }

    /// <summary>The symbols package beside the package, whose PDB maps the sources to the repository (SourceLink).</summary>
    private static async Task AssertSymbolsAsync(string feed, string id)
    {
        var path = Path.Combine(feed, $"{id}.{s_version}.snupkg");
        Assert.True(File.Exists(path), $"No symbols package next to {id}.");
        using var symbols = ZipFile.OpenRead(path);
        var pdb = symbols.GetEntry($"lib/net10.0/{id}.pdb");
        Assert.NotNull(pdb);
        using var reader = new StreamReader(pdb.Open());
        Assert.Contains("https://raw.githubusercontent.com/", await reader.ReadToEndAsync(), StringComparison.Ordinal);
    }

    /// <summary>A console project outside the repository (none of its build settings apply) that references
    /// <paramref name="packages"/> from the feed, with <paramref name="program"/> and an entity for the generator.</summary>
    private async Task<string> WriteConsumerAsync(string feed, (string Id, string Version)[] packages, string program)
    {
        var app = Directory.CreateDirectory(Path.Combine(_work.FullName, "app")).FullName;
        WriteIsolatedNuGetConfig(app, feed);
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Build.props"), "<Project />");
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Build.targets"), "<Project />");
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Packages.props"), "<Project />");
        var references = string.Concat(packages.Select(p => $"""<PackageReference Include="{p.Id}" Version="{p.Version}" />"""));
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
              <ItemGroup>{references}</ItemGroup>
            </Project>
            """);
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), program);
        await File.WriteAllTextAsync(Path.Combine(app, "Order.cs"), """
            using DBSync;

            [SyncTable("sales.orders")]
            public partial class Order
            {
                [PrimaryKey] public long Id { get; set; }
                public string CustomerName { get; set; } = "";
                public decimal Total { get; set; }
            }
            """);
        return app;
    }

    /// <summary>Builds the consumer; the generator must have run, from the package restored from the test's feed.</summary>
    private async Task BuildWithTheGeneratorAsync(string app, string package)
    {
        var build = await ChildProcess.RunAsync("dotnet", ["build", app, "-c", "Release", "--disable-build-servers", "-nologo"], TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, $"The consumer did not build ({build.ExitCode}):\n{build.Output}");
        var generated = Directory.GetFiles(Path.Combine(app, "obj"), "*.SyncTable.g.cs", SearchOption.AllDirectories);
        Assert.Equal(["Order.SyncTable.g.cs"], generated.Select(Path.GetFileName));
        Assert.Contains(Path.Combine("generated", "DBSync.Generators"), generated[0], StringComparison.Ordinal);
        // Restored from the feed just packed, into this test's own packages folder.
        Assert.True(Directory.Exists(Path.Combine(_work.FullName, "packages", package, s_version)), $"{package} was not restored from the test's feed.");
    }

    /// <summary>A nuget.config with the feed and the machine's usual sources, and a packages folder of this test's own
    /// (the machine's as a read-only fallback for the rest), so a package restored once from an earlier feed is never
    /// taken for the one just packed.</summary>
    private void WriteIsolatedNuGetConfig(string directory, string feed)
    {
        var machine = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // A machine folder that holds a DBSync package of this version (from a consumer elsewhere) must not serve it.
        var fallback = new[] { "dbsync.runtime", "dbsync.extensions.hosting", "dbsync.cli" }.Any(p => Directory.Exists(Path.Combine(machine, p, s_version)))
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

    private static IEnumerable<XElement> Dependencies(XDocument nuspec) => nuspec.Descendants().Where(e => e.Name.LocalName == "dependency");

    private static string Element(XDocument nuspec, string name) => nuspec.Descendants().Single(e => e.Name.LocalName == name).Value;
}
