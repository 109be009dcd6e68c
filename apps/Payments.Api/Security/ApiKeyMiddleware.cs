using System.Threading.RateLimiting;
using Payments.Api.Apis;
using Payments.Api.Problems;
using Payments.Domain;
using Payments.Merchants;

namespace Payments.Api.Security;

/// <summary>Authenticates every <c>/v1</c> request by its <c>Authorization: Bearer &lt;api-key&gt;</c> and records
/// who sent it (merchant, key, scopes); everything a merchant reads or writes is scoped to that merchant, and each
/// route checks its scope (<see cref="ScopeRequirement"/>).</summary>
/// <remarks>Each replica holds every live key in memory (<see cref="MerchantStore.RunInvalidationAsync"/>), so a valid
/// key costs no etcd read and no budget. A key it does not hold (issued in the last moments, or not a key) costs an etcd
/// read. Requests without a valid key spend tokens of their client address's bucket
/// (<see cref="ApiOptions.UnauthenticatedRequestsPerSecondPerAddress"/>), and an address whose bucket is empty is refused
/// with 429 before any lookup: a flood of missing, wrong or random keys stops short of etcd, which the ledger needs, and
/// — keys being held — short of the valid keys that come from the same address.</remarks>
public sealed class ApiKeyMiddleware(RequestDelegate next, ApiOptions options) : IDisposable
{
    public const string PrincipalItem = "api.principal";
    private const string Scheme = "Bearer ";
    private const int MaxKeyLength = 200;

    private readonly PartitionedRateLimiter<string> perAddress = PartitionedRateLimiter.Create<string, string>(address =>
        RateLimitPartition.GetTokenBucketLimiter(address, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = options.UnauthenticatedRequestsPerSecondPerAddressPerReplica * 2,
            TokensPerPeriod = options.UnauthenticatedRequestsPerSecondPerAddressPerReplica,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));

    /// <summary>Lookups of keys this replica does not hold, in flight at once per address (see <see cref="AuthenticateLimitedAsync"/>).</summary>
    public const int MaxLookupsInFlightPerAddress = 4;

    /// <summary>Lookups waiting for one of an address's <see cref="MaxLookupsInFlightPerAddress"/> turns. Without a queue
    /// a fifth request at once was refused 429 "without a valid API key" though its key was valid: merchants behind one
    /// egress, each with a key issued a moment ago, or every request from one address while the replica's key watch is
    /// down (each key then looked up once a second).</summary>
    public const int MaxLookupsQueuedPerAddress = 64;

    /// <summary>Longest a lookup waits for its turn (per address, then among all); past it the request is refused with
    /// Retry-After, so a lookup stalled on etcd holds no queue for long.</summary>
    public static readonly TimeSpan MaxLookupQueueWait = TimeSpan.FromSeconds(5);

    private readonly PartitionedRateLimiter<string> lookupsInFlight = PartitionedRateLimiter.Create<string, string>(address =>
        RateLimitPartition.GetConcurrencyLimiter(address, _ => new ConcurrencyLimiterOptions
        {
            PermitLimit = MaxLookupsInFlightPerAddress, QueueLimit = MaxLookupsQueuedPerAddress, QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        }));

    /// <summary>Lookups of keys this replica does not hold, in flight at once from every address together. The budget
    /// per address bounds one address (an IPv6 client's /64), not many: a client with a routed /48 had 65,536 budgets,
    /// each made-up key a store read. Past it a lookup is answered 503 at once; a valid key is held by every replica (its
    /// watch), so only a key issued a moment ago, or every key while the watch is down, comes here.</summary>
    public const int MaxLookupsInFlight = 64;

    /// <summary>Lookups waiting for one of the <see cref="MaxLookupsInFlight"/> turns of every address together.</summary>
    public const int MaxLookupsQueued = 256;

