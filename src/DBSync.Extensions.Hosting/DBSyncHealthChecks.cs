using DBSync.Hosting.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace DBSync.Hosting;

/// <summary>DBSync's health check for <c>services.AddHealthChecks()</c>.</summary>
public static class DBSyncHealthChecks
{
    /// <summary>
    /// Adds a check of the container's <see cref="DBSyncClient"/>: healthy while it streams (<see cref="DBSyncRole.Active"/>)
    /// and while it stands by for a slot another instance holds (<see cref="DBSyncRole.Standby"/>: a replica waiting is
    /// what it should be doing); degraded while it starts or reconnects; unhealthy once its run has ended. The result's
    /// data has the role and the slot.
    /// </summary>
    public static IHealthChecksBuilder AddDBSync(this IHealthChecksBuilder builder, string name = "dbsync", IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(name, services => new DBSyncHealthCheck(services.GetRequiredService<DBSyncClient>()), null, tags));
    }
}
