using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace Payments.Deploy.Tests;

// Typed models of the Dapr resources the chart renders, with exactly the fields the chart may use: the strict parse
// rejects anything else, so a typo in a Dapr resource fails here instead of on a cluster.

public abstract class DaprResource<TSpec> : IKubernetesObject<V1ObjectMeta>
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = null!;

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = null!;

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = null!;

    [JsonPropertyName("spec")]
    public TSpec Spec { get; set; } = default!;
}

public sealed class DaprComponent : DaprResource<DaprComponent.ComponentSpec>
{
    [JsonPropertyName("scopes")]
    public List<string>? Scopes { get; set; }

    public sealed class ComponentSpec
    {
        [JsonPropertyName("type")]
        public string Type { get; set; } = null!;

        [JsonPropertyName("version")]
        public string Version { get; set; } = null!;

        [JsonPropertyName("metadata")]
        public List<NameValue> Metadata { get; set; } = [];
    }

    public sealed class NameValue
    {
        [JsonPropertyName("name")]
        public string Name { get; set; } = null!;

        [JsonPropertyName("value")]
        public string? Value { get; set; }

        /// <summary>A value from a Kubernetes Secret (the Dapr operator resolves it).</summary>
        [JsonPropertyName("secretKeyRef")]
        public SecretKeyRef? SecretKeyRef { get; set; }
    }

    public sealed class SecretKeyRef
    {
        [JsonPropertyName("name")]
        public string Name { get; set; } = null!;

        [JsonPropertyName("key")]
        public string Key { get; set; } = null!;
    }
}

public sealed class DaprResiliency : DaprResource<DaprResiliency.ResiliencySpec>
{
    public sealed class ResiliencySpec
    {
        [JsonPropertyName("policies")]
        public PoliciesSpec Policies { get; set; } = null!;

        [JsonPropertyName("targets")]
        public TargetsSpec Targets { get; set; } = null!;
    }

    public sealed class PoliciesSpec
    {
        [JsonPropertyName("timeouts")]
        public Dictionary<string, string> Timeouts { get; set; } = [];

        [JsonPropertyName("retries")]
        public Dictionary<string, RetrySpec> Retries { get; set; } = [];

        [JsonPropertyName("circuitBreakers")]
        public Dictionary<string, CircuitBreakerSpec> CircuitBreakers { get; set; } = [];
    }

    public sealed class RetrySpec
    {
        [JsonPropertyName("policy")]
        public string Policy { get; set; } = null!;

        [JsonPropertyName("maxInterval")]
        public string? MaxInterval { get; set; }

        [JsonPropertyName("maxRetries")]
        public int MaxRetries { get; set; }

        [JsonPropertyName("matching")]
        public RetryMatching? Matching { get; set; }
    }

    public sealed class RetryMatching
    {
        [JsonPropertyName("httpStatusCodes")]
        public string? HttpStatusCodes { get; set; }
    }

    public sealed class CircuitBreakerSpec
    {
        [JsonPropertyName("maxRequests")]
        public int MaxRequests { get; set; }

        [JsonPropertyName("interval")]
        public string Interval { get; set; } = null!;

        [JsonPropertyName("timeout")]
        public string Timeout { get; set; } = null!;

        [JsonPropertyName("trip")]
        public string Trip { get; set; } = null!;
    }

    public sealed class TargetsSpec
    {
        [JsonPropertyName("apps")]
        public Dictionary<string, PolicyRefs> Apps { get; set; } = [];

        [JsonPropertyName("components")]
        public Dictionary<string, ComponentTarget> Components { get; set; } = [];
    }

    public sealed class PolicyRefs
    {
        [JsonPropertyName("timeout")]
        public string? Timeout { get; set; }

        [JsonPropertyName("retry")]
        public string? Retry { get; set; }

        [JsonPropertyName("circuitBreaker")]
        public string? CircuitBreaker { get; set; }
    }

    public sealed class ComponentTarget
    {
        [JsonPropertyName("outbound")]
        public PolicyRefs Outbound { get; set; } = null!;
    }
}

public sealed class DaprConfiguration : DaprResource<DaprConfiguration.ConfigurationSpec>
{
    public sealed class ConfigurationSpec
    {
        [JsonPropertyName("tracing")]
        public TracingSpec Tracing { get; set; } = null!;

        [JsonPropertyName("accessControl")]
        public AccessControlSpec AccessControl { get; set; } = null!;

        [JsonPropertyName("workflow")]
        public WorkflowSpec? Workflow { get; set; }
    }

    /// <summary>Dapr ≥ 1.17.2 (dapr/dapr pkg/config, the Configuration CRD's workflow.stateRetentionPolicy: durations
    /// as strings; 1.17.0–1.17.1 typed them as integers on Kubernetes).</summary>
    public sealed class WorkflowSpec
    {
        [JsonPropertyName("stateRetentionPolicy")]
        public RetentionSpec StateRetentionPolicy { get; set; } = null!;
    }

    public sealed class RetentionSpec
    {
        [JsonPropertyName("anyTerminal")]
        public string? AnyTerminal { get; set; }

        [JsonPropertyName("completed")]
        public string? Completed { get; set; }

        [JsonPropertyName("failed")]
        public string? Failed { get; set; }

        [JsonPropertyName("terminated")]
        public string? Terminated { get; set; }
    }

    public sealed class TracingSpec
    {
        [JsonPropertyName("samplingRate")]
        public string SamplingRate { get; set; } = null!;

        [JsonPropertyName("otel")]
        public OtelSpec? Otel { get; set; }
    }

    /// <summary>dapr/dapr pkg/config: OtelSpec (endpointAddress, isSecure, protocol).</summary>
    public sealed class OtelSpec
    {
        [JsonPropertyName("endpointAddress")]
        public string EndpointAddress { get; set; } = null!;

        [JsonPropertyName("isSecure")]
        public bool IsSecure { get; set; }

        [JsonPropertyName("protocol")]
        public string Protocol { get; set; } = null!;
    }

    public sealed class AccessControlSpec
    {
        [JsonPropertyName("defaultAction")]
        public string DefaultAction { get; set; } = null!;

        [JsonPropertyName("trustDomain")]
        public string TrustDomain { get; set; } = null!;

        [JsonPropertyName("policies")]
        public List<AppPolicy>? Policies { get; set; }
    }

    public sealed class AppPolicy
    {
        [JsonPropertyName("appId")]
        public string AppId { get; set; } = null!;

        [JsonPropertyName("defaultAction")]
        public string DefaultAction { get; set; } = null!;

        [JsonPropertyName("namespace")]
        public string Namespace { get; set; } = null!;

        [JsonPropertyName("trustDomain")]
        public string TrustDomain { get; set; } = null!;

        [JsonPropertyName("operations")]
        public List<Operation> Operations { get; set; } = [];
    }

    public sealed class Operation
    {
        [JsonPropertyName("name")]
        public string Name { get; set; } = null!;

        [JsonPropertyName("httpVerb")]
        public List<string> HttpVerb { get; set; } = [];

        [JsonPropertyName("action")]
        public string Action { get; set; } = null!;
    }
}
