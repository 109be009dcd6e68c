using Payments.Api.Apis;
using Payments.Api.Problems;

namespace Payments.Api.Limits;

/// <summary>Sheds load past <see cref="ApiOptions.MaxRequestsInFlight"/> requests in flight in this replica: the
/// request is answered at once with 503 <c>service-unavailable</c> and <c>Retry-After</c>, before any work.</summary>
/// <remarks>Each key's rate and each merchant's unfinished payments are bounded, but not what many keys add up to: past
/// what etcd and the ledger can take, requests piled up in the replica (memory, threads, every one of them timing out
/// at its dependency's deadline) instead of being refused while refusing is cheap. Not counted: the health endpoints
/// (a replica under load must not be restarted for it), and a payment status wait (<c>?wait=</c>), which holds its
/// request for up to 30 s by design and is bounded by the waiters' own limit.</remarks>
public sealed class RequestsInFlight(ApiOptions options) : IMiddleware
{
    private int inFlight;

    /// <summary>Requests this replica is serving now, the uncounted ones aside.</summary>
    public int Count => Volatile.Read(ref inFlight);

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (!IsCounted(context.Request))
        {
            await next(context);
            return;
        }

        if (Interlocked.Increment(ref inFlight) > options.MaxRequestsInFlight)
        {
            Interlocked.Decrement(ref inFlight);
            context.Response.Headers.RetryAfter = "1";
            await Reply.Unavailable($"This replica is serving its bound of {options.MaxRequestsInFlight} requests at once; retry after the time in Retry-After (with the same Idempotency-Key for writes).")
                .ToResult().ExecuteAsync(context);
            return;
        }

        try
        {
            await next(context);
        }
        finally
        {
            Interlocked.Decrement(ref inFlight);
        }
    }

    private static bool IsCounted(HttpRequest request) =>
        !(request.Path.StartsWithSegments("/healthz") || request.Path.StartsWithSegments("/readyz") || request.Path.StartsWithSegments("/servingz")
          || request.Path.StartsWithSegments(Payments.ServiceDefaults.MetricsEndpoint.Path)
          || (HttpMethods.IsGet(request.Method) && request.Query.ContainsKey("wait")));
}
