using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace DBSync.Hosting.Internal;

/// <summary>The client's <see cref="DBSyncClient.Role"/> as a health status (<see cref="DBSyncHealthChecks.AddDBSync"/>).</summary>
internal sealed class DBSyncHealthCheck(DBSyncClient client) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var role = client.Role;
        var slot = client.Options.SlotName;
        var data = new Dictionary<string, object> { ["role"] = role.ToString(), ["slot"] = slot };
        return Task.FromResult(role switch
        {
            DBSyncRole.Active => HealthCheckResult.Healthy($"Streaming from slot \"{slot}\".", data),
            DBSyncRole.Standby => HealthCheckResult.Healthy($"Standing by: slot \"{slot}\" streams to another instance.", data),
            DBSyncRole.Starting => HealthCheckResult.Degraded($"Starting or reconnecting to slot \"{slot}\".", data: data),
            _ => new HealthCheckResult(context.Registration.FailureStatus, $"Not running (slot \"{slot}\").", data: data),
        });
    }
}
