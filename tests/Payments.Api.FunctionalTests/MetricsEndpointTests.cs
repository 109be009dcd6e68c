using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.LocalCluster;
using Payments.Risk.Extensions;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 13 item 3: every app serves Prometheus's /metrics (OpenTelemetry's exporter) to the scraper only —
/// its bearer token, or the next one during a rotation — and, given a metrics port, there alone, with nothing else
/// on that port: the NetworkPolicy opens that port to the monitoring namespace and nothing of the app with it. Shown on
/// the risk service (the same ServiceDefaults code serves every app), over real HTTP.</summary>
public sealed class MetricsEndpointTests
{
    private const string Token = "scrape-token-0123456789abcdef0123456789";
    private const string NextToken = "scrape-token-next-0123456789abcdef01234";

    [Fact]
    public async Task WithoutAConfiguredToken_MetricsAreNotServed()
    {
        await using var app = await StartAsync(token: null, metricsPort: null);
        using var client = new HttpClient { BaseAddress = new Uri(InProcessApp.BaseUrl(app)) };
        using var answer = await client.SendAsync(Scrape(Token));
        Assert.Equal(HttpStatusCode.NotFound, answer.StatusCode);
    }

    [Fact]
    public async Task TheScrapersToken_OrTheNextOne_GetsTheMetrics_AnythingElseIs401()
    {
        await using var app = await StartAsync(Token, metricsPort: null);
        using var client = new HttpClient { BaseAddress = new Uri(InProcessApp.BaseUrl(app)) };
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode); // a request the metrics count

        foreach (var wrong in new[] { null, "not-the-token-but-long-enough-to-look-like-one", InProcessApp.Identity.Tokens[ServiceRoles.Risk] })
        {
            using var refused = await client.SendAsync(Scrape(wrong));
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Equal(ProblemTypes.Unauthorized, (await refused.JsonAsync()).GetProperty("type").GetString());
            // As every other answer of ours (the guard answers ahead of the app's middleware that sets them).
            Assert.Equal("no-store", refused.Headers.CacheControl?.ToString());
            Assert.Equal("nosniff", refused.Headers.GetValues("X-Content-Type-Options").Single());
        }

        // Spellings routing also sends to the endpoint: guarded the same (they were served without a token).
        foreach (var path in new[] { "/Metrics", "/METRICS", "/metrics/", "/Metrics/" })
        {
            using var refused = await client.SendAsync(Scrape(null, path));
            Assert.True(refused.StatusCode == HttpStatusCode.Unauthorized, $"{path}: {(int)refused.StatusCode}");
        }

        foreach (var token in new[] { Token, NextToken })
        {
            using var answer = await client.SendAsync(Scrape(token));
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            var text = await answer.Content.ReadAsStringAsync();
            Assert.Contains("# TYPE http_server_request_duration_seconds histogram", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task OnItsOwnPort_MetricsAreServedThereAlone_AndNothingElseIs()
    {
        var ports = LocalPorts.Free(2);
        var (appPort, metricsPort) = (ports[0], ports[1]);
        await using var app = await StartAsync(Token, metricsPort, $"http://127.0.0.1:{appPort};http://127.0.0.1:{metricsPort}");
        using var appClient = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{appPort}") };
        using var metricsClient = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}") };

        Assert.Equal(HttpStatusCode.OK, (await metricsClient.SendAsync(Scrape(Token))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await appClient.SendAsync(Scrape(Token))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await appClient.SendAsync(Scrape(null, "/Metrics/"))).StatusCode);
        using var elsewhere = await metricsClient.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);
        Assert.Equal("Not found.", (await elsewhere.JsonAsync()).GetProperty("title").GetString()); // a probe: "Not Found", its detail "Not found."
        Assert.Equal(HttpStatusCode.NotFound, (await metricsClient.PostAsync("/v1/assessments", new StringContent("{}"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await appClient.GetAsync("/healthz")).StatusCode);
    }

    /// <summary>The finding: every refused scrape wrote a warning, so anyone who reaches the port wrote the app's log
    /// at will. A refusal is logged at most once a minute, with the count since.</summary>
    [Fact]
    public async Task RefusedScrapes_AreLoggedAtMostOnceAMinute_WithTheirCount()
    {
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var app = await StartAsync(Token, metricsPort: null, logTo: lines);
        using var client = new HttpClient { BaseAddress = new Uri(InProcessApp.BaseUrl(app)) };
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var refused = await client.SendAsync(Scrape("not-the-token-but-long-enough-to-look-like-one"));
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        var logged = lines.Where(line => line.Contains("Metrics scrape refused", StringComparison.Ordinal)).ToArray();
        Assert.Single(logged);
        Assert.Contains("(1 refused since", logged[0], StringComparison.Ordinal);
    }

    private static HttpRequestMessage Scrape(string? token, string path = "/metrics")
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    private static async Task<WebApplication> StartAsync(string? token, int? metricsPort, string? urls = null, System.Collections.Concurrent.ConcurrentQueue<string>? logTo = null)
    {
        var builder = InProcessApp.CreateBuilder(etcd: null, "/unused/", ServiceRoles.Risk);
        if (logTo is not null)
        {
            builder.Logging.AddProvider(new LinesLogger(logTo));
        }

        if (urls is not null)
        {
            builder.WebHost.UseUrls(urls);
        }

        if (token is not null)
        {
            builder.Configuration["Metrics:Token"] = token;
            builder.Configuration["Metrics:NextToken"] = NextToken;
        }

        if (metricsPort is not null)
        {
            builder.Configuration["Metrics:Port"] = metricsPort.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        builder.Configuration["Telemetry:Exporter"] = "none";
        builder.AddServiceDefaults("payments-risk"); // as the risk service's Program.cs
        builder.AddRiskService();
        var app = builder.Build();
        app.UseRiskService();
        await app.StartAsync();
        return app;
    }

    /// <summary>Keeps every log line written (warnings and above).</summary>
    private sealed class LinesLogger(System.Collections.Concurrent.ConcurrentQueue<string> lines) : Microsoft.Extensions.Logging.ILoggerProvider, Microsoft.Extensions.Logging.ILogger
    {
        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Warning;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lines.Enqueue(formatter(state, exception));
            }
        }

        public void Dispose()
        {
        }
    }
}
