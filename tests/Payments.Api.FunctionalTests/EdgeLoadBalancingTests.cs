using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
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

    private const int MaxRounds = 100;

    private static readonly TimeSpan RoundPause = TimeSpan.FromMilliseconds(300);
}
