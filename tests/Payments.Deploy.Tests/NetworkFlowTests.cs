using k8s.Models;

namespace Payments.Deploy.Tests;

/// <summary>Issue 13 finding 3: the flows the system needs are open under the chart's NetworkPolicies, evaluated as
/// Kubernetes evaluates them (a pod selected by an Egress policy may send only what one of them allows; one selected
/// by none may send anything).</summary>
public sealed class NetworkFlowTests
{
    private const int EtcdClientPort = 2379;

    /// <summary>Every etcd client — the apps with an etcd user (the orchestrator's pod also holds the daprd whose state
    /// store is etcd) and the bootstrap Job — reaches etcd's client port: the release's members, or an etcd outside the
    /// release on the networks etcd.externalCidrs names (and nowhere else). Risk, which has no etcd user, does not.</summary>
    [Theory]
    [InlineData("values-region-a.yaml", true)]
    [InlineData("ci/external-etcd-values.yaml", false)]
    public async Task EveryEtcdClient_ReachesEtcd_InsideOrOutsideTheRelease(string valuesFile, bool etcdInRelease)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var policies = objects.OfType<V1NetworkPolicy>().Where(policy => policy.Spec.PolicyTypes?.Contains("Egress") == true).ToArray();
        Assert.NotEmpty(policies);
        var etcdPods = objects.OfType<V1StatefulSet>().Select(set => set.Spec.Template.Metadata.Labels).ToArray();
        Assert.Equal(etcdInRelease, etcdPods.Length > 0);
        var clients = objects.OfType<V1Deployment>().Select(deployment => deployment.Spec.Template.Metadata.Labels)
            .Concat(objects.OfType<V1Job>().Select(job => job.Spec.Template.Metadata.Labels))
            .Where(labels => labels["app.kubernetes.io/component"] is "api" or "orchestrator" or "ledger" or "failover" or "etcd-maintenance" or "etcd-auth")
            .ToArray();
        Assert.Contains(clients, labels => labels["app.kubernetes.io/component"] == "etcd-auth");
        Assert.Contains(clients, labels => labels["app.kubernetes.io/component"] == "etcd-maintenance");

        foreach (var client in clients)
        {
            var selecting = policies.Where(policy => Selects(policy.Spec.PodSelector, client)).ToArray();
            Assert.True(selecting.Length > 0, $"{valuesFile}: no egress policy selects {client["app.kubernetes.io/component"]} (the chart denies by default)");
            var reaches = selecting.SelectMany(policy => policy.Spec.Egress ?? []).Any(rule => AllowsPort(rule, EtcdClientPort)
                && (etcdInRelease
                    ? rule.To?.Any(peer => peer.PodSelector is { } selector && peer.NamespaceSelector is null && etcdPods.Any(pod => Selects(selector, pod))) == true
                    : rule.To?.Count > 0 && rule.To.All(peer => peer.IpBlock?.Cidr == "10.20.0.0/24")));
            Assert.True(reaches, $"{valuesFile}: {client["app.kubernetes.io/component"]} cannot reach etcd on {EtcdClientPort}");
        }

