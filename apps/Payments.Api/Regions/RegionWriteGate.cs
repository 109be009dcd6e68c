using Payments.Api.Problems;
using Payments.Domain;
using Payments.Etcd.Regions;

namespace Payments.Api.Regions;

/// <summary>Whether this API runs in a region of a two-region deployment (configuration <c>Region:Name</c>).</summary>
public sealed record RegionGate(bool Enabled);

/// <summary>In a region that is not the active one, every write (<c>/v1</c>, not GET/HEAD) is answered 503
/// <c>region-not-writable</c> with Retry-After before anything is claimed or written; reads are served. The ledger's
/// epoch fence is what guarantees it (a write racing a demotion fails in etcd); this answers early and clearly.
/// The operator's writes get the same answer after the operator's token is checked (<see cref="AdminWritesAsync"/>).</summary>
public sealed class RegionWriteGate(RequestDelegate next, RegionGate gate, RegionEpochWatcher watcher)
{
    public const int RetryAfterSeconds = 1;

    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (gate.Enabled && !watcher.IsWritable && context.Request.Path.StartsWithSegments("/v1")
            && !HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await Reply.Problem(StatusCodes.Status503ServiceUnavailable, ProblemTypes.RegionNotWritable,
                    "This region does not accept writes now.",
                    "Another region is active, or this one is taking over. Retry with the same Idempotency-Key; your client or load balancer should reach the active region.")
                .ToResult().ExecuteAsync(context);
            return;
        }

        await next(context);
    }

    /// <summary>Endpoint filter of the operator's API, after its authentication: in a region that is not the active
    /// one its writes (merchants, keys, overdrafts) are refused as above. They are shipped from the active region
    /// only: made in the standby, a key's revocation was answered 204 and never reached the region serving the key.</summary>
    public static async ValueTask<object?> AdminWritesAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(invocation);
        ArgumentNullException.ThrowIfNull(next);
        var http = invocation.HttpContext;
        if (!HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method)
            && http.RequestServices.GetRequiredService<RegionGate>().Enabled && !http.RequestServices.GetRequiredService<RegionEpochWatcher>().IsWritable)
        {
            http.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Reply.Problem(StatusCodes.Status503ServiceUnavailable, ProblemTypes.RegionNotWritable, "This region does not accept writes now.",
                "Another region is active, or this one is taking over: send the operator's change to the active region's API (its failover service's GET /admin/v1/region names it).").ToResult();
        }

        return await next(invocation);
    }
}
