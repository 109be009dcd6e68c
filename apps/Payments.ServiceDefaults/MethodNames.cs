using System.Collections.Frozen;
using Microsoft.AspNetCore.Http;
using Payments.Domain;

namespace Payments.ServiceDefaults;

/// <summary>Request methods are case-sensitive (RFC 9110 §9.1), but ASP.NET Core's routing matches them ignoring case:
/// <c>post</c> ran a POST and <c>get</c> a GET, so a proxy or firewall rule written for POST was gone around by spelling
/// it otherwise. A method these servers do not implement — any but the standard ones as spelled there, and CONNECT (no
/// tunnels here) — is 501 <c>method-not-implemented</c> for every resource, as RFC 9110 §9.1 says an origin server
/// should answer a method it does not recognise; nothing else runs for it. A standard method a route does not take
/// stays 405 with that route's Allow.</summary>
public static class MethodNames
{
    private static readonly FrozenSet<string> Implemented =
        FrozenSet.Create(StringComparer.Ordinal, "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE");

    /// <summary>Whether <paramref name="method"/> is one these servers implement, spelled as RFC 9110 defines it.</summary>
    public static bool IsImplemented(string method) => Implemented.Contains(method);

    /// <summary>Middleware: 501 problem+json for a method <see cref="IsImplemented"/> refuses.</summary>
    public static Task RefuseUnimplementedAsync(HttpContext context, RequestDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        return IsImplemented(context.Request.Method)
            ? next(context)
            : Results.Problem(
                "Request methods are case-sensitive; this server implements GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS and TRACE, spelled so (the routes say which they take).",
                statusCode: StatusCodes.Status501NotImplemented, type: ProblemTypes.MethodNotImplemented, title: "This method is not implemented here.")
                .ExecuteAsync(context);
    }
}
