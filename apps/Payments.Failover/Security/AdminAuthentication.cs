using Payments.Domain;
using Payments.ServiceDefaults.Security;

namespace Payments.Failover.Security;

/// <summary>Every admin request carries the operator's bearer token; it is compared in constant time (on SHA-256
/// digests, so neither the length nor a prefix of the token leaks through timing). A refused request is answered 401
/// problem+json and logged with where it came from; an accepted one names its caller for the audit log.</summary>
internal sealed class AdminAuthentication(AdminOptions options, ILogger<AdminAuthentication> logger) : IEndpointFilter
{
    /// <summary>The <see cref="HttpContext.Items"/> key under which the caller's name is left for the audit log.</summary>
    public const string CallerItem = "admin.caller";

    private readonly SecretDigest current = new(options.Token);
    private readonly SecretDigest? next = options.NextToken.Length > 0 ? new SecretDigest(options.NextToken) : null;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var http = context.HttpContext;
        var caller = Authenticate(http.Request.Headers.Authorization.ToString());
        if (caller is null)
        {
            logger.LogWarning("Admin request refused: {Method} {Path} from {Remote} without a valid operator token",
                http.Request.Method, http.Request.Path.Value, http.Connection.RemoteIpAddress);
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Results.Problem("The admin API needs the operator's token: Authorization: Bearer <token>.",
                statusCode: StatusCodes.Status401Unauthorized, type: ProblemTypes.Unauthorized);
        }

        http.Items[CallerItem] = $"{caller} from {http.Connection.RemoteIpAddress}";
        return await next(context);
    }

    /// <summary>"operator" or "operator (next token)", or null when the header holds neither token.</summary>
    private string? Authenticate(string header)
    {
        const string Scheme = "Bearer ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var presented = header[Scheme.Length..].Trim();
        // Both comparisons always run: which token matched must not show in the timing either.
        var isCurrent = current.Matches(presented);
        var isNext = next is not null && next.Matches(presented);
        return isCurrent ? "operator" : isNext ? "operator (next token)" : null;
    }
}
