using System.Text.Json.Serialization;
using k8s.Models;

namespace Payments.Deploy.Tests;

// The Prometheus Operator's resources the chart renders (monitoring.coreos.com/v1), with exactly the fields the chart
// may use: the strict parse refuses anything else. Field names: prometheus-operator Documentation/api-reference/api.md
// (ServiceMonitorSpec.endpoints, PodMonitorSpec.podMetricsEndpoints, SafeAuthorization, PrometheusRuleSpec).

public sealed class ServiceMonitor : DaprResource<ServiceMonitor.MonitorSpec>
{
    public sealed class MonitorSpec
    {
        [JsonPropertyName("selector")]
        public V1LabelSelector Selector { get; set; } = null!;

        [JsonPropertyName("endpoints")]
        public List<ScrapeEndpoint> Endpoints { get; set; } = [];
    }
}

public sealed class PodMonitor : DaprResource<PodMonitor.MonitorSpec>
{
    public sealed class MonitorSpec
    {
        [JsonPropertyName("selector")]
        public V1LabelSelector Selector { get; set; } = null!;

        [JsonPropertyName("podMetricsEndpoints")]
        public List<ScrapeEndpoint> PodMetricsEndpoints { get; set; } = [];
    }
}

public sealed class ScrapeEndpoint
{
    [JsonPropertyName("port")]
    public string Port { get; set; } = null!;

    [JsonPropertyName("path")]
    public string Path { get; set; } = null!;

    [JsonPropertyName("interval")]
    public string Interval { get; set; } = null!;

    [JsonPropertyName("authorization")]
    public ScrapeAuthorization Authorization { get; set; } = null!;
}

public sealed class ScrapeAuthorization
{
    [JsonPropertyName("type")]
    public string Type { get; set; } = null!;

    [JsonPropertyName("credentials")]
    public V1SecretKeySelector Credentials { get; set; } = null!;
}

public sealed class PrometheusRule : DaprResource<PrometheusRule.RuleSpec>
{
    public sealed class RuleSpec
    {
        [JsonPropertyName("groups")]
        public List<RuleGroup> Groups { get; set; } = [];
    }

    public sealed class RuleGroup
    {
        [JsonPropertyName("name")]
        public string Name { get; set; } = null!;

        [JsonPropertyName("rules")]
        public List<Rule> Rules { get; set; } = [];
    }

    public sealed class Rule
    {
        [JsonPropertyName("alert")]
        public string? Alert { get; set; }

        [JsonPropertyName("record")]
        public string? Record { get; set; }

        [JsonPropertyName("expr")]
        public string Expr { get; set; } = null!;

        [JsonPropertyName("for")]
        public string? For { get; set; }

        [JsonPropertyName("labels")]
        public Dictionary<string, string>? Labels { get; set; }

        [JsonPropertyName("annotations")]
        public Dictionary<string, string>? Annotations { get; set; }
    }
}
