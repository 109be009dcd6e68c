using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Payments.Local.Hosting;

namespace Payments.Local.SystemTests;

/// <summary>Issue 13 item 3: every metric the chart's alerts (templates/prometheusrule.yaml) and its Grafana
/// dashboard (dashboards/daprpayments.json) name is exported by the running apps, as Prometheus scrapes them: each
/// app's <c>/metrics</c> with the scraper's token (and refused without it). A renamed instrument, a unit that changes
/// the exported name, or a query written from memory fails here instead of showing an empty panel or an alert that
/// can never fire.</summary>
internal static partial class MetricsScrape
{
    private static readonly TimeSpan ScrapeTimeout = TimeSpan.FromSeconds(10);

    public static async Task AssertEveryMonitoredMetricIsExportedAsync(IEnumerable<LocalSystem> systems, CancellationToken cancellationToken)
    {
        var exported = new HashSet<string>(StringComparer.Ordinal);
        var scraped = new List<string>();
        foreach (var system in systems)
        {
            // The public entrance serves no metrics, and does not tell the scraper's token from another (a review).
            foreach (var token in new[] { system.MetricsToken, "not-the-token" })
            {
                using var edge = new HttpClient { BaseAddress = system.ApiBaseAddress, Timeout = ScrapeTimeout };
                using var probe = new HttpRequestMessage(HttpMethod.Get, "/metrics");
                probe.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var answer = await edge.SendAsync(probe, cancellationToken);
                Assert.True(answer.StatusCode == HttpStatusCode.NotFound, $"the edge answered {answer.StatusCode} to /metrics");
            }

            foreach (var (app, address) in system.AppAddresses())
            {
                using var client = new HttpClient { BaseAddress = address, Timeout = ScrapeTimeout };
                using (var refused = await client.GetAsync("/metrics", cancellationToken))
                {
                    Assert.True(refused.StatusCode == HttpStatusCode.Unauthorized, $"{app}: /metrics without the scraper's token answered {refused.StatusCode}");
                }

                using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", system.MetricsToken);
                using var response = await client.SendAsync(request, cancellationToken);
                Assert.True(response.IsSuccessStatusCode, $"{app}: /metrics answered {response.StatusCode}");
                var text = await response.Content.ReadAsStringAsync(cancellationToken);
                exported.UnionWith(text.Split('\n').Where(line => line.Length > 0 && line[0] != '#').Select(line => SampleName().Match(line).Value));
                scraped.Add(app);
            }
        }

        Assert.Contains("failover", scraped);
        Assert.Contains(LocalSystem.EtcdMaintenanceApp, scraped); // the storage metrics come from it alone
        var referenced = ReferencedMetrics();
        Assert.Contains("payments_terminal_total", referenced); // the extraction itself works
        var missing = referenced.Where(name => !exported.Contains(name)).Order(StringComparer.Ordinal).ToArray();
        Assert.True(missing.Length == 0,
            $"named by the chart's alerts or dashboard but exported by no app: {string.Join(", ", missing)}\n"
            + $"exported: {string.Join(", ", exported.Where(name => name.StartsWith("payments_", StringComparison.Ordinal) || name.StartsWith("http_server", StringComparison.Ordinal)).Order(StringComparer.Ordinal))}");
    }

    /// <summary>The metric names in the alert rules and the dashboard's queries (record names, with colons, are not
    /// metrics the apps export and do not match).</summary>
    private static HashSet<string> ReferencedMetrics()
    {
        var chart = Path.Combine(RepositoryRoot(), "charts", "daprpayments");
        var rules = File.ReadAllText(Path.Combine(chart, "templates", "prometheusrule.yaml"));
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(chart, "dashboards", "daprpayments.json")));
        var queries = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(panel => panel.GetProperty("targets").EnumerateArray())
            .Select(target => target.GetProperty("expr").GetString()!);
        return [.. queries.Append(rules).SelectMany(text => MetricName().Matches(text).Select(match => match.Value))];
    }

    internal static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (Directory.Exists(Path.Combine(directory.FullName, "charts", "daprpayments")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("charts/daprpayments not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*")]
    private static partial Regex SampleName();

    [GeneratedRegex(@"(?<![\w:])(?:payments|http_server)_[a-z0-9_]+")]
    private static partial Regex MetricName();
}
