using Payments.Etcd;
using k8s.Models;

namespace Payments.Deploy.Tests;

/// <summary>What Dapr's sidecar injector really reads and needs, checked on every rendered Deployment. The rules come
/// from Dapr's source, not from memory: a misspelt annotation is silently ignored by the injector, and a pod whose
/// daprd cannot start never becomes ready (issue 13, findings 1 and 2).</summary>
public sealed class DaprInjectorRulesTests
{
    /// <summary>Every annotation the injector of Dapr 1.17 reads: dapr/dapr v1.17.13 (c09a7f93),
    /// pkg/injector/annotations/annotations.go (the same keys as the <c>annotation:"…"</c> tags of <c>SidecarConfig</c>
    /// in pkg/injector/patcher/sidecar.go).</summary>
    private static readonly string[] Injector117 =
    [
        "dapr.io/enabled", "dapr.io/app-port", "dapr.io/config", "dapr.io/app-protocol", "dapr.io/app-ssl", "dapr.io/app-id",
        "dapr.io/enable-profiling", "dapr.io/log-level", "dapr.io/api-token-secret", "dapr.io/app-token-secret", "dapr.io/log-as-json",
        "dapr.io/app-max-concurrency", "dapr.io/enable-metrics", "dapr.io/metrics-port", "dapr.io/enable-debug", "dapr.io/debug-port",
        "dapr.io/env", "dapr.io/env-from-secret", "dapr.io/grpc-port", "dapr.io/internal-grpc-port", "dapr.io/sidecar-cpu-request",
        "dapr.io/sidecar-cpu-limit", "dapr.io/sidecar-memory-request", "dapr.io/sidecar-memory-limit", "dapr.io/sidecar-listen-addresses",
        "dapr.io/sidecar-liveness-probe-delay-seconds", "dapr.io/sidecar-liveness-probe-timeout-seconds",
        "dapr.io/sidecar-liveness-probe-period-seconds", "dapr.io/sidecar-liveness-probe-threshold",
        "dapr.io/sidecar-readiness-probe-delay-seconds", "dapr.io/sidecar-readiness-probe-timeout-seconds",
        "dapr.io/sidecar-readiness-probe-period-seconds", "dapr.io/sidecar-readiness-probe-threshold", "dapr.io/sidecar-image",
        "dapr.io/sidecar-seccomp-profile-type", "dapr.io/http-max-request-size", "dapr.io/max-body-size", "dapr.io/http-read-buffer-size",
        "dapr.io/read-buffer-size", "dapr.io/graceful-shutdown-seconds", "dapr.io/block-shutdown-duration", "dapr.io/enable-api-logging",
        "dapr.io/unix-domain-socket-path", "dapr.io/volume-mounts", "dapr.io/volume-mounts-rw", "dapr.io/disable-builtin-k8s-secret-store",
        "dapr.io/enable-app-health-check", "dapr.io/app-health-check-path", "dapr.io/app-health-probe-interval",
        "dapr.io/app-health-probe-timeout", "dapr.io/app-health-threshold", "dapr.io/app-binding-options-timeout",
        "dapr.io/placement-host-address", "dapr.io/scheduler-host-address",
        "dapr.io/pluggable-components", "dapr.io/pluggable-components-sockets-folder", "dapr.io/component-container",
        "dapr.io/inject-pluggable-components", "dapr.io/app-channel-address", "dapr.io/sentry-request-jwt-audiences",
        "dapr.io/sidecar-svc-annotations", "dapr.io/disable-init-endpoints",
    ];

    /// <summary>Dapr 1.18's: the same file at v1.18.3 (2dcf2e35) adds two.</summary>
    private static readonly string[] Injector118 = [.. Injector117, "dapr.io/actors-disseminate-timeout", "dapr.io/enable-native-sidecar"];

    /// <summary>The 1.18 annotations whose absence on 1.17 is safe because the chart keeps what 1.17 needs beside
    /// them: the native sidecar (1.18.0+) only makes daprd outlive the app's drain, which block-shutdown-duration
    /// approximates on 1.17.</summary>
    private static readonly string[] Only118ButSafeWithout = ["dapr.io/enable-native-sidecar"];

    /// <summary>The chart may use an annotation only if every supported Dapr version reads it (Chart.yaml's
    /// daprpayments.dev/dapr-supported: 1.17 and 1.18); one only 1.18 reads would be ignored on 1.17 — but for
    /// <see cref="Only118ButSafeWithout"/>.</summary>
    private static readonly HashSet<string> InjectorAnnotations = [.. Injector117.Intersect(Injector118), .. Only118ButSafeWithout.Intersect(Injector118)];

    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task EveryDaprAnnotation_IsOneTheInjectorReads(string valuesFile)
    {
        foreach (var deployment in ChartTests.WithSidecar(await ChartTests.RenderAsync(valuesFile)))
        {
            var unknown = deployment.Spec.Template.Metadata.Annotations.Keys
                .Where(key => key.StartsWith("dapr.io/", StringComparison.Ordinal) && !InjectorAnnotations.Contains(key))
                .ToArray();
            Assert.True(unknown.Length == 0, $"{deployment.Metadata.Name}: the injector ignores {string.Join(", ", unknown)}");
        }
    }

