using YamlDotNet.RepresentationModel;

namespace Payments.Deploy.Tests;

/// <summary>The chart's alerts: off unless asked for (the PrometheusRule kind exists only with the Prometheus
/// Operator), and then on the metrics the apps really export, with a runbook that exists.</summary>
public sealed class MonitoringTests
{
    [Fact]
    public async Task PrometheusRule_IsOffByDefault()
    {
        var (exitCode, output) = await HelmTool.HelmAsync(["template", "dp", ".", "--kube-version", ChartTests.KubeVersion, "--namespace", "payments"]);
        Assert.True(exitCode == 0, output);
        Assert.DoesNotContain("kind: PrometheusRule", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EtcdNearQuota_AlertsAtTheConfiguredRatio_OnTheExportedGauges_ForTenMinutes()
    {
        var (exitCode, output) = await HelmTool.HelmAsync([
            "template", "dp", ".", "--kube-version", ChartTests.KubeVersion, "--namespace", "payments",
            "--set", "monitoring.prometheusRule.enabled=true", "--set-json", "monitoring.etcdQuotaAlertRatio=0.75",
            "--show-only", "templates/prometheusrule.yaml"]);
        Assert.True(exitCode == 0, output);
        var yaml = new YamlStream();
        yaml.Load(new StringReader(output));
        var root = (YamlMappingNode)yaml.Documents.Single().RootNode;
        Assert.Equal("monitoring.coreos.com/v1", Scalar(root, "apiVersion"));
        var rules = (YamlSequenceNode)((YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)root["spec"])["groups"]).Children[0])["rules"];
        var alert = rules.Children.Cast<YamlMappingNode>().Single(rule => Scalar(rule, "alert") == "DaprPaymentsEtcdNearQuota");

        var expression = Scalar(alert, "expr");
        Assert.Contains("payments_etcd_db_size_bytes{namespace=\"payments\"}", expression, StringComparison.Ordinal);
        Assert.Contains("/ max by (namespace) (payments_etcd_quota_bytes{namespace=\"payments\"})", expression, StringComparison.Ordinal);
        Assert.EndsWith("> 0.75", expression.Trim(), StringComparison.Ordinal);
        Assert.Equal("10m", Scalar(alert, "for"));
        Assert.Contains("etcd-nospace.md", Scalar((YamlMappingNode)alert["annotations"], "runbook"), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(HelmTool.RepositoryRoot, "docs", "runbooks", "etcd-nospace.md")));

        // The gauges the expression names are the ledger service's instruments (OpenTelemetry's Prometheus naming:
        // dots to underscores, unit "By" as "_bytes").
        var defragmenter = await File.ReadAllTextAsync(Path.Combine(HelmTool.RepositoryRoot, "apps", "Payments.Etcd", "Maintenance", "EtcdDefragmenter.cs"));
        Assert.Matches("\"payments\\.etcd\\.db_size\", [^;]*unit: \"By\"", defragmenter);
        Assert.Matches("\"payments\\.etcd\\.quota\", [^;]*unit: \"By\"", defragmenter);
    }

    private static string Scalar(YamlMappingNode node, string key) => ((YamlScalarNode)node[key]).Value ?? string.Empty;
}
