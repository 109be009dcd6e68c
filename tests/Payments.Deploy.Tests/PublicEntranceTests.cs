using System.Globalization;
using System.Text.RegularExpressions;
using k8s.Models;

namespace Payments.Deploy.Tests;

/// <summary>Issue 13 item 4: the public API's way in on Kubernetes — an Ingress for ingress-nginx and a Gateway API
/// HTTPRoute — routes only the public API, over TLS, with the API's own body limit and timeout, never retries a POST
/// that reached a replica, and is the only way into the API's port when it is on.</summary>
public sealed partial class PublicEntranceTests
{
    private const string Scenario = "ci/public-entrance-values.yaml";
    private const string Nginx = "nginx.ingress.kubernetes.io/";

    [Fact]
    public async Task NeitherEntrance_IsRendered_UnlessAskedFor()
    {
        var objects = await ChartTests.RenderAsync(null);
        Assert.Empty(objects.OfType<V1Ingress>());
        Assert.Empty(objects.OfType<GatewayHttpRoute>());
    }

    [Fact]
    public async Task TheIngress_RoutesOnlyThePublicApi_OverTls_WithTheApisLimits_AndNeverRetriesAPost()
    {
        var objects = await ChartTests.RenderAsync(Scenario);
        var ingress = Assert.Single(objects.OfType<V1Ingress>());
        var service = ApiService(objects);
        Assert.Equal("nginx", ingress.Spec.IngressClassName);
        var rule = Assert.Single(ingress.Spec.Rules);
        var tls = Assert.Single(ingress.Spec.Tls);
        Assert.Contains(rule.Host, tls.Hosts);
        Assert.Equal("daprpayments-api-tls", tls.SecretName);
        // The public API, its OpenAPI document and the global front's health probe; never /admin or /metrics.
        Assert.Equal([("/v1", "Prefix"), ("/readyz", "Exact"), ("/openapi/v1.json", "Exact")], rule.Http.Paths.Select(path => (path.Path, path.PathType)));
        Assert.All(rule.Http.Paths, path =>
        {
            Assert.Equal(service.Metadata.Name, path.Backend.Service.Name);
            Assert.Contains(service.Spec.Ports, port => port.Name == path.Backend.Service.Port.Name);
        });

        var annotations = ingress.Metadata.Annotations;
        // The API's Kestrel limit (4 x RequestBody.MaxBytes): a body past the API's own limit is read far enough for
        // the API to answer 413 problem+json; at an equal limit the controller's HTML page answered instead.
        Assert.Equal(4 * await ApiBodyLimitAsync(), NginxSize(annotations[Nginx + "proxy-body-size"]));
        // A status wait (GET ?wait=) is answered at its end at the latest: the controller waits longer than that.
        Assert.InRange(int.Parse(annotations[Nginx + "proxy-read-timeout"], CultureInfo.InvariantCulture), await ApiMaxStatusWaitAsync() + 10, 120);
        Assert.Equal(annotations[Nginx + "proxy-read-timeout"], annotations[Nginx + "proxy-send-timeout"]);
        Assert.DoesNotContain("non_idempotent", annotations[Nginx + "proxy-next-upstream"], StringComparison.Ordinal);
        // Plain HTTP reaches the API, which refuses it (403 https-required): a redirect was followed silently, the key
        // sent in cleartext on every request.
        Assert.Equal(("false", "false"), (annotations[Nginx + "ssl-redirect"], annotations[Nginx + "force-ssl-redirect"]));
        var api = objects.OfType<V1Deployment>().Single(deployment => deployment.Metadata.Name.EndsWith("-api", StringComparison.Ordinal));
        Assert.Contains(api.Spec.Template.Spec.Containers[0].Env, variable => variable.Name == "Payments__RequireHttps" && variable.Value == "true");
        Assert.Equal("letsencrypt", annotations["cert-manager.io/cluster-issuer"]);
    }

    [Fact]
    public async Task TheHttpRoute_RoutesOnlyThePublicApi_ToItsService_WithinTheTimeout()
    {
        var objects = await ChartTests.RenderAsync(Scenario);
        var route = Assert.Single(objects.OfType<GatewayHttpRoute>());
        var service = ApiService(objects);
        var parent = Assert.Single(route.Spec.ParentRefs);
        Assert.Equal(("public", "gateway-system", "https"), (parent.Name, parent.Namespace, parent.SectionName));
        Assert.Equal(["payments.region-a.example.com"], route.Spec.Hostnames);
        Assert.Equal([("PathPrefix", "/v1"), ("Exact", "/readyz"), ("Exact", "/openapi/v1.json")], route.Spec.Rules.SelectMany(rule => rule.Matches).Select(match => (match.Path.Type, match.Path.Value)));
        Assert.Equal($"{await ApiMaxStatusWaitAsync() + 30}s", route.Spec.Rules[0].Timeouts?.Request);
        Assert.All(route.Spec.Rules.SelectMany(rule => rule.BackendRefs), backend =>
        {
            Assert.Equal(service.Metadata.Name, backend.Name);
            Assert.Contains(service.Spec.Ports, port => port.Port == backend.Port);
        });
    }

