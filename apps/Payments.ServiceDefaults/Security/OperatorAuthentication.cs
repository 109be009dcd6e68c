using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Payments.Domain;

namespace Payments.ServiceDefaults.Security;

/// <summary>The operator's credential for an admin API: a bearer token, and a second one accepted while the first is
/// rotated out (<c>Admin:Token</c>, <c>Admin:NextToken</c>; on Kubernetes from a Secret, locally generated per run).
/// The metrics scraper's credential has the same shape under <c>Metrics</c>.</summary>
/// <remarks>Rotation without downtime: put the new token in NextToken (both are accepted), move the operators and
/// tools to it, then make it Token and clear NextToken (docs/security.md).</remarks>
public sealed class OperatorCredential
{
    public const string Section = "Admin";

    /// <summary>Shortest token accepted: 32 characters (a generated token carries at least 190 bits).</summary>
    public const int MinTokenLength = 32;

    public OperatorCredential(string token, string? nextToken, string section = Section)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (token.Length < MinTokenLength || (!string.IsNullOrEmpty(nextToken) && nextToken.Length < MinTokenLength))
        {
            throw new InvalidOperationException(
                $"{section}:Token (and {section}:NextToken when set) must be at least {MinTokenLength} characters: its endpoints take no request without it.");
        }

        Current = new SecretDigest(token);
        Next = string.IsNullOrEmpty(nextToken) ? null : new SecretDigest(nextToken);
    }

    internal SecretDigest Current { get; }

    internal SecretDigest? Next { get; }

    /// <summary>The credential configured in <c>{section}:Token</c>/<c>{section}:NextToken</c>, or null when none is.</summary>
    public static OperatorCredential? From(IConfiguration configuration, string section = Section)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var token = configuration[$"{section}:Token"];
        return string.IsNullOrEmpty(token) ? null : new OperatorCredential(token, configuration[$"{section}:NextToken"], section);
    }

    /// <summary>"operator" or "operator (next token)", or null when the header holds neither token.</summary>
    public string? Authenticate(string authorizationHeader)
    {
        const string Scheme = "Bearer ";
        if (authorizationHeader is null || !authorizationHeader.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var presented = authorizationHeader[Scheme.Length..].Trim();
        // Both comparisons always run: which token matched must not show in the timing either.
        var isCurrent = Current.Matches(presented);
        var isNext = Next is not null && Next.Matches(presented);
        return isCurrent ? "operator" : isNext ? "operator (next token)" : null;
    }
}

