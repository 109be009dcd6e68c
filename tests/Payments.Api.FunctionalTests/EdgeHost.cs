extern alias Edge;

using Edge::Payments.Edge.Extensions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Payments.Api.FunctionalTests;

/// <summary>The real YARP edge, in process on real HTTP, in front of API replicas: what a merchant reaches.</summary>
public static class EdgeHost
{
    public static Task<WebApplication> StartAsync(params Uri[] backends) => StartAsync(requestTimeout: null, backends);

    /// <param name="requestTimeout">The edge's bound per proxied request (its default otherwise).</param>
    public static Task<WebApplication> StartAsync(TimeSpan? requestTimeout, params Uri[] backends) => StartAsync(requestTimeout, null, backends);

    /// <param name="requestTimeout">The edge's bound per proxied request (its default otherwise).</param>
    /// <param name="settings">More <c>Edge</c> settings (name without the section, value).</param>
    public static async Task<WebApplication> StartAsync(TimeSpan? requestTimeout, IReadOnlyDictionary<string, string>? settings, params Uri[] backends)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration["Edge:Backends"] = string.Join(',', backends.Select(backend => backend.ToString()));
        if (requestTimeout is { } timeout)
        {
            builder.Configuration["Edge:RequestTimeout"] = timeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture);
        }

        foreach (var (name, value) in settings ?? new Dictionary<string, string>())
        {
            builder.Configuration["Edge:" + name] = value;
        }

        builder.AddEdge();
        var edge = builder.Build();
        edge.UseEdge();
        await edge.StartAsync();
        return edge;
    }

    /// <summary>A merchant's client through its own edge in front of <paramref name="backend"/> (a test's replica).</summary>
    public static async Task<EdgeClient> ClientThroughAsync(Uri backend, string apiKey) =>
        new(await StartAsync(backend), apiKey);

    public static Uri Address(WebApplication edge) => new(Payments.Testing.InProcessApp.BaseUrl(edge));

    public static HttpClient Client(WebApplication edge, string? apiKey)
    {
        var client = new HttpClient { BaseAddress = Address(edge), Timeout = TimeSpan.FromSeconds(30) };
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", apiKey);
        }

        return client;
    }
}

/// <summary>A client through an edge that lives as long as the client.</summary>
public sealed class EdgeClient(WebApplication edge, string apiKey) : IAsyncDisposable
{
    public HttpClient Http { get; } = EdgeHost.Client(edge, apiKey);

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Payments.Testing.InProcessApp.StopAsync(edge);
    }
}