    /// <summary>With an entrance on, the API's port admits the controller's and the Gateway's namespaces and no other
    /// (the public ingress flow, and no more).</summary>
    [Fact]
    public async Task TheApisPort_AdmitsTheEntrances_AndNoOtherNamespace()
    {
        var objects = await ChartTests.RenderAsync(Scenario);
        var api = objects.OfType<V1Deployment>().Single(deployment => deployment.Metadata.Name.EndsWith("-api", StringComparison.Ordinal));
        var port = api.Spec.Template.Spec.Containers[0].Ports.Single(containerPort => containerPort.Name == "http").ContainerPort;
        var labels = api.Spec.Template.Metadata.Labels;
        Assert.True(NetworkFlowTests.AdmitsFromNamespace(objects, labels, "ingress-nginx", port));
        Assert.True(NetworkFlowTests.AdmitsFromNamespace(objects, labels, "gateway-system", port));
        Assert.False(NetworkFlowTests.AdmitsFromNamespace(objects, labels, "default", port));
        Assert.False(NetworkFlowTests.AdmitsFromNamespace(objects, labels, "ingress-nginx", port + 1));
    }

    [Theory]
    [InlineData("ingress.tls.secretName=\"\"", "ingress.tls.secretName")]
    [InlineData("ingress.host=\"\"", "ingress.host")]
    [InlineData("ingress.annotations={\"nginx.ingress.kubernetes.io/proxy-next-upstream\":\"error non_idempotent\"}", "non-idempotent")]
    [InlineData("httpRoute.parentRefs=[]", "httpRoute.parentRefs")]
    public async Task AnUnsafeOrIncompleteEntrance_IsRefusedAtInstall(string setting, string named)
    {
        var (exitCode, output) = await HelmTool.HelmAsync(
            "template", "dp", ".", "-f", Scenario, "--set-json", setting, "--kube-version", ChartTests.KubeVersion);
        Assert.NotEqual(0, exitCode);
        Assert.Contains(named, output, StringComparison.Ordinal);
    }

    private static V1Service ApiService(IEnumerable<object> objects) =>
        objects.OfType<V1Service>().Single(service => service.Metadata.Name.EndsWith("-api", StringComparison.Ordinal));

    /// <summary>The API's own body limit, from its source (RequestBody.MaxBytes).</summary>
    /// <summary>The API's longest status wait (PaymentStatusWaits.MaxWaitSeconds), read from its source.</summary>
    private static async Task<int> ApiMaxStatusWaitAsync()
    {
        var source = await File.ReadAllTextAsync(Path.Combine(HelmTool.RepositoryRoot, "apps", "Payments.Api", "Apis", "PaymentStatusWaits.cs"));
        var match = MaxWaitSeconds().Match(source);
        Assert.True(match.Success, "PaymentStatusWaits.MaxWaitSeconds not found");
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static async Task<long> ApiBodyLimitAsync()
    {
        var source = await File.ReadAllTextAsync(Path.Combine(HelmTool.RepositoryRoot, "apps", "Payments.Api", "Apis", "RequestBody.cs"));
        var match = MaxBytes().Match(source);
        Assert.True(match.Success, "RequestBody.MaxBytes not found");
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>nginx's size syntax (client_max_body_size): bytes, or k/m/g.</summary>
    private static long NginxSize(string value) => char.ToLowerInvariant(value[^1]) switch
    {
        'k' => long.Parse(value[..^1], CultureInfo.InvariantCulture) * 1024,
        'm' => long.Parse(value[..^1], CultureInfo.InvariantCulture) << 20,
        'g' => long.Parse(value[..^1], CultureInfo.InvariantCulture) << 30,
        _ => long.Parse(value, CultureInfo.InvariantCulture),
    };

    [GeneratedRegex(@"MaxBytes = (\d+) \* 1024;")]
    private static partial Regex MaxBytes();

    [GeneratedRegex(@"const int MaxWaitSeconds = (\d+);")]
    private static partial Regex MaxWaitSeconds();
}