/// <summary>Every admin request carries the operator's bearer token; it is compared in constant time (on SHA-256
/// digests, so neither the length nor a prefix of the token leaks through timing). A refused request is answered 401
/// problem+json and logged with where it came from, and counted against its address's budget (past it, wrong tokens
/// are answered late and 429: <see cref="OperatorFailureBudget"/>); an accepted one names its caller for the audit log. Without a
/// configured credential every admin request is refused (404 <c>admin-not-configured</c>).</summary>
/// <remarks><c>AddEndpointFilter&lt;T&gt;</c> builds the filter per request from the container, which refuses a missing
/// service for a parameter without a default: hence the <c>= null</c>, which is the admin API switched off.</remarks>
public sealed class OperatorAuthentication(ILogger<OperatorAuthentication> logger, OperatorCredential? credential = null, OperatorFailureBudget? budget = null)
    : IEndpointFilter
{
    private readonly OperatorFailureBudget failures = budget ?? OperatorFailureBudget.Shared;

    /// <summary>The <see cref="HttpContext.Items"/> key under which the caller's name is left for the audit log.</summary>
    public const string CallerItem = "admin.caller";

    /// <summary>Refusals are logged once a minute at most (<see cref="RefusalLog"/>): the filter is made per endpoint
    /// and request, so the count lives with the process.</summary>
    private static readonly RefusalLog Refusals = new();

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        return await RefusalAsync(context.HttpContext) is { } refusal ? refusal : await next(context);
    }

    /// <summary>Every request under <c>/admin</c>, matched or not, meets the operator's check before routing answers it
    /// (<see cref="UseOperatorAuthenticationForAdmin"/>): a 405 with its Allow header or a 404 answered to a caller
    /// without the token mapped the admin routes for anyone (a probe); now that caller is told 401, as on a route.
    /// It knows the caller by the connection's own address (<see cref="KeepConnectionAddress"/>).</summary>
    public static void UseOperatorAuthenticationForAdmin(Microsoft.AspNetCore.Builder.IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        Microsoft.AspNetCore.Builder.UseExtensions.Use(app, async (HttpContext context, RequestDelegate next) =>
        {
            if ((context.Request.Path.StartsWithSegments("/admin", StringComparison.OrdinalIgnoreCase)
                 || string.Equals(context.Request.Path.Value, "/openapi/admin.json", StringComparison.OrdinalIgnoreCase))
                && await context.RequestServices.GetRequiredService<OperatorAuthentication>().RefusalAsync(context) is { } refusal)
            {
                await refusal.ExecuteAsync(context);
                return;
            }

            await next(context);
        });
    }

    /// <summary>Keeps the connection's own address for the operator's check, before forwarded headers replace it: taken
    /// from X-Forwarded-For, which a loopback caller (kubectl port-forward's) is trusted to send, a guesser reset its
    /// budget of wrong tokens with each new value and the audit named whatever address it wrote (a probe). The admin
    /// API is reached inside the cluster, never through the edge that would forward a client's address.</summary>
    public static void KeepConnectionAddress(Microsoft.AspNetCore.Builder.IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        Microsoft.AspNetCore.Builder.UseExtensions.Use(app, (HttpContext context, RequestDelegate next) =>
        {
            context.Items[ConnectionAddressItem] = context.Connection.RemoteIpAddress;
            return next(context);
        });
    }

    private const string ConnectionAddressItem = "operator.connection-address";

    private static System.Net.IPAddress? ConnectionAddress(HttpContext http) =>
        http.Items.TryGetValue(ConnectionAddressItem, out var kept) ? kept as System.Net.IPAddress : http.Connection.RemoteIpAddress;

    /// <summary>The answer to a request without the operator's token (or to the admin API switched off), or null when the
    /// caller is the operator (named in <see cref="CallerItem"/>).</summary>
    public async ValueTask<IResult?> RefusalAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (!AskedForAdmin(http))
        {
            // Reached through dot segments (say "/v1/../admin/..."): Kestrel resolves them before routing, so a front
            // door that routes only /v1 by prefix and forwards the path as sent would let the admin API through it.
            return Results.Problem(title: "Not found.", detail: "No such route.", statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.NotFound);
        }

        if (credential is null)
        {
            return Results.Problem("This service's admin API is off: no operator token is configured (Admin:Token).",
                statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.AdminNotConfigured);
        }

        var remote = ConnectionAddress(http);
        var caller = credential.Authenticate(http.Request.Headers.Authorization.ToString());
        if (caller is null && failures.RetryAfter(remote) is { } wait)
        {
            // Over its budget of refused tokens: each further wrong one is answered late (a sequential guesser gets a
            // guess a second at most) and 429. The right token is never held back: operators behind one address
            // (kubectl port-forward, a NAT) are not locked out by a script still sending a token rotated out.
            failures.Failed(remote);
            // Counted and said like any refusal: a guesser over its budget went unlogged, however many it sent (a probe).
            if (Refusals.ShouldLog(out var over))
            {
                logger.LogWarning("Admin request refused: {Method} {Path} from {Remote} without a valid operator token, over its budget of wrong tokens ({Refused} refused since the last such line)",
                    RefusalLog.Shown(http.Request.Method), RefusalLog.Shown(http.Request.Path.Value), remote, over);
            }

            await failures.DelayRefusalAsync(http.RequestAborted);
            http.Response.Headers.RetryAfter = Math.Ceiling(wait.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Results.Problem("Too many requests with a wrong operator token from this address; the admin API needs the operator's token.",
                statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests.", type: ProblemTypes.RateLimited);
        }

        if (caller is null)
        {
            failures.Failed(remote);
            if (Refusals.ShouldLog(out var refused))
            {
                logger.LogWarning("Admin request refused: {Method} {Path} from {Remote} without a valid operator token ({Refused} refused since the last such line)",
                    RefusalLog.Shown(http.Request.Method), RefusalLog.Shown(http.Request.Path.Value), remote, refused);
            }

            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Results.Problem("The admin API needs the operator's token: Authorization: Bearer <token>.",
                statusCode: StatusCodes.Status401Unauthorized, title: "Valid credentials are required.", type: ProblemTypes.Unauthorized);
        }

        http.Items[CallerItem] = $"{caller} from {remote}";
        return null;
    }

    /// <summary>Whether the request target, as sent, names an admin route (origin form, or absolute form's path), with
    /// no dot segment in it.</summary>
    private static bool AskedForAdmin(HttpContext http)
    {
        var raw = http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(raw))
        {
            return true; // no raw target (an in-memory test server): the routed path is all there is
        }

        raw = raw.Split('?', 2)[0]; // "/admin?x=1" is /admin, which a caller without the token is refused (401) as any path under it
        var scheme = raw.StartsWith('/') ? -1 : raw.IndexOf("://", StringComparison.Ordinal);
        var path = raw.StartsWith('/') ? raw : scheme < 0 ? string.Empty : raw.IndexOf('/', scheme + 3) is var slash and >= 0 ? raw[slash..] : "/";
        // The admin routes, and the API's OpenAPI document of them (/openapi/admin.json), which this filter guards too.
        return (path.StartsWith("/admin/", StringComparison.OrdinalIgnoreCase) || string.Equals(path, "/admin", StringComparison.OrdinalIgnoreCase)
                || path.StartsWith("/openapi/", StringComparison.OrdinalIgnoreCase))
            && !path.Contains("/.", StringComparison.Ordinal) && !path.Contains("%2e", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The authenticated operator of this request, for the audit log.</summary>
    public static string CallerOf(HttpContext context) => context?.Items[CallerItem] as string ?? "unknown";
}
