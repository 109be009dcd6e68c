using Payments.Api.Apis;
using Payments.Api.Problems;
using Payments.Api.Security;
using Payments.Merchants;

namespace Payments.Api.Limits;

/// <summary>Sheds load past <see cref="ApiOptions.MaxRequestsInFlight"/> requests in flight in this replica, and past
/// a quarter of it for one merchant: the request is answered at once with 503 <c>service-unavailable</c> and
/// <c>Retry-After</c>.</summary>
/// <remarks>Each key's rate and each merchant's unfinished payments are bounded, but not what many keys add up to: past
/// what etcd and the ledger can take, requests piled up in the replica (memory, threads, every one of them timing out
/// at its dependency's deadline) instead of being refused while refusing is cheap. It runs after authentication and each
/// key's rate limit, so that requests without a valid key (limited per address before any lookup) and over-rate ones
/// never take a place, and a merchant's share keeps one merchant's slow requests (a body that trickles in, a wait on
/// its own Idempotency-Key) from taking every place and locking out the others. Counted: merchants' <c>/v1</c>
/// requests (the health probes, the operator's <c>/admin</c> and the OpenAPI document are not). A payment status wait
/// (<c>GET /v1/payments/{id}?wait=</c>), which holds its request for up to 30 s by design, is counted until it begins
/// to wait, holding a waiter's place (<see cref="GiveBack"/>): from then on the waiters' own limits bound it. A status
/// read that does not wait (<c>wait=0</c>, the waiter places all taken, a payment finished or only in the archive)
/// stays counted: exempt by its parameter alone, it was an etcd read (and an archive read) that nothing bounded.</remarks>
public sealed class RequestsInFlight(ApiOptions options) : IMiddleware
{
    /// <summary>The most one merchant's requests take of <see cref="ApiOptions.MaxRequestsInFlight"/>: a quarter.</summary>
    public const int MerchantShareDivisor = 4;

    private readonly Lock gate = new();
    private readonly Dictionary<string, int> perMerchant = new(StringComparer.Ordinal);
    private int inFlight;

    private const string PlaceItem = "requests-in-flight.place";

    /// <summary>Requests this replica is serving now, the uncounted ones aside.</summary>
    public int Count => Volatile.Read(ref inFlight);

    private int MerchantShare => Math.Max(1, options.MaxRequestsInFlight / MerchantShareDivisor);

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (context.Items[ApiKeyMiddleware.PrincipalItem] is not ApiPrincipal { MerchantId: var merchant })
        {
            await next(context); // not a merchant's /v1 request (probes, the operator's, the document)
            return;
        }

        if (!TryEnter(merchant, out var full))
        {
            context.Response.Headers.RetryAfter = "1";
            await Reply.Unavailable(full).ToResult().ExecuteAsync(context);
            return;
        }

        var place = new Place(this, merchant);
        context.Items[PlaceItem] = place;
        try
        {
            await next(context);
        }
        finally
        {
            place.Leave();
        }
    }

    /// <summary>Gives back the request's place (a status wait that took a waiter's place); once, however often called.</summary>
    public static void GiveBack(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        (context.Items[PlaceItem] as Place)?.Leave();
    }

    private bool TryEnter(string merchant, out string full)
    {
        lock (gate)
        {
            full = inFlight >= options.MaxRequestsInFlight
                ? $"This replica is serving its bound of {options.MaxRequestsInFlight} requests at once; retry after the time in Retry-After (with the same Idempotency-Key for writes)."
                : perMerchant.GetValueOrDefault(merchant) >= MerchantShare
                    ? $"This replica is serving {MerchantShare} requests of this merchant at once, its share; retry after the time in Retry-After (with the same Idempotency-Key for writes)."
                    : string.Empty;
            if (full.Length > 0)
            {
                return false;
            }

            inFlight++;
            perMerchant[merchant] = perMerchant.GetValueOrDefault(merchant) + 1;
            return true;
        }
    }

    private void Leave(string merchant)
    {
        lock (gate)
        {
            inFlight--;
            if (perMerchant[merchant] == 1)
            {
                perMerchant.Remove(merchant); // bounded by the merchants in flight, not by every merchant seen
            }
            else
            {
                perMerchant[merchant]--;
            }
        }
    }

    private sealed class Place(RequestsInFlight owner, string merchant)
    {
        private int left;

        public void Leave()
        {
            if (Interlocked.Exchange(ref left, 1) == 0)
            {
                owner.Leave(merchant);
            }
        }
    }
}
