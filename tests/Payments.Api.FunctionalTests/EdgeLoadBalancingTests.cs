using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>The edge's own proxy pipeline balances: the real YARP edge in front of two real HTTP backends that say
/// who answered.</summary>
public sealed class EdgeLoadBalancingTests : IAsyncLifetime
{
    private const int Requests = 30;
    private readonly List<WebApplication> backends = [];
    private WebApplication? edge;

    public async Task InitializeAsync()
    {
        foreach (var name in new[] { "a", "b" })
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            var backend = builder.Build();
            backend.MapGet("/readyz", () => Results.Ok()); // the edge's active probe
            backend.MapGet("/who", () => Results.Text(name));
            backend.MapGet("/slow", async (CancellationToken cancellationToken) => // answers only after its caller gave up
            {
                await Task.Delay(TimeSpan.FromSeconds(30), cancellationToken);
                return Results.Text(name);
            });
            await backend.StartAsync();
            backends.Add(backend);
        }

        edge = await EdgeHost.StartAsync([.. backends.Select(backend => new Uri(InProcessApp.BaseUrl(backend)))]);
    }

    public async Task DisposeAsync()
    {
        await InProcessApp.StopAsync(edge);
        foreach (var backend in backends)
        {
            await InProcessApp.StopAsync(backend);
        }
    }

    /// <summary>Round robin, as configured: consecutive requests alternate between the replicas. (A pipeline without
    /// YARP's load-balancing step picks at random: 30 alternating answers by chance is a 1-in-500,000,000 event, so
    /// even <see cref="MaxRounds"/> tries leave it at about 1 in 5,000,000.) Rounds until one alternates, a pause
    /// apart and at most <see cref="MaxRounds"/>, because on a loaded machine (CI runs suites in parallel) the edge's
    /// health probe can time out and take a replica out until its next probe: a round that met that is not the
    /// balancing's fault, and rounds run back to back all met the same probe (CI failed with 5 of them).</summary>
    [Fact]
    public async Task ConsecutiveRequests_AlternateBetweenTheReplicas()
    {
        using var client = EdgeHost.Client(edge!, apiKey: null);
        var rounds = new List<string>();
        for (var round = 0; round < MaxRounds; round++)
        {
            var answers = new List<string>();
            for (var request = 0; request < Requests; request++)
            {
                answers.Add(await client.GetStringAsync("/who"));
            }

            rounds.Add(string.Concat(answers));
            if (answers.Zip(answers.Skip(1)).All(pair => pair.First != pair.Second) && answers.Count(answer => answer == "a") == Requests / 2)
            {
                return;
            }

            await Task.Delay(RoundPause); // a probe interval's share: a replica taken out comes back at its next probe
        }

        Assert.Fail($"No round of {Requests} requests alternated between the replicas: {string.Join(", ", rounds.TakeLast(5))}");
    }

    /// <summary>Requests that fail through the caller's fault — a header value that is not ASCII (which the proxy's
    /// client cannot send), a client that gives up before the answer — are not the replicas' failures: the first is
    /// answered 400 problem+json by the edge, and neither takes a replica out. (YARP's own passive policy counted
    /// both: a dozen such requests from anyone took both replicas out.)</summary>
    [Fact]
    public async Task CallersFaults_AreNotCountedAgainstTheReplicas()
    {
        using var utf8 = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => System.Text.Encoding.UTF8 })
        {
            BaseAddress = new Uri(InProcessApp.BaseUrl(edge!)),
        };
        for (var request = 0; request < CallerFaults; request++)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, "/who");
            message.Headers.TryAddWithoutValidation("X-Note", "caf\u00e9 \u20ac");
            using var response = await utf8.SendAsync(message);
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        using var client = EdgeHost.Client(edge!, apiKey: null);
        for (var request = 0; request < CallerFaults; request++)
        {
            using var givenUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetAsync("/slow", givenUp.Token));
        }

        var lookup = edge!.Services.GetRequiredService<Yarp.ReverseProxy.IProxyStateLookup>();
        Assert.True(lookup.TryGetCluster("api", out var cluster));
        // The edge notes a request's outcome once its forwarding ends, just after the client's cancellation: bounded wait,
        // failing if forwarding has not ended (the health read below would then judge outcomes not yet noted).
        var waited = System.Diagnostics.Stopwatch.StartNew();
        int forwarding;
        while ((forwarding = cluster.Destinations.Values.Sum(destination => destination.ConcurrentRequestCount)) > 0)
        {
            Assert.True(waited.Elapsed < ForwardingEndBound, $"{forwarding} requests still forwarded after {ForwardingEndBound.TotalSeconds} s");
            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }

        Assert.All(cluster.Destinations.Values, destination =>
            Assert.NotEqual(Yarp.ReverseProxy.Model.DestinationHealth.Unhealthy, destination.Health.Passive));
    }

    /// <summary>Of each kind: more than YARP's policy needed (10 requests, 30 % failed) to take both replicas out.</summary>
    private const int CallerFaults = 24;

    private const int MaxRounds = 100;

    /// <summary>How long the edge may take to end forwarding the requests their callers gave up on.</summary>
    private static readonly TimeSpan ForwardingEndBound = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan RoundPause = TimeSpan.FromMilliseconds(300);
}
