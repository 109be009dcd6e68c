using Payments.Domain;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Failover.Reconciliation;
using Payments.Failover.Security;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;

namespace Payments.Failover.Apis;

/// <summary>The operator's surface, every route behind the operator's bearer token (<see cref="OperatorAuthentication"/>).
/// <c>GET /admin/v1/region</c>: this region's role, epoch, deadline and what the global record says;
/// <c>POST /admin/v1/switchover</c> <c>{"to":"region-b"}</c>: planned switchover from this (active) region to the
/// configured peer region only, one at a time (<see cref="SwitchoverGate"/>, and the region's hand-over marker across
/// its processes), none within the cool-down after the last one of either region (the record carries it);
/// each request and its outcome are logged with the caller.</summary>
internal static class AdminApi
{
    /// <summary>How long a switchover may run once begun, whatever its caller does: it is bounded within by the
    /// lease (the drain) and by each Cosmos DB and etcd call's own timeout; this only backstops them.</summary>
    private static readonly TimeSpan SwitchoverBudget = TimeSpan.FromMinutes(2);

    /// <summary>Seconds after which an operator refused because a switchover is in progress here is told to look again.</summary>
    private const string InProgressRetryAfter = "10";

    private const string SwitchoverNotNowTitle = "A switchover cannot begin now.";

    public static void MapAdminApi(this IEndpointRouteBuilder app)
    {
        // Every admin route needs the operator's token (OperatorAuthentication); the audit log names the caller.
        var admin = app.MapGroup("/admin/v1").AddEndpointFilter<OperatorAuthentication>();
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
        admin.MapPost("/switchover", SwitchoverAsync);
    }

    private static async Task<IResult> SwitchoverAsync(
        RegionLeaseManager manager, AdminOptions options, SwitchoverGate gate, HttpContext context,
        ILogger<SwitchoverGate> audit, CancellationToken cancellationToken)
    {
        // The body is read here, after the operator's token was checked: a bound parameter is read before any filter
        // runs, so a caller without the token was told 400 or 415 about its body instead of 401.
        if (!context.Request.HasJsonContentType())
        {
            return Results.Problem(title: "The request body must be application/json in UTF-8, uncompressed.", statusCode: StatusCodes.Status415UnsupportedMediaType,
                type: ProblemTypes.UnsupportedMediaType);
        }

        var caller = context.Items[OperatorAuthentication.CallerItem] as string ?? "unknown";
        SwitchoverRequest? body;
        try
        {
            body = await context.Request.ReadFromJsonAsync<SwitchoverRequest>(cancellationToken);
        }
        catch (System.Text.Json.JsonException)
        {
            // The caller's mistake, answered and audited here: left to the exception handler it was logged as an
            // unhandled exception with its stack trace, and no line named who sent it (a probe).
            audit.LogWarning("Admin switchover by {Caller} refused: the body is not a JSON object {{\"to\":\"{Peer}\"}}", caller, options.PeerRegion);
            return Results.Problem(title: "The request is malformed.", detail: "The request body is malformed or not of the expected shape.",
                statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.MalformedRequest);
        }

        if (body?.To is not { Length: > 0 } target || !string.Equals(target, options.PeerRegion, StringComparison.Ordinal))
        {
            audit.LogWarning("Admin switchover by {Caller} refused: target {Target} is not the peer region {Peer}", caller, Payments.ServiceDefaults.Security.RefusalLog.Shown(body?.To), options.PeerRegion);
            return Results.Problem($"A switchover hands over to the peer region only: {{\"to\":\"{options.PeerRegion}\"}}.",
                statusCode: StatusCodes.Status400BadRequest, title: "One or more fields are invalid.", type: ProblemTypes.ValidationFailed);
        }

        if (!gate.TryEnter())
        {
            audit.LogWarning("Admin switchover to {Target} by {Caller} refused: one is already in progress here", target, caller);
            // When to look again, as every switchover-not-now says (docs/runbooks/failover.md): one runs a lease at most
            // once begun, and the status then shows where the record is.
            context.Response.Headers.RetryAfter = InProgressRetryAfter;
            return Results.Problem("A switchover is already in progress on this region.", statusCode: StatusCodes.Status409Conflict,
                title: SwitchoverNotNowTitle, type: ProblemTypes.SwitchoverNotNow);
        }

        HandOverResult result;
        try
        {
            audit.LogWarning("Admin switchover to {Target} requested by {Caller}", target, caller);
            // Not on the request's token: a caller that hung up while the record was being replaced left the hand-over
            // done but its marker removed (the old region then took its last epoch as lost and stopped delivering the
            // webhooks it owed), and the operator a 500 for a switchover that happened.
            using var budget = new CancellationTokenSource(SwitchoverBudget);
            result = await manager.HandOverAsync(target, options.SwitchoverCooldown, budget.Token);
        }
        finally
        {
            gate.Exit();
        }

        audit.LogWarning("Admin switchover to {Target} by {Caller}: {Outcome} ({Reason})", target, caller, result.Outcome, result.Reason);
        return Answer(result, target, context);
    }

    /// <summary>What the operator is told of a switchover's <paramref name="result"/>.</summary>
    private static IResult Answer(HandOverResult result, string target, HttpContext context)
    {
        if (result.RetryAfter > TimeSpan.Zero)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(result.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return result.Outcome switch
        {
            HandOverOutcome.HandedOver => Results.Ok(new { handedOverTo = target, result.Epoch }),
            HandOverOutcome.NotActive => Results.Problem(result.Reason, statusCode: StatusCodes.Status409Conflict, title: "This region is not the active one.",
                type: ProblemTypes.NotTheActiveRegion),
            HandOverOutcome.Unavailable => Results.Problem(result.Reason, statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "The service is temporarily unavailable.", type: ProblemTypes.ServiceUnavailable),
            // Nothing changed and the region resumes: the operator may try again (after the peer catches up).
            _ => Results.Problem(result.Reason, statusCode: StatusCodes.Status409Conflict, title: SwitchoverNotNowTitle, type: ProblemTypes.SwitchoverNotNow),
        };
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
