using k8s;
using k8s.Models;

namespace Payments.Deploy.Tests;

/// <summary>What a rollout, a node drain or an autoscaler's scale-down does to requests in flight (a review against
/// Kubernetes' and Dapr's behaviour): a stopping pod keeps serving while the cluster stops sending to it, its sidecar
/// outlives its drain, a rollout takes no pod before its replacement is ready, and a drain takes one pod at a time.</summary>
public sealed class PodShutdownTests
{
    /// <summary>The app's own shutdown (.NET's HostOptions.ShutdownTimeout default, not changed by the apps) and the
    /// sidecar's after it: its health threshold (3 probes 5 s apart, dapr/dapr pkg/injector/patcher/sidecar.go) and
    /// its own 5 s shutdown (pkg/runtime/config.go).</summary>
    private const int AppShutdownSeconds = 30;
    private const int SidecarShutdownSeconds = 15 + 5;

    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task AStoppingApp_KeepsServingWhileTheClusterForgetsIt_AndItsSidecarOutlivesItsDrain(string valuesFile)
    {
        var apps = ChartTests.WithSidecar(await ChartTests.RenderAsync(valuesFile));
        Assert.NotEmpty(apps);
        foreach (var app in apps)
        {
            var pod = app.Spec.Template.Spec;
            var sleep = pod.Containers[0].Lifecycle?.PreStop?.Sleep?.Seconds;
            Assert.True(sleep == 10, $"{valuesFile}: {app.Metadata.Name} preStop sleep {sleep}");
            Assert.True(pod.TerminationGracePeriodSeconds >= sleep + AppShutdownSeconds + SidecarShutdownSeconds,
                $"{valuesFile}: {app.Metadata.Name} grace {pod.TerminationGracePeriodSeconds} s");
            Assert.Equal("true", app.Spec.Template.Metadata.Annotations["dapr.io/enable-native-sidecar"]);
            Assert.Equal("2000", app.Spec.Template.Metadata.Annotations["dapr.io/app-health-probe-timeout"]); // not cut off by a pause

            // A new pod first: the default let a rollout of ten take two at once.
            Assert.Equal(("0", "1"), (app.Spec.Strategy.RollingUpdate.MaxUnavailable.Value, app.Spec.Strategy.RollingUpdate.MaxSurge.Value));
            Assert.All(pod.TopologySpreadConstraints, constraint => Assert.Contains("pod-template-hash", constraint.MatchLabelKeys));
            // Over zones only where every node has one (the regions' clusters): the scheduler scores a node without one
            // of the keys 0 for all constraints, so on kind a zone constraint undid the spread over nodes (a review).
            string[] keys = valuesFile.StartsWith("values-region-", StringComparison.Ordinal) && !valuesFile.Contains("tilt", StringComparison.Ordinal)
                ? ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
                : ["kubernetes.io/hostname"];
            Assert.Equal(keys, pod.TopologySpreadConstraints.Select(constraint => constraint.TopologyKey));
        }
    }

    /// <summary>The sleep action is on from Kubernetes 1.30 (KEP-3960); 1.29, which the chart still installs on, drops
    /// the field it does not know and then refuses a preStop without a handler: there the chart renders none.</summary>
    [Fact]
    public async Task OnKubernetes129_NoPreStopIsRendered_AndTheChartStillInstalls()
    {
        var (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "--kube-version", "1.29.0", "--namespace", "payments");
        Assert.True(exitCode == 0, output);
        var apps = ChartTests.WithSidecar(KubernetesYaml.LoadAllFromString(output, ChartTests.Kinds, strict: true));
        Assert.NotEmpty(apps);
        Assert.All(apps, app => Assert.Null(app.Spec.Template.Spec.Containers[0].Lifecycle));
    }

    /// <summary>Under node pressure the kubelet and the scheduler evict and preempt by priority: etcd (losing two
    /// members stops every payment) and the apps take the classes the operator names; none by default.</summary>
    [Fact]
    public async Task PriorityClasses_AreTheOperatorsToName_EtcdsApartFromTheApps()
    {
        var (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "--set", "scheduling.priorityClassName=pay-high",
            "--set", "scheduling.etcdPriorityClassName=pay-critical", "--kube-version", ChartTests.KubeVersion);
        Assert.True(exitCode == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output, ChartTests.Kinds, strict: true);
        Assert.All(ChartTests.WithSidecar(objects), app => Assert.Equal("pay-high", app.Spec.Template.Spec.PriorityClassName));
        Assert.Equal("pay-critical", Assert.Single(objects.OfType<V1StatefulSet>()).Spec.Template.Spec.PriorityClassName);
        Assert.Equal("pay-critical", Assert.Single(objects.OfType<V1Deployment>(), deployment => deployment.Metadata.Name.EndsWith("-etcd-maintenance", StringComparison.Ordinal))
            .Spec.Template.Spec.PriorityClassName);
        Assert.All((await ChartTests.RenderAsync(null)).OfType<V1Deployment>(), deployment => Assert.Null(deployment.Spec.Template.Spec.PriorityClassName));
    }

    /// <summary>"Keep one pod" let a node drain take nine of an autoscaled API's ten: by default a drain takes one pod
    /// at a time; an operator's pdbMinAvailable still wins, and a budget that would let a drain take every pod is
    /// refused at install.</summary>
    [Fact]
    public async Task ADrain_TakesOnePodAtATime_UnlessTheOperatorSaysOtherwise()
    {
        var objects = await ChartTests.RenderAsync(null);
        var api = Assert.Single(objects.OfType<V1PodDisruptionBudget>(), budget => budget.Metadata.Name.EndsWith("-api", StringComparison.Ordinal));
        Assert.Equal("1", api.Spec.MaxUnavailable.Value);
        Assert.Null(api.Spec.MinAvailable);

        var (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "--set", "apps.api.pdbMinAvailable=2", "--set", "apps.api.autoscaling.minReplicas=3", "--kube-version", ChartTests.KubeVersion);
        Assert.True(exitCode == 0, output);
        var kept = Assert.Single(KubernetesYaml.LoadAllFromString(output, ChartTests.Kinds, strict: true).OfType<V1PodDisruptionBudget>(),
            budget => budget.Metadata.Name.EndsWith("-api", StringComparison.Ordinal));
        Assert.Equal(("2", null), (kept.Spec.MinAvailable.Value, kept.Spec.MaxUnavailable));

        (exitCode, output) = await HelmTool.HelmAsync("template", "dp", ".", "--set", "apps.risk.pdbMaxUnavailable=2", "--kube-version", ChartTests.KubeVersion);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("apps.risk.pdbMaxUnavailable", output, StringComparison.Ordinal);
    }
}