    [Fact]
    public async Task TheStateStore_IsScopedToTheOnlyAppThatKeepsWorkflowState()
    {
        var store = Assert.Single((await ChartTests.RenderAsync("values-region-a.yaml")).OfType<DaprComponent>());
        // Dapr loads a component only into the sidecars its scopes name (docs.dapr.io, "Scope components to one or more
        // applications"); the workflow worker (the orchestrator) is the one that uses the store.
        Assert.Equal(["dp-daprpayments-orchestrator"], store.Scopes);
    }

    /// <summary>The etcd state store's metadata as Dapr reads it: dapr/components-contrib v1.18.3 (23d03cb7) and
    /// v1.17.0 (5dc486e5), state/etcd/etcd.go, <c>etcdConfig</c>: endpoints (host:port, split on commas), keyPrefixPath,
    /// tlsEnable, ca, cert, key, maxTxnOps; actorStateStore is daprd's own (dapr/dapr v1.18.3 pkg/actors/state/state.go:
    /// workflows need it). A name outside these is silently ignored; with tlsEnable truthy, ca, cert and key must all be
    /// set ("tls authentication information is incomplete", <c>ParseClientFromConfig</c>); and against an etcd that
    /// speaks TLS — what the apps dial, https:// — tlsEnable must be on (issue 13 finding 3).</summary>
    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task TheEtcdStateStore_UsesOnlyFieldsDaprReads_AndTlsWheneverEtcdSpeaksIt(string valuesFile)
    {
        string[] known = ["endpoints", "keyPrefixPath", "tlsEnable", "ca", "cert", "key", "maxTxnOps", "actorStateStore"];
        var objects = await ChartTests.RenderAsync(valuesFile);
        var store = Assert.Single(objects.OfType<DaprComponent>(), component => component.Spec.Type == "state.etcd");
        var metadata = store.Spec.Metadata.ToDictionary(item => item.Name);
        Assert.Empty(metadata.Keys.Except(known));
        Assert.Equal("true", metadata["actorStateStore"].Value);
        Assert.All(metadata["endpoints"].Value!.Split(','), endpoint => Assert.DoesNotContain("://", endpoint, StringComparison.Ordinal));
        Assert.Equal(EtcdLimits.MaxTxnOps, int.Parse(metadata["maxTxnOps"].Value!, System.Globalization.CultureInfo.InvariantCulture));
        if (objects.OfType<V1StatefulSet>().SingleOrDefault(set => set.Metadata.Name.EndsWith("-etcd", StringComparison.Ordinal)) is { } etcd)
        {
            Assert.Contains($"--max-txn-ops={EtcdLimits.MaxTxnOps}", etcd.Spec.Template.Spec.Containers.Single().Args); // the store's bound is etcd's
        }

        var orchestrator = objects.OfType<V1Deployment>().Single(deployment => deployment.Metadata.Name.EndsWith("-orchestrator", StringComparison.Ordinal));
        var etcdSpeaksTls = orchestrator.Spec.Template.Spec.Containers[0].Env.Single(variable => variable.Name == "Payments__EtcdEndpoints").Value
            .StartsWith("https://", StringComparison.Ordinal);
        Assert.Equal(etcdSpeaksTls ? "true" : "false", metadata["tlsEnable"].Value);
        if (etcdSpeaksTls)
        {
            Assert.All(new[] { "ca", "cert", "key" }, name =>
                Assert.True(metadata.TryGetValue(name, out var item) && (item.SecretKeyRef is not null || !string.IsNullOrEmpty(item.Value)), $"{valuesFile}: {name} missing"));
        }
    }

    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task APodWithoutTheKubernetesApiToken_HasDaprsBuiltInSecretStoreOff(string valuesFile)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var accounts = objects.OfType<V1ServiceAccount>().ToDictionary(account => account.Metadata.Name);
        foreach (var deployment in ChartTests.WithSidecar(objects))
        {
            var pod = deployment.Spec.Template.Spec;
            // The pod's setting wins over the ServiceAccount's (Kubernetes: "Configure Service Accounts for Pods").
            var mounted = pod.AutomountServiceAccountToken ?? accounts[pod.ServiceAccountName].AutomountServiceAccountToken ?? true;
            if (!mounted)
            {
                // daprd starts the built-in Kubernetes secret store unless told not to (sidecar_container.go passes
                // --disable-builtin-k8s-secret-store only for this annotation); without the API token it cannot.
                deployment.Spec.Template.Metadata.Annotations.TryGetValue("dapr.io/disable-builtin-k8s-secret-store", out var disabled);
                Assert.True(disabled == "true", $"{deployment.Metadata.Name}: no API token, yet daprd would start its Kubernetes secret store");
            }
        }
    }
}
