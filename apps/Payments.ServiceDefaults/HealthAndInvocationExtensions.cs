using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Payments.ServiceDefaults.Security;

namespace Payments.ServiceDefaults;

public static class HealthAndInvocationExtensions
{
    /// <summary><c>/healthz</c>: the process serves requests (never depends on anything a restart would not fix).
    /// <c>/readyz</c>: the last answer of <paramref name="isReady"/>, which a background loop asks every
    /// <see cref="ReadinessProbe.Interval"/> (no check: always ready). A flood of <c>/readyz</c> requests costs no
    /// dependency a single call. <c>/servingz</c>: <paramref name="isServing"/> (no check: as <c>/healthz</c>) — what the
    /// pod needs to answer requests itself, without what <c>/readyz</c> adds about its region or dependencies: the
    /// kubelet's readiness for apps whose <c>/readyz</c> follows the region (the global load balancer's probe), since a
    /// pod never ready held every rollout and drain in the standby region.</summary>
    public static void MapHealthEndpoints(
        this IEndpointRouteBuilder app, Func<IServiceProvider, CancellationToken, Task<bool>>? isReady = null, Func<IServiceProvider, bool>? isServing = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        var probe = isReady is null ? null : ReadinessProbe.Start(app.ServiceProvider, isReady);
        // Open: the kubelet probes without credentials, and the answers reveal nothing.
        app.MapGet("/healthz", () => Results.Text("ok")).ExcludeFromDescription().AllowWithoutIdentity();
        app.MapGet("/readyz", () =>
            probe is null || probe.IsReady
                ? Results.Text("ready")
                : Results.Text("not ready: a dependency is unreachable", statusCode: StatusCodes.Status503ServiceUnavailable))
            .ExcludeFromDescription()
            .AllowWithoutIdentity();
        app.MapGet("/servingz", (HttpContext context) =>
            isServing is null || isServing(context.RequestServices)
                ? Results.Text("serving")
                : Results.Text("not serving yet", statusCode: StatusCodes.Status503ServiceUnavailable))
            .ExcludeFromDescription()
            .AllowWithoutIdentity();
    }

    /// <summary>A typed HTTP client for another DaprPayments service: on Kubernetes <paramref name="baseUrl"/> is the
    /// Dapr sidecar's invocation URL (<c>http://localhost:3500/v1.0/invoke/&lt;app-id&gt;/method/</c>), locally the
    /// service's own address. Every call is bounded by <paramref name="timeout"/> and carries this app's identity for
    /// the <paramref name="targetRole"/> service (<see cref="ServiceTokenHandler"/>).</summary>
    public static void AddInvocationClient<TService, TImplementation>(
        this IServiceCollection services, string baseUrl, TimeSpan timeout, ServiceIdentityOptions identity, string targetRole)
        where TService : class
        where TImplementation : class, TService
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(baseUrl);
        var headers = ServiceTokenHandler.HeadersFor(identity, targetRole);
        services.AddHttpClient<TService, TImplementation>(http =>
        {
            http.BaseAddress = new Uri(baseUrl.EndsWith('/') ? baseUrl : baseUrl + "/"); // relative routes append to it
            http.Timeout = timeout;
        }).AddHttpMessageHandler(() => new ServiceTokenHandler(headers));
    }
}
