using System.Collections.Concurrent;
using DBSync.Testing;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>
/// One throwaway server per PostgreSQL major version, started when a test first asks for it (its binaries fetched on
/// first use: see <see cref="PostgresServer.StartAsync"/>) and removed with the fixture.
/// </summary>
public sealed class ServerVersionsFixture : IAsyncLifetime
{
    private readonly ConcurrentDictionary<int, Lazy<Task<PostgresServer>>> _servers = new();

    public Task<PostgresServer> ServerAsync(int version)
        => _servers.GetOrAdd(version, v => new Lazy<Task<PostgresServer>>(() => PostgresServer.StartAsync(version: v))).Value;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var server in _servers.Values.Where(s => s.IsValueCreated).Select(s => s.Value))
        {
            // A server that failed to start has failed its tests already and left nothing to remove.
            await Task.WhenAny(server);
            if (server.IsCompletedSuccessfully)
                await server.Result.DisposeAsync();
        }
    }
}
