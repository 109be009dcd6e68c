using System.Text.Json;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace Payments.Deploy.Tests;

/// <summary>Issue 13 item 3: monitoring as Helm users expect it — off unless asked for (its kinds exist only with the
/// Prometheus Operator); then scrapers that present the token the apps check, on the metrics port only; alerts that
/// promtool accepts and whose unit tests pass, each with a runbook that exists; and a dashboard for Grafana's sidecar.
/// That every metric the alerts and the dashboard name is really exported is checked by scraping the running apps
/// (Payments.Local.SystemTests, MetricsScrape).</summary>
public sealed class MonitoringTests
{
    private const string Scenario = "ci/monitoring-values.yaml";

    private static readonly string[] RequiredAlerts =
    [
        "DaprPaymentsCompensationFailed", "DaprPaymentsFailedByPlatformFaults", "DaprPaymentsStuck", "DaprPaymentsRegionNotWritable",
        "DaprPaymentsNoWritableRegion", "DaprPaymentsReplicationLagHigh", "DaprPaymentsEtcdNearQuota", "DaprPaymentsJournalArchivalStalled",
        "DaprPaymentsEtcdCertificateExpiring", "DaprPaymentsEtcdMemberDown",
        "DaprPaymentsApiErrorBudgetBurnFast", "DaprPaymentsApiErrorBudgetBurnSlow",
    ];

    [Fact]
    public async Task Monitoring_IsOffByDefault()
    {
        var objects = await ChartTests.RenderAsync(null);
        Assert.Empty(objects.OfType<PrometheusRule>());
        Assert.Empty(objects.OfType<ServiceMonitor>());
        Assert.Empty(objects.OfType<PodMonitor>());
        Assert.DoesNotContain(objects.OfType<V1ConfigMap>(), map => map.Metadata.Name.EndsWith("-dashboard", StringComparison.Ordinal));
    }

