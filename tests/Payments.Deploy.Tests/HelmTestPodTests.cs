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

    /// <summary>The script's own branch, run as the pod runs it (bash over /dev/tcp) against a real HTTP server that
    /// answers as a standby region's API does: the first write's 503 region-not-writable ends the test, passing; any
    /// other 503 fails it. (A stand-in server: the whole system as a standby needs a second region, which the local
    /// run has not.)</summary>
    [Theory]
    [InlineData("https://daprpayments.dev/problems/region-not-writable", 0)]
    [InlineData("https://daprpayments.dev/problems/service-unavailable", 1)]
    public async Task ThePaymentScript_StopsPassingWhereTheRegionTakesNoWrites_AndOnlyThere(string type, int exitCode)
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var serving = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var buffer = new byte[8192];
            var read = 0;
            while (!System.Text.Encoding.ASCII.GetString(buffer, 0, read).Contains("helm test\"}", StringComparison.Ordinal) && read < buffer.Length)
            {
                var more = await stream.ReadAsync(buffer.AsMemory(read));
                if (more == 0)
                {
                    break;
                }

                read += more;
            }

            var body = $$"""{"type":"{{type}}","title":"t","status":503}""";
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(
                $"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
        });
        var start = new System.Diagnostics.ProcessStartInfo("bash", [Path.Combine(HelmTool.ChartDirectory, "files", "test-payment.sh")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["API_HOST"] = "127.0.0.1", ["API_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture), ["ADMIN_TOKEN"] = "t", ["TIMEOUT_SECONDS"] = "10" },
        };
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await serving.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(process.ExitCode == exitCode, $"exit {process.ExitCode}: {await output} {await errors}");
    }

    /// <summary>A chart review: the tests followed the role a region was installed with, not the lease — after a
    /// switchover the region installed active failed its readiness test (its /readyz is 503 as a standby) and the one
    /// installed standby, active now, made no payment. Both regions render the same tests: the readiness test asks
    /// /servingz (the kubelet's, which does not follow the region), and the payment test stops, passing, where the first
    /// write answers 503 region-not-writable (the script's own branch).</summary>
    [Fact]
    public async Task BothRegions_RenderTheSameTests_WhicheverIsActiveNow()
    {
        var script = await File.ReadAllTextAsync(Path.Combine(HelmTool.ChartDirectory, "files", "test-payment.sh"));
        Assert.Contains("region-not-writable", script, StringComparison.Ordinal);
        foreach (var values in new[] { "values-region-a.yaml", "values-region-b.yaml" })
        {
            var pods = (await ChartTests.RenderAsync(values)).OfType<V1Pod>().ToArray();
            Assert.Contains(pods, candidate => candidate.Metadata.Name.EndsWith("-test-payment", StringComparison.Ordinal));
            var readiness = Assert.Single(pods, candidate => candidate.Metadata.Name.EndsWith("-test-readyz", StringComparison.Ordinal));
            Assert.Contains("GET /servingz ", Assert.Single(Assert.Single(readiness.Spec.Containers).Args), StringComparison.Ordinal);
        }
    }
}