    private readonly ConcurrencyLimiter allLookupsInFlight = new(new ConcurrencyLimiterOptions
    {
        PermitLimit = MaxLookupsInFlight, QueueLimit = MaxLookupsQueued, QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    public async Task InvokeAsync(HttpContext context, MerchantStore store)
    {
        if (context.Request.Path.StartsWithSegments("/openapi"))
        {
            // No key needed (a client generator reads it), and Microsoft.AspNetCore.OpenApi builds the document anew for
            // each request: it spends the address's budget for requests without a valid key, or anyone could make the
            // replicas build documents as fast as they can send.
            using var lease = perAddress.AttemptAcquire(BudgetKey(context.Connection.RemoteIpAddress));
            if (!lease.IsAcquired)
            {
                await TooManyAsync(context);
                return;
            }

            await next(context);
            return;
        }

        if (!context.Request.Path.StartsWithSegments("/v1"))
        {
            await next(context);
            return;
        }

        var header = context.Request.Headers.Authorization.ToString();
        if (context.Request.Headers.Authorization.Count > 1 || header.Contains(',', StringComparison.Ordinal))
        {
            // Two headers, or two credentials in one (a client joins repeated headers with ", "): they read as one
            // unknown key ("k, Bearer k"), and the caller was told its key was unknown. Keys have no comma.
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await Reply.Problem(StatusCodes.Status401Unauthorized, ProblemTypes.Unauthorized, "Valid credentials are required.",
                "Send the Authorization header once, with one key.").ToResult().ExecuteAsync(context);
            return;
        }

        var key = header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) ? header[Scheme.Length..].Trim() : null; // RFC 9110 §11.1: the scheme is case-insensitive
        var principal = string.IsNullOrEmpty(key) || key.Length > MaxKeyLength || !store.IsCached(key)
            ? await AuthenticateLimitedAsync(context, store, key)
            : await store.AuthenticateAsync(key, context.RequestAborted);
        if (principal is null)
        {
            if (!context.Response.HasStarted && context.Response.StatusCode is not (StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable))
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await Reply.Problem(StatusCodes.Status401Unauthorized, ProblemTypes.Unauthorized, "Valid credentials are required.",
                    KeyProblem(key, store.Mode)).ToResult().ExecuteAsync(context);
            }

            return;
        }

        context.Items[PrincipalItem] = principal;
        await next(context);
    }

    public void Dispose()
    {
        perAddress.Dispose();
        lookupsInFlight.Dispose();
        allLookupsInFlight.Dispose();
    }

    public static ApiPrincipal PrincipalOf(HttpContext context) =>
        context.Items[PrincipalItem] as ApiPrincipal ?? throw new InvalidOperationException("The request was not authenticated.");

    public static string MerchantOf(HttpContext context) => PrincipalOf(context).MerchantId;