    [Fact]
    public async Task EveryRequiredAlert_IsThere_WithASeverity_AndARunbookThatExists()
    {
        var rule = Assert.Single((await ChartTests.RenderAsync(Scenario + "+../../tests/Payments.Deploy.Tests/PromRules/no-runbook-url.yaml")).OfType<PrometheusRule>());
        var alerts = rule.Spec.Groups.SelectMany(group => group.Rules).Where(candidate => candidate.Alert is not null).ToArray();
        Assert.Empty(RequiredAlerts.Except(alerts.Select(alert => alert.Alert!)));
        foreach (var alert in alerts)
        {
            Assert.Contains(alert.Labels?["severity"], new[] { "warning", "critical" });
            var runbook = alert.Annotations?["runbook"] ?? string.Empty;
            var file = runbook.Split(' ')[0];
            Assert.StartsWith("docs/runbooks/", file, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(HelmTool.RepositoryRoot, file)), $"{alert.Alert}: {file} does not exist");
        }
    }

    /// <summary><c>promtool check rules</c> and <c>promtool test rules</c> (PromRules/alerts-test.yaml: each alert
    /// fires on what it is for and stays quiet on its look-alike), on the rules as the chart renders them.</summary>
    [Fact]
    public async Task TheAlertRules_PassPromtoolsCheck_AndTheirUnitTests()
    {
        var spec = (await RenderRuleAsync("--set", "monitoring.runbookBaseUrl=https://runbooks.example/dp"))["spec"];

        var work = Directory.CreateTempSubdirectory("daprpayments-rules-");
        try
        {
            using (var writer = new StreamWriter(Path.Combine(work.FullName, "rules.yaml")))
            {
                new YamlStream(new YamlDocument(spec)).Save(writer, assignAnchors: false);
            }

            File.Copy(Path.Combine(HelmTool.RepositoryRoot, "tests", "Payments.Deploy.Tests", "PromRules", "alerts-test.yaml"), Path.Combine(work.FullName, "alerts-test.yaml"));
            var promtool = Path.Combine(HelmTool.RepositoryRoot, ".artifacts", "tools", "promtool", "promtool");
            Assert.True(File.Exists(promtool), "promtool is missing: run scripts/ensure-tools.sh (the test command does)");
            var check = await HelmTool.RunAsync(promtool, ["check", "rules", "rules.yaml"], work.FullName);
            Assert.True(check.ExitCode == 0, check.Output);
            var test = await HelmTool.RunAsync(promtool, ["test", "rules", "alerts-test.yaml"], work.FullName);
            Assert.True(test.ExitCode == 0, test.Output);
            Assert.Contains("SUCCESS", test.Output, StringComparison.Ordinal);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>The scraper presents the token from the Secret every app reads, on the port named metrics, of every
    /// app and nothing else; a ServiceMonitor or a PodMonitor, never both.</summary>
    [Theory]
    [InlineData("ServiceMonitor")]
    [InlineData("PodMonitor")]
    public async Task TheScraper_PresentsTheTokenTheAppsCheck_OnEveryAppsMetricsPort(string kind)
    {
        var overrides = kind == "PodMonitor" ? "+../../tests/Payments.Deploy.Tests/PromRules/pod-monitor.yaml" : string.Empty;
        var objects = await ChartTests.RenderAsync(Scenario + overrides);
        var (selector, endpoint) = kind == "ServiceMonitor"
            ? objects.OfType<ServiceMonitor>().Select(monitor => (monitor.Spec.Selector, Assert.Single(monitor.Spec.Endpoints))).Single()
            : objects.OfType<PodMonitor>().Select(monitor => (monitor.Spec.Selector, Assert.Single(monitor.Spec.PodMetricsEndpoints))).Single();
        Assert.Equal(("metrics", "/metrics", "Bearer"), (endpoint.Port, endpoint.Path, endpoint.Authorization.Type));
        Assert.Contains(objects.OfType<V1Secret>(), secret => secret.Metadata.Name == endpoint.Authorization.Credentials.Name);

        var deployments = objects.OfType<V1Deployment>().ToArray();
        Assert.True(deployments.Length >= 4, $"{deployments.Length} apps");
        foreach (var deployment in deployments)
        {
            var container = deployment.Spec.Template.Spec.Containers[0];
            var token = Assert.Single(container.Env, variable => variable.Name == "Metrics__Token").ValueFrom.SecretKeyRef;
            Assert.Equal((endpoint.Authorization.Credentials.Name, endpoint.Authorization.Credentials.Key), (token.Name, token.Key));
            Assert.Contains(container.Ports, port => port.Name == "metrics");
            var labels = kind == "ServiceMonitor"
                ? objects.OfType<V1Service>().Single(service => service.Metadata.Name == deployment.Metadata.Name && service.Spec.Ports.Any(port => port.Name == "metrics")).Metadata.Labels
                : deployment.Spec.Template.Metadata.Labels;
            Assert.True(NetworkFlowTests.Selects(selector, labels), $"{deployment.Metadata.Name} is not scraped");
        }

        Assert.DoesNotContain(objects.OfType<V1Service>().Where(service => !deployments.Any(deployment => deployment.Metadata.Name == service.Metadata.Name)),
            service => NetworkFlowTests.Selects(selector, service.Metadata.Labels));
        var (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "-f", Scenario, "--set", "monitoring.podMonitor.enabled=true", "--kube-version", ChartTests.KubeVersion);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("not both", output, StringComparison.Ordinal);
    }

    /// <summary>Traces: without a collector the apps export none (before, the apps fell back to the console exporter
    /// and printed every span in production); with one, every app exports to it over OTLP, sampled at the root, and may
    /// reach the collector's port in its namespace, nothing more.</summary>
    [Fact]
    public async Task Traces_GoToTheCollector_WhenThereIsOne_AndNowhereWithout()
    {
        var without = await ChartTests.RenderAsync("values-region-a.yaml");
        var apps = without.OfType<V1Deployment>().Select(deployment => deployment.Spec.Template.Spec.Containers[0]).ToArray();
        Assert.True(apps.Length >= 4, $"{apps.Length} apps");
        Assert.All(apps, container =>
        {
            Assert.Equal("none", Assert.Single(container.Env, variable => variable.Name == "Telemetry__Exporter").Value);
            Assert.DoesNotContain(container.Env, variable => variable.Name.StartsWith("OTEL_", StringComparison.Ordinal));
        });
        Assert.DoesNotContain(without.OfType<V1NetworkPolicy>(), policy => policy.Metadata.Name.EndsWith("-egress-tracing", StringComparison.Ordinal));
        // The sidecars sample at the apps' ratio (they sampled every request, so the apps traced the saga at 100 %).
        Assert.All(without.OfType<DaprConfiguration>(), config => Assert.Equal(("0.1", null), (config.Spec.Tracing.SamplingRate, config.Spec.Tracing.Otel)));

        var with = await ChartTests.RenderAsync("values-region-a.yaml+../../tests/Payments.Deploy.Tests/PromRules/otlp-tracing.yaml");
        Assert.All(with.OfType<V1Deployment>().Select(deployment => deployment.Spec.Template.Spec.Containers[0]), container =>
        {
            string? Env(string name) => container.Env.SingleOrDefault(variable => variable.Name == name)?.Value;
            Assert.Equal("http://otel-collector.observability:4317", Env("OTEL_EXPORTER_OTLP_ENDPOINT"));
            Assert.Equal(("parentbased_traceidratio", "0.25"), (Env("OTEL_TRACES_SAMPLER"), Env("OTEL_TRACES_SAMPLER_ARG")));
            Assert.Null(Env("Telemetry__Exporter"));
        });
        Assert.All(with.OfType<DaprConfiguration>(), config =>
        {
            Assert.Equal("0.25", config.Spec.Tracing.SamplingRate);
            Assert.Equal(("otel-collector.observability:4317", false, "grpc"), (config.Spec.Tracing.Otel!.EndpointAddress, config.Spec.Tracing.Otel.IsSecure, config.Spec.Tracing.Otel.Protocol));
        });
        var tracing = Assert.Single(with.OfType<V1NetworkPolicy>(), policy => policy.Metadata.Name.EndsWith("-egress-tracing", StringComparison.Ordinal));
        // Every pod that exports spans may reach the collector; etcd and the bootstrap Job, which export none, may not.
        Assert.All(with.OfType<V1Deployment>(), deployment => Assert.True(NetworkFlowTests.Selects(tracing.Spec.PodSelector, deployment.Spec.Template.Metadata.Labels), deployment.Metadata.Name));
        Assert.All(with.OfType<V1StatefulSet>().Select(set => set.Spec.Template.Metadata.Labels).Concat(with.OfType<V1Job>().Select(job => job.Spec.Template.Metadata.Labels)),
            labels => Assert.False(NetworkFlowTests.Selects(tracing.Spec.PodSelector, labels), labels["app.kubernetes.io/component"]));
        var egress = Assert.Single(tracing.Spec.Egress);
        Assert.Equal("observability", Assert.Single(egress.To).NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]);
        Assert.Null(Assert.Single(egress.To).IpBlock);
        Assert.Equal("4317", Assert.Single(egress.Ports).Port.Value);
    }

    /// <summary>Prometheus's namespace reaches the metrics port of every app, and nothing else of them.</summary>
    [Fact]
    public async Task OnlyTheScrapersNamespace_ReachesTheMetricsPort_AndOnlyThatPort()
    {
        var objects = await ChartTests.RenderAsync(Scenario);
        foreach (var deployment in objects.OfType<V1Deployment>())
        {
            var labels = deployment.Spec.Template.Metadata.Labels;
            var ports = deployment.Spec.Template.Spec.Containers[0].Ports.ToDictionary(port => port.Name, port => port.ContainerPort);
            Assert.True(NetworkFlowTests.AdmitsFromNamespace(objects, labels, "monitoring", ports["metrics"]), $"{deployment.Metadata.Name}: not scrapable");
            Assert.False(NetworkFlowTests.AdmitsFromNamespace(objects, labels, "default", ports["metrics"]), $"{deployment.Metadata.Name}: metrics open to any namespace");
            if (labels["app.kubernetes.io/component"] != "api")
            {
                Assert.False(NetworkFlowTests.AdmitsFromNamespace(objects, labels, "monitoring", ports["http"]), $"{deployment.Metadata.Name}: its app port is open to the scraper");
            }
        }
    }

    /// <summary>The dashboard reaches Grafana's sidecar as a labelled ConfigMap, parses, and every panel queries the
    /// data source and namespace the user picks.</summary>
    [Fact]
    public async Task TheDashboard_IsAConfigMapForGrafanasSidecar_WithAQueryInEveryPanel()
    {
        var objects = await ChartTests.RenderAsync(Scenario);
        var map = Assert.Single(objects.OfType<V1ConfigMap>(), candidate => candidate.Metadata.Name.EndsWith("-dashboard", StringComparison.Ordinal));
        Assert.Equal("1", map.Metadata.Labels["grafana_dashboard"]);
        using var dashboard = JsonDocument.Parse(map.Data["daprpayments.json"]);
        Assert.Equal("daprpayments", dashboard.RootElement.GetProperty("uid").GetString());
        var panels = dashboard.RootElement.GetProperty("panels").EnumerateArray().ToArray();
        Assert.True(panels.Length >= 10, $"{panels.Length} panels");
        foreach (var panel in panels)
        {
            var targets = panel.GetProperty("targets").EnumerateArray().ToArray();
            Assert.NotEmpty(targets);
            Assert.All(targets, target =>
            {
                var expr = target.GetProperty("expr").GetString()!;
                Assert.Contains("namespace=\"$namespace\"", expr, StringComparison.Ordinal);
                Assert.Equal("${datasource}", target.GetProperty("datasource").GetProperty("uid").GetString());
            });
        }
    }

    [Fact]
    public async Task EtcdNearQuota_AlertsAtTheConfiguredRatio_ForTenMinutes()
    {
        var root = await RenderRuleAsync("--set-json", "monitoring.etcdQuotaAlertRatio=0.75");
        Assert.Equal("monitoring.coreos.com/v1", Scalar(root, "apiVersion"));
        var alert = ((YamlSequenceNode)((YamlMappingNode)root["spec"])["groups"]).Children.Cast<YamlMappingNode>()
            .SelectMany(group => ((YamlSequenceNode)group["rules"]).Children.Cast<YamlMappingNode>())
            .Single(rule => rule.Children.ContainsKey(new YamlScalarNode("alert")) && Scalar(rule, "alert") == "DaprPaymentsEtcdNearQuota");

        var expression = Scalar(alert, "expr");
        Assert.Contains("payments_etcd_db_size_bytes{namespace=\"payments\"}", expression, StringComparison.Ordinal);
        Assert.Contains("/ max by (namespace) (payments_etcd_quota_bytes{namespace=\"payments\"})", expression, StringComparison.Ordinal);
        Assert.EndsWith("> 0.75", expression.Trim(), StringComparison.Ordinal);
        Assert.Equal("10m", Scalar(alert, "for"));
    }

    /// <summary>The PrometheusRule as the chart renders it in namespace "payments", with <paramref name="settings"/>.</summary>
    private static async Task<YamlMappingNode> RenderRuleAsync(params string[] settings)
    {
        var (exitCode, output) = await HelmTool.HelmAsync([
            "template", "dp", ".", "--kube-version", ChartTests.KubeVersion, "--namespace", "payments",
            "--set", "monitoring.prometheusRule.enabled=true", .. settings, "--show-only", "templates/prometheusrule.yaml"]);
        Assert.True(exitCode == 0, output);
        var yaml = new YamlStream();
        yaml.Load(new StringReader(output));
        return (YamlMappingNode)yaml.Documents.Single().RootNode;
    }

    private static string Scalar(YamlMappingNode node, string key) => ((YamlScalarNode)node[key]).Value ?? string.Empty;
}
