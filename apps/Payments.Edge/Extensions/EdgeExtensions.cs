using Microsoft.AspNetCore.Http.Timeouts;
using Payments.ServiceDefaults;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;

namespace Payments.Edge.Extensions;

/// <summary>A real load balancer in front of the API replicas (YARP): round robin over replicas that are ready, a
/// replica whose connections fail is taken out at once (passive check) and /readyz is probed (active check). It does
/// not retry a request itself: a payment request that may have reached a dying replica is retried by the client with
/// the same Idempotency-Key, which is what makes it safe (the API answers the first outcome again).</summary>
public static class EdgeExtensions
{
    private const string ProxyTimeoutPolicy = "proxy";

    public static void AddEdge(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Configuration.GetSection("Edge").Get<EdgeOptions>() ?? new EdgeOptions();
        var backends = options.ParseBackends();
        builder.Services.AddSingleton(options);
        var route = new RouteConfig
        {
            RouteId = "api", ClusterId = "api", Match = new RouteMatch { Path = "{**path}" }, TimeoutPolicy = ProxyTimeoutPolicy,
        };
        builder.Services.AddRequestTimeouts(timeouts => timeouts.AddPolicy(ProxyTimeoutPolicy, options.RequestTimeout));
        builder.Services.AddReverseProxy().LoadFromMemory([route], [Cluster(options, backends)]);
    }

    public static void UseEdge(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var backends = app.Services.GetRequiredService<EdgeOptions>().ParseBackends();
        app.UseRequestTimeouts();
        app.MapHealthEndpoints(); // the edge's own liveness; matched before the catch-all route
        app.MapReverseProxy();
        app.Logger.LogInformation("Edge load balancer in front of {Count} API replicas: {Backends}", backends.Count, string.Join(", ", backends));
    }

    private static ClusterConfig Cluster(EdgeOptions options, IReadOnlyList<Uri> backends) => new()
    {
        ClusterId = "api",
        LoadBalancingPolicy = LoadBalancingPolicies.RoundRobin,
        HealthCheck = new HealthCheckConfig
        {
            AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyOrPanic,
            Active = new ActiveHealthCheckConfig
            {
                Enabled = true,
                Interval = options.ProbeInterval,
                Timeout = options.ProbeTimeout,
                Policy = HealthCheckConstants.ActivePolicy.ConsecutiveFailures,
                Path = "/readyz",
            },
            Passive = new PassiveHealthCheckConfig
            {
                Enabled = true,
                Policy = HealthCheckConstants.PassivePolicy.TransportFailureRate,
                ReactivationPeriod = options.ReactivationPeriod,
            },
        },
        // One failed probe is enough to stop sending payments to a replica; a live one is back within a probe interval.
        Metadata = new Dictionary<string, string> { ["ConsecutiveFailuresHealthPolicy.Threshold"] = "1" },
        Destinations = backends.Select((uri, index) => (uri, index))
            .ToDictionary(pair => $"api-{pair.index}", pair => new DestinationConfig { Address = pair.uri.ToString() }),
    };
}