    /// <summary>Whether the key the request was authenticated with still stands: a request that waits (a status wait,
    /// up to 30 s) checks again before it answers, so a revocation, or the end of a rotation's overlap, that commits
    /// meanwhile is not answered with the merchant's data. A held key costs no etcd read.</summary>
    public static async Task<bool> StillAuthenticatedAsync(HttpContext context, MerchantStore store)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(store);
        var key = context.Request.Headers.Authorization.ToString()[Scheme.Length..].Trim(); // InvokeAsync admitted it
        return await store.AuthenticateAsync(key, context.RequestAborted) is { } principal && principal.KeyId == PrincipalOf(context).KeyId;
    }

    /// <summary>The 401 for a key that <see cref="StillAuthenticatedAsync"/> no longer finds.</summary>
    public static Reply Withdrawn(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return Reply.Problem(StatusCodes.Status401Unauthorized, ProblemTypes.Unauthorized, "Valid credentials are required.",
            "The API key was revoked or expired while the request waited.");
    }

    /// <summary><see cref="Withdrawn"/> when the request's key no longer stands, else null (an idempotent request's
    /// <c>afterWait</c>).</summary>
    public static async Task<Reply?> WithdrawnAsync(HttpContext context, MerchantStore store) =>
        await StillAuthenticatedAsync(context, store) ? null : Withdrawn(context);

    /// <summary>A key this replica does not know yet. An address that has spent its budget of requests without a valid
    /// key is refused before the lookup (no store access); otherwise the key is looked up — at most
    /// <see cref="MaxLookupsInFlightPerAddress"/> at a time per address, the others waiting their turn (a bounded queue,
    /// a bounded wait) and checking the budget again when it comes — and a request that turns out to have no valid key,
    /// or whose lookup failed, spends a token. Valid keys spend nothing; and since every live key is held, a valid key
    /// comes here only in the moments between its issue and the watch's delivery of it (or while the watch is down).
    /// Without the bound on lookups in flight, many requests sent at once all passed the budget's check before any
    /// spent, so the store reads grew with the requests in flight rather than with the budget.</summary>
    private async Task<ApiPrincipal?> AuthenticateLimitedAsync(HttpContext context, MerchantStore store, string? key)
    {
        var address = BudgetKey(context.Connection.RemoteIpAddress);
        if (BudgetSpent(address))
        {
            await TooManyAsync(context);
            return null;
        }

        using var wait = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        wait.CancelAfter(MaxLookupQueueWait); // one bound for both queues
        using var inFlight = await TurnAsync(token => lookupsInFlight.AcquireAsync(address, 1, token), wait.Token, context.RequestAborted);
        if (inFlight is null)
        {
            await TooManyLookupsAsync(context);
            return null;
        }

        if (BudgetSpent(address))
        {
            await TooManyAsync(context); // spent by the requests ahead in the queue
            return null;
        }

        var lookup = !string.IsNullOrEmpty(key) && key.Length <= MaxKeyLength;
        using var anyLookup = lookup ? await TurnAsync(token => allLookupsInFlight.AcquireAsync(1, token), wait.Token, context.RequestAborted) : null;
        if (lookup && anyLookup is null)
        {
            context.Response.Headers.RetryAfter = "1";
            await Reply.Unavailable("Too many API keys this replica does not hold are being looked up at once; retry after the time in Retry-After.")
                .ToResult().ExecuteAsync(context);
            return null;
        }

        ApiPrincipal? principal;
        try
        {
            principal = lookup ? await store.AuthenticateAsync(key!, context.RequestAborted) : null;
        }
        catch
        {
            perAddress.AttemptAcquire(address).Dispose(); // a failed lookup spends as an invalid key does
            throw;
        }

        if (principal is null)
        {
            using var lease = perAddress.AttemptAcquire(address);
            if (!lease.IsAcquired)
            {
                await TooManyAsync(context);
            }
        }

        return principal;
    }

    private bool BudgetSpent(string address) => perAddress.GetStatistics(address) is { CurrentAvailablePermits: <= 0 };

    /// <summary>A lookup's turn, or null when its queue is full or the turn did not come before <paramref name="wait"/>
    /// ended. The request's own abort still throws.</summary>
    private static async Task<RateLimitLease?> TurnAsync(Func<CancellationToken, ValueTask<RateLimitLease>> acquire, CancellationToken wait, CancellationToken aborted)
    {
        RateLimitLease lease;
        try
        {
            lease = await acquire(wait);
        }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
        {
            return null;
        }

        if (lease.IsAcquired)
        {
            return lease;
        }

        lease.Dispose();
        return null;
    }

    /// <summary>Whose budget a request spends: an IPv4 address, or an IPv6 address's /64 — one client is usually given
    /// a whole /64, so per full address it would have a practically unlimited budget (and each made-up key costs a
    /// store lookup).</summary>
    internal static string BudgetKey(System.Net.IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new System.Net.IPAddress(bytes).ToString() + "/64";
    }

    private static Task TooManyLookupsAsync(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return Reply.Problem(StatusCodes.Status429TooManyRequests, ProblemTypes.RateLimited,
            "Too many requests.",
            "Too many API keys this replica does not hold are being looked up for this address at once; retry after the time in Retry-After.").ToResult().ExecuteAsync(context);
    }

    private static Task TooManyAsync(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return Reply.Problem(StatusCodes.Status429TooManyRequests, ProblemTypes.RateLimited,
            "Too many requests.",
            "Too many requests without a valid API key from this address. Send a valid API key (Authorization: Bearer <api-key>); retry after the time in Retry-After.").ToResult().ExecuteAsync(context);
    }

    private static string KeyProblem(string? key, string mode) =>
        string.IsNullOrEmpty(key) ? "Send Authorization: Bearer <api-key>."
        : ApiKeyModes.Of(key) is { } keyMode && keyMode != mode
            ? $"This is a {keyMode} key; this deployment takes {ApiKeyModes.Prefix(mode)} keys."
            : "The API key is unknown, revoked or expired.";
}

/// <summary>A route's scope: requests whose key lacks it get 403 <c>insufficient-scope</c>.</summary>
public sealed class ScopeRequirement(string scope) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (!ApiKeyMiddleware.PrincipalOf(context.HttpContext).Has(scope))
        {
            return Reply.Problem(StatusCodes.Status403Forbidden, ProblemTypes.InsufficientScope, "This API key may not do this.",
                $"This operation needs the scope '{scope}'; ask your administrator for a key that has it.",
                new Dictionary<string, object?> { ["requiredScope"] = scope }).ToResult();
        }

        return await next(context);
    }
}

public static class ScopeExtensions
{
    public static TBuilder RequireScope<TBuilder>(this TBuilder builder, string scope)
        where TBuilder : IEndpointConventionBuilder => builder.AddEndpointFilter(new ScopeRequirement(scope));
}