        var risk = objects.OfType<V1Deployment>().Select(deployment => deployment.Spec.Template.Metadata.Labels)
            .Single(labels => labels["app.kubernetes.io/component"] == "risk");
        Assert.True(etcdInRelease
            ? etcdPods.All(pod => !Allows(objects, risk, pod, EtcdClientPort))
            : policies.Where(policy => Selects(policy.Spec.PodSelector, risk)).SelectMany(policy => policy.Spec.Egress ?? []).All(rule => !AllowsPort(rule, EtcdClientPort)),
            $"{valuesFile}: risk reaches etcd");
    }

    /// <summary>An external etcd's ports come from each URL's host: "https://10.1.2.3" has none (2379) — its last
    /// digits ("3") used to be taken for one — and without the networks of its members the chart refuses to render.</summary>
    [Fact]
    public async Task AnExternalEtcdsPorts_AreItsUrlsPorts_AndItsNetworksAreRequired()
    {
        string[] external = ["--set", "etcd.enabled=false", "--set", "etcd.tls.createSecrets=false",
            "--set", "etcd.externalEndpoints[0]=https://10.1.2.3", "--set", "etcd.externalEndpoints[1]=https://etcd-1.example.internal:12379/"];
        var (exitCode, output) = await HelmTool.HelmAsync(["template", "dp", ".", .. external, "--set", "etcd.externalCidrs[0]=10.1.2.0/24", "--kube-version", ChartTests.KubeVersion]);
        Assert.True(exitCode == 0, output);
        var policy = k8s.KubernetesYaml.LoadAllFromString(output, ChartTests.Kinds, strict: true).OfType<V1NetworkPolicy>()
            .Single(candidate => candidate.Metadata.Name == "dp-daprpayments-etcd-clients");
        var rule = Assert.Single(policy.Spec.Egress);
        Assert.Equal(["12379", "2379"], rule.Ports.Select(port => port.Port.Value).Order(StringComparer.Ordinal));
        Assert.Equal("10.1.2.0/24", Assert.Single(rule.To).IpBlock.Cidr);

        (exitCode, output) = await HelmTool.HelmAsync(["template", "dp", ".", .. external, "--kube-version", ChartTests.KubeVersion]);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("etcd.externalCidrs", output, StringComparison.Ordinal);
    }

    /// <summary>Issue 13 finding 5: sidecar to sidecar (daprd's 50002) only along the calls the system makes — the
    /// access control's callers (dapr.yaml) and the orchestrator's sidecars among themselves (workflow actors) — so
    /// risk cannot reach the ledger at all, whatever Dapr's access control would answer.</summary>
    [Theory]
    [InlineData("values-region-a.yaml")]
    [InlineData("values-region-b.yaml+../../tilt/values-dev.yaml")]
    public async Task SidecarsReachEachOther_OnlyAlongTheCallsTheSystemMakes(string valuesFile)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var pods = objects.OfType<V1Deployment>().ToDictionary(
            deployment => deployment.Spec.Template.Metadata.Labels["app.kubernetes.io/component"], deployment => deployment.Spec.Template.Metadata.Labels);
        Assert.Contains("etcd-maintenance", pods.Keys); // no sidecar: reaches none, and none reaches it
        var appIds = objects.OfType<V1Deployment>().Where(deployment => deployment.Spec.Template.Metadata.Annotations?.ContainsKey("dapr.io/app-id") == true).ToDictionary(
            deployment => deployment.Spec.Template.Metadata.Annotations["dapr.io/app-id"], deployment => deployment.Spec.Template.Metadata.Labels["app.kubernetes.io/component"]);
        var granted = objects.OfType<DaprConfiguration>()
            .SelectMany(config => (config.Spec.AccessControl?.Policies ?? []).Select(policy => (Caller: appIds[policy.AppId], Callee: appIds.Single(id => config.Metadata.Name == id.Key).Value)))
            .Append(("orchestrator", "orchestrator"))
            .ToHashSet();
        Assert.Contains(("api", "ledger"), granted);

        foreach (var (caller, callerLabels) in pods)
        {
            foreach (var (callee, calleeLabels) in pods)
            {
                var open = Allows(objects, callerLabels, calleeLabels, DaprInternalPort);
                Assert.True(open == granted.Contains((caller, callee)), $"{valuesFile}: {caller} → {callee} on {DaprInternalPort} is {(open ? "open" : "closed")}");
            }
        }
    }

    /// <summary>Issue 13 item 1: what every daprd needs to start and run, open from every Dapr-enabled pod — DNS, and the
    /// control plane's pod ports in the Dapr namespace. daprd dials sentry (Service 443 → pod 50001, certificates for
    /// mTLS; it exits without them), the operator (443 → 6500, components and configuration), placement (50005,
    /// actors) and the scheduler (443 → 50006, workflow reminders): dapr/dapr v1.18.3 (2dcf2e35) and v1.17.13
    /// (c09a7f93), pkg/injector/patcher/services.go and charts/dapr/charts/*/templates/*_service.yaml. NetworkPolicy
    /// sees the pod's port behind a Service (Kubernetes docs, "Network Policies"). And, with Cosmos DB, the apps that
    /// use it reach the endpoint's port — and no other app does.</summary>
    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task EverySidecar_ReachesDnsAndTheControlPlane_AndCosmosUsersReachCosmos(string valuesFile)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var policies = objects.OfType<V1NetworkPolicy>().Where(policy => policy.Spec.PolicyTypes?.Contains("Egress") == true).ToArray();
        if (valuesFile == "ci/minimal-values.yaml")
        {
            Assert.Empty(policies); // network policies off there alone: nothing is restricted
            return;
        }

        Assert.NotEmpty(policies); // a values file that lost its policies must not pass for one without them

        var daprNamespace = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = "dapr-system" };
        var kubeDns = new Dictionary<string, string> { ["k8s-app"] = "kube-dns" };
        var cosmosUsers = new[] { "api", "ledger", "failover" };
        var cosmosOn = objects.OfType<V1Deployment>().Any(deployment => deployment.Metadata.Name.EndsWith("-failover", StringComparison.Ordinal));
        foreach (var deployment in objects.OfType<V1Deployment>())
        {
            var labels = deployment.Spec.Template.Metadata.Labels;
            var component = labels["app.kubernetes.io/component"];
            var rules = policies.Where(policy => Selects(policy.Spec.PodSelector, labels)).SelectMany(policy => policy.Spec.Egress ?? []).ToArray();
            Assert.True(rules.Any(rule => AllowsPort(rule, 53, "UDP") && ToPodsIn(rule, anyNamespace: true, kubeDns)), $"{valuesFile}: {component} has no DNS");
            var hasSidecar = deployment.Spec.Template.Metadata.Annotations?.TryGetValue("dapr.io/enabled", out var dapr) == true && dapr == "true";
            foreach (var (service, port) in new[] { ("sentry", 50001), ("operator", 6500), ("placement", 50005), ("scheduler", 50006) })
            {
                // A pod without a sidecar (etcd's storage maintenance) has no business with Dapr's control plane.
                var reaches = rules.Any(rule => AllowsPort(rule, port, "TCP") && rule.To?.Any(peer => peer.NamespaceSelector is { } selector && Selects(selector, daprNamespace)) == true);
                Assert.True(reaches == hasSidecar, $"{valuesFile}: {component} {(reaches ? "reaches" : "cannot reach")} Dapr's {service} on {port}");
            }

            // Cosmos DB's public endpoint: a public address (its own policy; the webhook policy is the API's alone).
            var cosmosRules = policies.Where(policy => policy.Metadata.Name.EndsWith("-egress-cosmos", StringComparison.Ordinal) && Selects(policy.Spec.PodSelector, labels))
                .SelectMany(policy => policy.Spec.Egress ?? []);
            var reachesCosmos = cosmosRules.Any(rule => AllowsPort(rule, CosmosPort, "TCP")
                && (rule.To is null || rule.To.Count == 0 || rule.To.Any(peer => peer.IpBlock?.Cidr == "0.0.0.0/0")));
            Assert.True(reachesCosmos == (cosmosOn && cosmosUsers.Contains(component)), $"{valuesFile}: {component} {(reachesCosmos ? "reaches" : "cannot reach")} Cosmos DB");
        }
    }

    /// <summary>The Cosmos endpoint's port in the region values (Cosmos DB's 443) and in Tilt's (the local server's).</summary>
    private const int CosmosPort = 443;

    private static bool AllowsPort(V1NetworkPolicyEgressRule rule, int port, string protocol) =>
        rule.Ports is null || rule.Ports.Count == 0
        || rule.Ports.Any(allowed => allowed.Port?.Value == port.ToString(System.Globalization.CultureInfo.InvariantCulture) && (allowed.Protocol ?? "TCP") == protocol);

    private static bool ToPodsIn(V1NetworkPolicyEgressRule rule, bool anyNamespace, Dictionary<string, string> podLabels) =>
        rule.To is null || rule.To.Count == 0 || rule.To.Any(peer =>
            (anyNamespace ? peer.NamespaceSelector is not null && (peer.NamespaceSelector.MatchLabels?.Count ?? 0) == 0 : peer.NamespaceSelector is null)
            && Selects(peer.PodSelector, podLabels));

    private const int DaprInternalPort = 50002;

    /// <summary>Whether <paramref name="from"/>'s pods may open a connection to <paramref name="to"/>'s on
    /// <paramref name="port"/>: the sender's egress and the receiver's ingress must both allow it.</summary>
    internal static bool Allows(IEnumerable<object> objects, IDictionary<string, string> from, IDictionary<string, string> to, int port)
    {
        var policies = objects.OfType<V1NetworkPolicy>().ToArray();
        bool Peer(IList<V1NetworkPolicyPeer>? peers, IDictionary<string, string> other) =>
            peers is null || peers.Count == 0 || peers.Any(peer => peer.IpBlock is null && peer.NamespaceSelector is null && peer.PodSelector is { } selector && Selects(selector, other));
        var egress = policies.Where(policy => policy.Spec.PolicyTypes?.Contains("Egress") == true && Selects(policy.Spec.PodSelector, from)).ToArray();
        var ingress = policies.Where(policy => policy.Spec.PolicyTypes?.Contains("Ingress") == true && Selects(policy.Spec.PodSelector, to)).ToArray();
        var sends = egress.Length == 0 || egress.SelectMany(policy => policy.Spec.Egress ?? []).Any(rule => AllowsPort(rule.Ports, port) && Peer(rule.To, to));
        var accepts = ingress.Length == 0 || ingress.SelectMany(policy => policy.Spec.Ingress ?? []).Any(rule => AllowsPort(rule.Ports, port) && Peer(rule.FromProperty, from));
        return sends && accepts;
    }

    private static bool AllowsPort(IList<V1NetworkPolicyPort>? ports, int port) =>
        ports is null || ports.Count == 0 || ports.Any(allowed => allowed.Port?.Value == port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static bool AllowsPort(V1NetworkPolicyEgressRule rule, int port) =>
        rule.Ports is null || rule.Ports.Count == 0 || rule.Ports.Any(allowed => allowed.Port?.Value == port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Whether a pod in <paramref name="namespace"/> (any labels) may reach the pod labelled
    /// <paramref name="to"/> on <paramref name="port"/> under the receiver's Ingress policies.</summary>
    internal static bool AdmitsFromNamespace(IEnumerable<object> objects, IDictionary<string, string> to, string @namespace, int port)
    {
        var namespaceLabels = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = @namespace };
        var rules = objects.OfType<V1NetworkPolicy>()
            .Where(policy => policy.Spec.PolicyTypes?.Contains("Ingress") == true && NetworkFlowTests.Selects(policy.Spec.PodSelector, to))
            .SelectMany(policy => policy.Spec.Ingress ?? [])
            .ToArray();
        return rules.Any(rule =>
            (rule.Ports is null || rule.Ports.Count == 0 || rule.Ports.Any(allowed => allowed.Port?.Value == port.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            && (rule.FromProperty is null || rule.FromProperty.Count == 0 || rule.FromProperty.Any(peer =>
                peer.NamespaceSelector is { } selector && NetworkFlowTests.Selects(selector, namespaceLabels) && peer.PodSelector is null)));
    }

    /// <summary>A label selector as Kubernetes applies it (matchLabels and the In, NotIn, Exists, DoesNotExist expressions).</summary>
    internal static bool Selects(V1LabelSelector? selector, IDictionary<string, string> labels)
    {
        if (selector is null)
        {
            return true;
        }

        var matchLabels = selector.MatchLabels ?? new Dictionary<string, string>();
        return matchLabels.All(label => labels.TryGetValue(label.Key, out var value) && value == label.Value)
            && (selector.MatchExpressions ?? []).All(expression => expression.OperatorProperty switch
            {
                "In" => labels.TryGetValue(expression.Key, out var value) && expression.Values.Contains(value),
                "NotIn" => !labels.TryGetValue(expression.Key, out var value) || !expression.Values.Contains(value),
                "Exists" => labels.ContainsKey(expression.Key),
                "DoesNotExist" => !labels.ContainsKey(expression.Key),
                _ => throw new InvalidOperationException($"Unknown selector operator {expression.OperatorProperty}"),
            });
    }
}
