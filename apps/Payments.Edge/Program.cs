using Microsoft.AspNetCore.Http.Timeouts;
using Payments.Edge;
using Payments.ServiceDefaults;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;

// A real load balancer in front of the API replicas (YARP): round robin over replicas that are ready, a replica whose
// connections fail is taken out at once (passive check) and /readyz is probed (active check). It does not retry a
// request itself: a payment request that may have reached a dying replica is retried by the client with the same
// Idempotency-Key, which is what makes it safe (the API answers the first outcome again).
var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-edge");
var options = builder.Configuration.GetSection("Edge").Get<EdgeOptions>() ?? new EdgeOptions();
var backends = options.ParseBackends();
var cluster = new ClusterConfig
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
var route = new RouteConfig { RouteId = "api", ClusterId = "api", Match = new RouteMatch { Path = "{**path}" }, TimeoutPolicy = "proxy" };
builder.Services.AddRequestTimeouts(timeouts => timeouts.AddPolicy("proxy", options.RequestTimeout));
builder.Services.AddReverseProxy().LoadFromMemory([route], [cluster]);

var app = builder.Build();
app.UseRequestTimeouts();
app.MapHealthEndpoints(); // the edge's own liveness; matched before the catch-all route
app.MapReverseProxy();
app.Logger.LogInformation("Edge load balancer in front of {Count} API replicas: {Backends}", backends.Count, string.Join(", ", backends));
await app.RunAsync();
