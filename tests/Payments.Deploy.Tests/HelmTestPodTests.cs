using k8s.Models;

namespace Payments.Deploy.Tests;

/// <summary>Issue 13 item 5: `helm test` makes a real payment through the public API — the chart's own script
/// (files/test-payment.sh; Payments.Local.SystemTests runs the same file against a running system), pointed at the
/// API Service with the operator's token, allowed through the NetworkPolicies — in the region installed active
/// only: a standby takes no writes.</summary>
public sealed class HelmTestPodTests
{
    [Theory]
    [InlineData("values-region-a.yaml")]
    [InlineData("ci/public-entrance-values.yaml")]
    public async Task TheActiveRegionsPaymentTest_RunsTheChartsScript_AgainstTheApi_ThroughThePolicies(string valuesFile)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var pod = Assert.Single(objects.OfType<V1Pod>(), candidate => candidate.Metadata.Name.EndsWith("-test-payment", StringComparison.Ordinal));
        Assert.Equal("test", pod.Metadata.Annotations["helm.sh/hook"]);
        Assert.True(pod.Spec.ActiveDeadlineSeconds is > 0, "the test pod has no deadline");
        var container = Assert.Single(pod.Spec.Containers);
        var script = await File.ReadAllTextAsync(Path.Combine(HelmTool.ChartDirectory, "files", "test-payment.sh"));
        Assert.Equal(script, Assert.Single(container.Args));

        var env = container.Env.ToDictionary(variable => variable.Name);
        var service = objects.OfType<V1Service>().Single(candidate => candidate.Metadata.Name.EndsWith("-api", StringComparison.Ordinal));
        var port = service.Spec.Ports.Single(candidate => candidate.Name == "http").Port;
        Assert.Equal(service.Metadata.Name, env["API_HOST"].Value);
        Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), env["API_PORT"].Value);
        Assert.Equal(("daprpayments-api-admin", "token"), (env["ADMIN_TOKEN"].ValueFrom.SecretKeyRef.Name, env["ADMIN_TOKEN"].ValueFrom.SecretKeyRef.Key));

        var api = objects.OfType<V1Deployment>().Single(deployment => deployment.Metadata.Name == service.Metadata.Name).Spec.Template.Metadata.Labels;
        Assert.True(NetworkFlowTests.Allows(objects, pod.Metadata.Labels, api, port), $"{valuesFile}: the test pod cannot reach the API");
    }

    /// <summary>Chart review: `helm test` leaves its merchant, accounts and deposit in the ledger; a live ledger that
    /// must carry no test entries turns the payment off and keeps the readiness test.</summary>
    [Fact]
    public async Task ThePaymentTest_CanBeTurnedOff_LeavingTheReadinessTest()
    {
        var (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "-f", "values-region-a.yaml", "--set", "payments.publicApi.helmTestPayment=false",
            "--kube-version", ChartTests.KubeVersion, "--namespace", "payments");
        Assert.True(exitCode == 0, output);
        var pod = Assert.Single(k8s.KubernetesYaml.LoadAllFromString(output, ChartTests.Kinds, strict: true).OfType<V1Pod>());
        Assert.EndsWith("-test-readyz", pod.Metadata.Name, StringComparison.Ordinal);
    }

    /// <summary>Both test pods run the API's own image, an override (Tilt's) included — they used to ignore
    /// apps.api.image and fail to pull under Tilt — and both have a deadline.</summary>
    [Fact]
    public async Task TheTestPods_RunTheApisImage_AndEndWithinADeadline()
    {
        var (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "-f", "values-region-a.yaml", "--set", "apps.api.image=registry.example/api:dev",
            "--kube-version", ChartTests.KubeVersion, "--namespace", "payments");
        Assert.True(exitCode == 0, output);
        var objects = k8s.KubernetesYaml.LoadAllFromString(output, ChartTests.Kinds, strict: true);
        var pods = objects.OfType<V1Pod>().ToArray();
        Assert.Equal(2, pods.Length);
        Assert.All(pods, pod =>
        {
            Assert.Equal("registry.example/api:dev", Assert.Single(pod.Spec.Containers).Image);
            Assert.True(pod.Spec.ActiveDeadlineSeconds is > 0, $"{pod.Metadata.Name} has no deadline");
        });
    }

    /// <summary>Review finding: the kubelet probed the API's and the ledger's /readyz, which follows the region, so the
    /// standby's pods were never ready and every rollout and `helm upgrade --wait` there stalled. They are probed on
    /// /servingz; the other apps keep /readyz (the global front keeps probing the API's /readyz through the entrance).</summary>
    [Theory]
    [InlineData("values-region-a.yaml")]
    [InlineData("values-region-b.yaml")]
    public async Task TheKubeletsReadiness_OfTheApiAndTheLedger_DoesNotFollowTheRegion(string valuesFile)
    {
        var deployments = (await ChartTests.RenderAsync(valuesFile)).OfType<V1Deployment>()
            .Where(candidate => candidate.Metadata.Labels.TryGetValue("app.kubernetes.io/component", out var component)
                && component is "api" or "ledger" or "orchestrator" or "risk" or "failover")
            .ToArray();
        Assert.Equal(5, deployments.Length); // every app, the failover service included
        foreach (var deployment in deployments)
        {
            var component = deployment.Metadata.Labels["app.kubernetes.io/component"];
            var app = deployment.Spec.Template.Spec.Containers.Single(container => container.Name != "daprd");
            Assert.Equal(component is "api" or "ledger" ? "/servingz" : "/readyz", app.ReadinessProbe.HttpGet.Path);
        }
    }

    /// <summary>The standby region takes no payment test, and its readiness test asks /healthz: its /readyz answers 503
    /// by design (review: `helm test` always failed there, though NOTES.txt says to run it in both regions).</summary>
    [Fact]
    public async Task TheStandbyRegion_HasNoPaymentTest_AndItsReadinessTestPassesThere()
    {
        var objects = await ChartTests.RenderAsync("values-region-b.yaml");
        Assert.DoesNotContain(objects.OfType<V1Pod>(), candidate => candidate.Metadata.Name.EndsWith("-test-payment", StringComparison.Ordinal));
        var standby = Assert.Single(objects.OfType<V1Pod>(), candidate => candidate.Metadata.Name.EndsWith("-test-readyz", StringComparison.Ordinal));
        Assert.Contains("GET /healthz ", Assert.Single(Assert.Single(standby.Spec.Containers).Args), StringComparison.Ordinal);
        var active = Assert.Single((await ChartTests.RenderAsync("values-region-a.yaml")).OfType<V1Pod>(), candidate => candidate.Metadata.Name.EndsWith("-test-readyz", StringComparison.Ordinal));
        Assert.Contains("GET /readyz ", Assert.Single(Assert.Single(active.Spec.Containers).Args), StringComparison.Ordinal);
    }
}
