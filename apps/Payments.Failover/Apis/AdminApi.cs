using Payments.Domain;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Failover.Reconciliation;
using Payments.ServiceDefaults;

namespace Payments.Failover.Apis;

/// <summary>The operator's surface (internal: on Kubernetes reachable only inside the release's network policy).
/// <c>GET /admin/v1/region</c>: this region's role, epoch, deadline and what the global record says;
/// <c>POST /admin/v1/switchover</c> <c>{"to":"region-b"}</c>: planned switchover from this (active) region.</summary>
internal static class AdminApi
{
    public static void MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin/v1");
        admin.MapGet("/region", (RegionLeaseManager manager, JournalReplicator replicator, PromotionReconciler reconciler, RegionLeaseOptions options, TimeProvider time) =>
        {
            var now = time.GetUtcNow();
            var record = manager.LastSeen;
            return Results.Ok(new RegionStatus(
                manager.Region,
                manager.Role.ToString().ToLowerInvariant(),
                manager.IsWritable,
                manager.Role == RegionRole.Active ? manager.Epoch : null,
                manager.IsWritable ? manager.WritableUntil : null,
                record?.ActiveRegion,
                record?.Epoch,
                record?.LeaseUntil,
                // Lease age: time since the holder last renewed it (renewal sets leaseUntil = now + LeaseDuration).
                record is null ? null : Math.Round((now - (record.LeaseUntil - options.LeaseDuration)).TotalSeconds, 1),
                manager.LastSeenAt,
                manager.Role == RegionRole.Standby ? record?.ActiveRegion : manager.CatchingUpFrom,
                replicator.PagesBehind,
                replicator.AppliedSequence,
                reconciler.Last));
        });
        admin.MapPost("/switchover", async (SwitchoverRequest? body, RegionLeaseManager manager, CancellationToken cancellationToken) =>
        {
            if (body?.To is not { Length: > 0 } target || target == manager.Region)
            {
                return Results.Problem("Name the region to switch over to, other than this one: {\"to\":\"region-b\"}.",
                    statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.ValidationFailed);
            }

            return await manager.HandOverAsync(target, cancellationToken)
                ? Results.Ok(new { handedOverTo = target, manager.LastSeen?.Epoch })
                : Results.Problem($"Region {manager.Region} does not hold the active-region record; nothing was changed.",
                    statusCode: StatusCodes.Status409Conflict, type: ProblemTypes.NotTheActiveRegion);
        });
    }
}

internal sealed record SwitchoverRequest(string? To);

internal sealed record RegionStatus(
    string Region,
    string Role,
    bool Writable,
    long? Epoch,
    DateTimeOffset? WritableUntil,
    string? ActiveRegion,
    long? ActiveEpoch,
    DateTimeOffset? LeaseUntil,
    double? LeaseAgeSeconds,
    DateTimeOffset? LastSeenAt,
    string? ReplicatingFrom,
    long ReplicationPagesBehind,
    long ReplicationAppliedSequence,
    ReconciliationReport? LastReconciliation);
