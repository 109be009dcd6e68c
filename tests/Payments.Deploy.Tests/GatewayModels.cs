using System.Text.Json.Serialization;

namespace Payments.Deploy.Tests;

/// <summary>Gateway API's HTTPRoute (gateway.networking.k8s.io/v1), with exactly the fields the chart may use: the
/// strict parse refuses anything else. Field names: kubernetes-sigs/gateway-api v1.2, apis/v1/httproute_types.go.</summary>
public sealed class GatewayHttpRoute : DaprResource<GatewayHttpRoute.RouteSpec>
{
    public sealed class RouteSpec
    {
        [JsonPropertyName("parentRefs")]
        public List<ParentRef> ParentRefs { get; set; } = [];

        [JsonPropertyName("hostnames")]
        public List<string>? Hostnames { get; set; }

        [JsonPropertyName("rules")]
        public List<Rule> Rules { get; set; } = [];
    }

    public sealed class ParentRef
    {
        [JsonPropertyName("name")]
        public string Name { get; set; } = null!;

        [JsonPropertyName("namespace")]
        public string? Namespace { get; set; }

        [JsonPropertyName("sectionName")]
        public string? SectionName { get; set; }
    }

    public sealed class Rule
    {
        [JsonPropertyName("matches")]
        public List<Match> Matches { get; set; } = [];

        [JsonPropertyName("timeouts")]
        public Timeouts? Timeouts { get; set; }

        [JsonPropertyName("backendRefs")]
        public List<BackendRef> BackendRefs { get; set; } = [];
    }

    public sealed class Match
    {
        [JsonPropertyName("path")]
        public PathMatch Path { get; set; } = null!;
    }

    public sealed class PathMatch
    {
        [JsonPropertyName("type")]
        public string Type { get; set; } = null!;

        [JsonPropertyName("value")]
        public string Value { get; set; } = null!;
    }

    public sealed class Timeouts
    {
        [JsonPropertyName("request")]
        public string? Request { get; set; }
    }

    public sealed class BackendRef
    {
        [JsonPropertyName("name")]
        public string Name { get; set; } = null!;

        [JsonPropertyName("port")]
        public int Port { get; set; }
    }
}
