using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Payments.Domain;

namespace Payments.ServiceDefaults.Security;

/// <summary>Inbound service identity for the internal apps (ledger, risk, orchestrator): deny by default. Every
/// request needs the app token its sidecar presents (and daprd's caller id), or without a sidecar a caller's own token
/// (<see cref="ServiceIdentityOptions.CallerTokens"/>); an endpoint then serves only the roles it names (<see cref="RequireCallers{T}"/>);
/// an endpoint that names none serves nobody. Only endpoints marked open (the health probes, which the kubelet calls
/// without any credential) skip the check.</summary>
public static class ServiceIdentityExtensions
{
    public const string TokenHeader = "dapr-api-token";
    public const string CallerHeader = "dapr-caller-app-id";

    private const string RoleItem = "service.caller.role";

    /// <summary>The largest request body an internal app reads.</summary>
    public const long MaxRequestBodyBytes = 1 << 20;

    /// <summary>Registers this app's identity, which must carry an app token (checked here, at start).</summary>
    public static ServiceIdentityOptions AddServiceIdentity(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = ServiceIdentityOptions.From(builder.Configuration).ValidateForServing();
        builder.Services.AddSingleton(options);
        // Kestrel's default admits 30 MB, which an internal caller never needs (the largest body, a ledger batch of
        // at most 25 transfers, is a few KiB): a bigger one is refused before it is read, 413 problem+json.
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = MaxRequestBodyBytes;
            kestrel.AddServerHeader = false; // says nothing of what serves, as the public API does not
        });
        // Numbers as JSON numbers only, as the public API reads them: an amount sent as "5" is a caller's mistake. A
        // field named twice is refused ({"kind":"single","kind":"void"} was read as the last: what another parser on
        // the way reads as the first). Unknown fields are still read past: a caller one version ahead during a rolling
        // upgrade may send one.
        builder.Services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
            json.SerializerOptions.AllowDuplicateProperties = false;
        });
        return options;
    }

    /// <summary>The check itself, for every endpoint of the app (call before mapping them; routing has run). Every
    /// internal app calls it first, so it also installs the problem+json answers (<see cref="InternalProblems"/>).</summary>
    public static void UseServiceIdentity(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseInternalProblems();
        var options = app.Services.GetRequiredService<ServiceIdentityOptions>();
        var token = new SecretDigest(options.AppToken);
        var roles = options.Callers.Count == 0 ? null : options.Callers.ToDictionary(pair => pair.Value, pair => pair.Key, StringComparer.Ordinal);
        var callerTokens = options.CallerTokens.Select(pair => (Role: pair.Key, Token: new SecretDigest(pair.Value))).ToArray();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Payments.ServiceIdentity");
        app.Use(async (context, next) =>
        {
            var endpoint = context.GetEndpoint();
            if (endpoint?.Metadata.GetMetadata<OpenEndpoint>() is not null)
            {
                await next(context);
                return;
            }

            var callerId = context.Request.Headers[CallerHeader].ToString();
            var presented = context.Request.Headers[TokenHeader].ToString();
            var tokenRole = callerTokens.Length == 0 ? null : RoleOf(callerTokens, presented);
            if (callerTokens.Length == 0 ? !token.Matches(presented) : tokenRole is null)
            {
                Log.Refused(logger, "no valid app token", context.Request.Method, context.Request.Path.Value, $"unproven, claiming '{callerId}'", context.Connection.RemoteIpAddress?.ToString());
                await Results.Problem("This internal endpoint needs the app token that its Dapr sidecar presents (dapr-api-token).",
                    statusCode: StatusCodes.Status401Unauthorized, title: "Valid credentials are required.", type: ProblemTypes.Unauthorized).ExecuteAsync(context);
                return;
            }

            if (endpoint is null || (endpoint is not RouteEndpoint && endpoint.Metadata.Count == 0))
            {
                // Authenticated, and no route of ours: none at all (404), or the framework's own refusal of a route's
                // wrong method (405) or wrong Content-Type (415) — an endpoint without a route or any metadata, which
                // runs no handler of ours and was answered 403. Any other endpoint still needs its named roles.
                await next(context);
                return;
            }

            // Direct calls: the token says who calls. Through daprd: the id it stamped after mutual TLS.
            var role = tokenRole ?? (roles is null ? callerId : roles.GetValueOrDefault(callerId));
            var allowed = endpoint.Metadata.GetMetadata<ServiceCallers>();
            if (role is null || allowed is null || !allowed.Roles.Contains(role, StringComparer.Ordinal))
            {
                // Named by what was proven: the role whose token was presented (direct calls), else the id daprd stamped.
                // The header alone is a claim: a log and an answer naming it blamed whichever app the caller chose.
                var who = tokenRole is not null ? $"The {tokenRole} role" : $"App '{callerId}'";
                Log.Refused(logger, "caller not allowed here", context.Request.Method, context.Request.Path.Value, tokenRole is not null ? $"role {tokenRole}, claiming '{callerId}'" : callerId, context.Connection.RemoteIpAddress?.ToString());
                await Forbidden($"{who} may not call {context.Request.Method} {context.Request.Path}.").ExecuteAsync(context);
                return;
            }

            context.Items[RoleItem] = role;
            await next(context);
        });
    }

    /// <summary>The role whose token was presented, or null. Every token is compared (in constant time), so the time
    /// taken does not tell which matched.</summary>
    private static string? RoleOf((string Role, SecretDigest Token)[] callerTokens, string presented)
    {
        string? found = null;
        foreach (var (role, digest) in callerTokens)
        {
            if (digest.Matches(presented))
            {
                found ??= role;
            }
        }

        return found;
    }

    /// <summary>The endpoint (or group) serves only callers in these roles.</summary>
    public static T RequireCallers<T>(this T builder, params string[] roles)
        where T : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new ServiceCallers(roles));
    }

    /// <summary>Open to anyone: only health probes, which carry no credential and reveal nothing.</summary>
    public static T AllowWithoutIdentity<T>(this T builder)
        where T : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(OpenEndpoint.Instance);
    }

    /// <summary>The role of the authenticated caller of this request (set by <see cref="UseServiceIdentity"/>).</summary>
    public static string CallerRole(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items[RoleItem] as string ?? throw new InvalidOperationException("The request passed no service identity check.");
    }

    /// <summary>403 problem+json: the caller is known but the operation is not one its role may perform.</summary>
    public static IResult Forbidden(string detail) =>
        Results.Problem(detail, statusCode: StatusCodes.Status403Forbidden, type: ProblemTypes.Forbidden, title: "Not allowed for this caller.");

    /// <summary>Endpoint metadata: the roles an endpoint serves.</summary>
    public sealed record ServiceCallers(IReadOnlyList<string> Roles);

    /// <summary>Endpoint metadata: no identity needed.</summary>
    public sealed class OpenEndpoint
    {
        public static readonly OpenEndpoint Instance = new();

        private OpenEndpoint()
        {
        }
    }

    private static class Log
    {
        /// <summary>Once a minute at most, the path and the claimed caller cut short (<see cref="RefusalLog"/>).</summary>
        private static readonly RefusalLog Refusals = new();

        public static void Refused(ILogger logger, string reason, string method, string? path, string caller, string? remote)
        {
            if (Refusals.ShouldLog(out var refused))
            {
                logger.LogWarning("Internal request refused ({Reason}): {Method} {Path} by {Caller} from {Remote} ({Refused} refused since the last such line)",
                    reason, RefusalLog.Shown(method), RefusalLog.Shown(path), RefusalLog.Shown(caller), remote, refused);
            }
        }
    }
}
