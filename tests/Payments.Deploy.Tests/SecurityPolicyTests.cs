using System.Text.RegularExpressions;
using k8s;
using k8s.Models;

namespace Payments.Deploy.Tests;

/// <summary>Issue 11's chart policies: every Dapr-enabled pod carries its own app and API tokens, no NetworkPolicy opens
/// an app port between app pods, Dapr access control grants each caller only the operations it needs, and no values
/// file holds a secret.</summary>
public sealed partial class SecurityPolicyTests
{
    /// <summary>The apps with internal endpoints: they check the app token their sidecar presents.</summary>
    private static readonly string[] InternalServices = ["ledger", "risk", "orchestrator"];

    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task EveryDaprDeployment_CarriesItsOwnTokens_FromItsOwnSecrets(string valuesFile)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var secrets = objects.OfType<V1Secret>().ToDictionary(secret => secret.Metadata.Name);
        var deployments = ChartTests.WithSidecar(objects);
        Assert.NotEmpty(deployments);
        foreach (var deployment in deployments)
        {
            var name = deployment.Metadata.Name;
            var annotations = deployment.Spec.Template.Metadata.Annotations;
            Assert.Equal("true", annotations["dapr.io/enabled"]);
            // dapr/dapr v1.18 pkg/injector/patcher/sidecar.go: the injector reads exactly these annotation names.
            Assert.Equal($"{name}-app-token", annotations["dapr.io/app-token-secret"]);
            Assert.Equal($"{name}-dapr-api-token", annotations["dapr.io/api-token-secret"]);
            // The injector puts the tokens into daprd only (sidecar_container.go); the app reads the same Secrets itself.
            var env = deployment.Spec.Template.Spec.Containers.Single().Env.ToDictionary(variable => variable.Name);
            Assert.Equal($"{name}-dapr-api-token", env["DAPR_API_TOKEN"].ValueFrom.SecretKeyRef.Name);
            var component = deployment.Spec.Template.Metadata.Labels["app.kubernetes.io/component"];
            if (InternalServices.Contains(component))
            {
                Assert.Equal(("token", $"{name}-app-token"), (env["ServiceIdentity__AppToken"].ValueFrom.SecretKeyRef.Key, env["ServiceIdentity__AppToken"].ValueFrom.SecretKeyRef.Name));
                Assert.Equal(annotations["dapr.io/app-id"], env["ServiceIdentity__AppId"].Value);
                Assert.Equal("dp-daprpayments-api", env["ServiceIdentity__Callers__api"].Value);
            }

            foreach (var secret in new[] { $"{name}-app-token", $"{name}-dapr-api-token" })
            {
                Assert.True(secrets.TryGetValue(secret, out var rendered), $"{name}: Secret {secret} is not rendered");
                Assert.True(rendered!.Data["token"].Length >= 32, $"{secret}: token too short");
            }
        }
    }

    [Fact]
    public async Task WithCreateSecretsOff_TheChartRendersNoSecret_AndStillReferencesThem()
    {
        var (exitCode, output) = await HelmTool.HelmAsync(
            "template", "dp", ".", "-f", "values-region-a.yaml", "--set", "serviceIdentity.createSecrets=false", "--set", "etcd.tls.createSecrets=false", "--kube-version", ChartTests.KubeVersion);
        Assert.True(exitCode == 0, output);
        Assert.DoesNotContain("kind: Secret", output, StringComparison.Ordinal);
        Assert.Contains("dapr.io/app-token-secret: dp-daprpayments-ledger-app-token", output, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task NoNetworkPolicy_OpensAnAppPortBetweenAppPods(string valuesFile)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var appPorts = objects.OfType<V1Deployment>()
            .SelectMany(deployment => deployment.Spec.Template.Spec.Containers.SelectMany(container => container.Ports))
            .Where(port => port.Name != "metrics") // serves /metrics alone, to the scraper's namespace (MonitoringTests)
            .Select(port => port.ContainerPort)
            .ToHashSet();
        Assert.NotEmpty(appPorts);
        foreach (var policy in objects.OfType<V1NetworkPolicy>())
        {
            var name = policy.Metadata.Name;
            foreach (var rule in policy.Spec.Ingress ?? [])
            {
                if (Opens(rule.Ports, appPorts))
                {
                    // Only the public API's port, and only on the API's own pods (merchant keys guard it).
                    Assert.True(SelectsOnly(policy.Spec.PodSelector, "api"), $"{name} opens an app port on pods other than the API's");
                }
            }

            foreach (var rule in policy.Spec.Egress ?? [])
            {
                if (Opens(rule.Ports, appPorts) && MayReachReleasePods(rule))
                {
                    // Only the helm test pod calls the API; no app pod may call another app's port.
                    Assert.True(SelectsOnly(policy.Spec.PodSelector, "test"), $"{name} lets app pods reach an app port");
                    Assert.All(rule.To, peer => Assert.True(SelectsOnly(peer.PodSelector, "api"), $"{name}: the test pod may reach only the API"));
                }
            }
        }

        // Dapr's own path stays open along the calls the system makes: NetworkFlowTests.SidecarsReachEachOther_….
    }

    /// <summary>The finding: the Cosmos DB egress rule listed a port and no destination, and policies add up, so with
    /// Cosmos configured the API, ledger and failover pods could reach every private, cluster and link-local address
    /// on 443 (the Kubernetes API's ClusterIP included), which undid the webhook policy's backstop. Now public
    /// addresses only, or the private endpoint's subnets when named.</summary>
    [Theory]
    [InlineData("values-region-a.yaml", null, false)]
    [InlineData("values-region-a.yaml+../../tests/Payments.Deploy.Tests/Values/cosmos-private-endpoint.yaml", "10.20.0.0/24", true)]
    [InlineData("values-region-a.yaml+../../tests/Payments.Deploy.Tests/Values/cosmos-private-endpoint.yaml+../../tests/Payments.Deploy.Tests/Values/cosmos-key-auth.yaml", "10.20.0.0/24", false)]
    public async Task CosmosEgress_ReachesPublicAddresses_OrTheNamedPrivateEndpoint_AndNothingElse(string values, string? privateEndpoint, bool entraToo)
    {
        var policy = Assert.Single((await ChartTests.RenderAsync(values)).OfType<V1NetworkPolicy>(), policy => policy.Metadata.Name.EndsWith("-egress-cosmos", StringComparison.Ordinal));
        // Review finding: with a private endpoint and Entra ID the workload identity could not reach Entra's public
        // token endpoint, so the apps had no Cosmos at all. The public rule comes back then, and only then.
        Assert.Equal(entraToo ? 2 : 1, policy.Spec.Egress.Count);
        var publicRules = privateEndpoint is null ? policy.Spec.Egress : policy.Spec.Egress.Skip(1).ToList();
        foreach (var rule in policy.Spec.Egress)
        {
            Assert.Equal("443", Assert.Single(rule.Ports).Port.Value);
        }

        if (privateEndpoint is not null)
        {
            Assert.Equal(privateEndpoint, Assert.Single(policy.Spec.Egress[0].To ?? []).IpBlock.Cidr);
        }

        foreach (var rule in publicRules)
        {
            var peer = Assert.Single(rule.To ?? []);
            Assert.Equal("0.0.0.0/0", peer.IpBlock.Cidr);
            Assert.Superset(new HashSet<string> { "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8" }, peer.IpBlock.Except.ToHashSet());
        }
    }

    [Fact]
    public async Task AccessControl_GrantsEachCaller_OnlyTheOperationsItsRoleNeeds()
    {
        var configs = (await ChartTests.RenderAsync("values-region-a.yaml")).OfType<DaprConfiguration>().ToDictionary(config => config.Metadata.Name);

        string[] Grants(string component, string caller) => configs[$"dp-daprpayments-{component}"].Spec.AccessControl.Policies!
            .Single(policy => policy.AppId == $"dp-daprpayments-{caller}").Operations
            .SelectMany(operation => operation.HttpVerb.Select(verb => $"{verb} {operation.Name} {operation.Action}")).Order().ToArray();

        // The API reads transfers to find a key's deposit (the ledger answers it deposits only).
        Assert.Equal(["GET /ledger/v1/accounts allow", "GET /ledger/v1/transfers allow", "POST /ledger/v1/accounts allow", "POST /ledger/v1/transfers allow"], Grants("ledger", "api"));
        Assert.Equal(["GET /ledger/v1/accounts allow", "GET /ledger/v1/transfers allow", "POST /ledger/v1/batches allow", "POST /ledger/v1/transfers allow"], Grants("ledger", "orchestrator"));
        Assert.Equal(["POST /risk/v1/assessments allow"], Grants("risk", "orchestrator"));
        Assert.Equal(["GET /orchestrator/v1/payments allow", "POST /orchestrator/v1/payments allow"], Grants("orchestrator", "api"));
        Assert.All(configs.Values.SelectMany(config => config.Spec.AccessControl.Policies ?? []), policy => Assert.Equal("deny", policy.DefaultAction));
    }

    [Fact]
    public async Task Cosmos_IsReachedThroughEntraId_ByDefault_EachAppAsItsOwnIdentity_WithNoKeyInTheCluster()
    {
        var objects = await ChartTests.RenderAsync("values-region-a.yaml");
        var accounts = objects.OfType<V1ServiceAccount>().ToDictionary(account => account.Metadata.Name);
        var identities = new Dictionary<string, string>();
        foreach (var deployment in objects.OfType<V1Deployment>())
        {
            var component = deployment.Spec.Template.Metadata.Labels["app.kubernetes.io/component"];
            var env = deployment.Spec.Template.Spec.Containers.Single().Env.ToDictionary(variable => variable.Name);
            Assert.False(env.ContainsKey("Cosmos__Key"), $"{component} gets the Cosmos key");
            var annotations = accounts[deployment.Spec.Template.Spec.ServiceAccountName].Metadata.Annotations ?? new Dictionary<string, string>();
            if (component is "ledger" or "failover" or "api")
            {
                // Azure workload identity: the pod label asks its webhook for a token, the ServiceAccount names the identity.
                Assert.Equal("true", deployment.Spec.Template.Metadata.Labels["azure.workload.identity/use"]);
                identities[component] = annotations["azure.workload.identity/client-id"];
                Assert.Equal("EntraId", env["Cosmos__Auth"].Value);
            }
            else
            {
                Assert.False(deployment.Spec.Template.Metadata.Labels.ContainsKey("azure.workload.identity/use"), $"{component} asks for an Azure identity");
                Assert.False(annotations.ContainsKey("azure.workload.identity/client-id"), $"{component} has an Azure identity");
            }
        }

        Assert.Equal(3, identities.Values.Distinct().Count()); // the ledger, the failover service and the API: three identities

        // With account keys, the API (which only reads the archive) gets the read-only key, and is not rendered without
        // one: the account key writes every container (forged journal pages, the active-region record; a review).
        var (refusedCode, refused) = await HelmTool.HelmAsync("template", "dp", ".", "-f", "values-region-a.yaml", "--set", "cosmos.auth=key", "--kube-version", ChartTests.KubeVersion);
        Assert.True(refusedCode != 0, "rendered the API with the account key");
        Assert.Contains("set cosmos.readOnlyKeySecretName", refused, StringComparison.Ordinal);
        var (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "-f", "values-region-a.yaml", "--set", "cosmos.auth=key",
            "--set", "cosmos.readOnlyKeySecretName=cosmos-read-only", "--kube-version", ChartTests.KubeVersion);
        Assert.True(exitCode == 0, output);
        Assert.DoesNotContain("azure.workload.identity", output, StringComparison.Ordinal);
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var deployment in KubernetesYaml.LoadAllFromString(output, ChartTests.Kinds, strict: true).OfType<V1Deployment>())
        {
            if (deployment.Spec.Template.Spec.Containers[0].Env?.FirstOrDefault(variable => variable.Name == "Cosmos__Key") is { } key)
            {
                keys[deployment.Metadata.Name[(deployment.Metadata.Name.LastIndexOf('-') + 1)..]] = key.ValueFrom.SecretKeyRef.Name;
            }
        }

        Assert.Equal("cosmos-read-only", keys["api"]);
        Assert.Equal("daprpayments-cosmos", keys["ledger"]);
        Assert.Equal("daprpayments-cosmos", keys["failover"]);
    }

    [Fact]
    public void NoValuesFile_HoldsASecretValue()
    {
        var files = Directory.GetFiles(HelmTool.ChartDirectory, "values*.yaml")
            .Concat(Directory.GetFiles(Path.Combine(HelmTool.ChartDirectory, "ci"), "*.yaml"))
            .ToArray();
        Assert.True(files.Length >= 4, $"only {files.Length} values files found under {HelmTool.ChartDirectory}");
        foreach (var file in files)
        {
            foreach (var (line, number) in File.ReadLines(file).Select((line, index) => (line, index + 1)))
            {
                var entry = Entry().Match(line);
                if (!entry.Success)
                {
                    continue;
                }

                var (key, value) = (entry.Groups["key"].Value, entry.Groups["value"].Value.Trim().Trim('"', '\''));
                var where = $"{Path.GetFileName(file)}:{number}";
                // A secret-sounding key may name a Secret, say where a key goes, or switch something; never hold one.
                if (SecretKey().IsMatch(key) && !NamesOrSwitches().IsMatch(key))
                {
                    Assert.True(value is "" or "[]" or "{}" or "true" or "false", $"{where}: '{key}' holds a value");
                }

                // A GUID is an identifier (a managed identity's client id), not a credential.
                Assert.False(LooksRandom().IsMatch(value) && !Guid.TryParse(value, out _), $"{where}: '{key}' holds what looks like a credential");
            }
        }
    }

    private static bool Opens(IList<V1NetworkPolicyPort>? ports, HashSet<int> appPorts) =>
        ports is null || ports.Count == 0 // no ports listed: every port
        || ports.Any(port => int.TryParse(port.Port?.Value, System.Globalization.CultureInfo.InvariantCulture, out var number) && appPorts.Contains(number));

    /// <summary>An egress rule reaches the release's pods unless every peer is another namespace's (the Dapr control
    /// plane) or an address block.</summary>
    private static bool MayReachReleasePods(V1NetworkPolicyEgressRule rule) =>
        rule.To is null || rule.To.Count == 0
        || rule.To.Any(peer => peer.IpBlock is null
            && (peer.NamespaceSelector?.MatchLabels is not { } labels
                || !labels.TryGetValue("kubernetes.io/metadata.name", out var name) || name == "payments"));

    private static bool SelectsOnly(V1LabelSelector? selector, string component) =>
        selector?.MatchLabels?.TryGetValue("app.kubernetes.io/component", out var selected) == true && selected == component;

    [GeneratedRegex(@"^\s*-?\s*(?<key>[A-Za-z0-9_.]+)\s*:\s*(?<value>[^#]*)")]
    private static partial Regex Entry();

    [GeneratedRegex("token|password|secret|key|cert", RegexOptions.IgnoreCase)]
    private static partial Regex SecretKey();

    [GeneratedRegex("([Ss]ecretName|Prefix|createSecrets)$")]
    private static partial Regex NamesOrSwitches();

    [GeneratedRegex("^[A-Za-z0-9+/=_-]{32,}$")]
    private static partial Regex LooksRandom();
}
