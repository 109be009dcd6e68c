using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using Etcdserverpb;
using Grpc.Core;
using k8s.Models;
using Payments.Etcd;

namespace Payments.Deploy.Tests;

/// <summary>The chart's etcd (issue 11, item 3): client and peer TLS with client-certificate authentication,
/// certificates generated once by the chart or issued by cert-manager, and a bootstrap Job that gives each app an etcd
/// role limited to its key families — the same table the apps, the local system and the container suite use.</summary>
public sealed partial class EtcdChartTests
{
    private const string KeyPrefix = "/daprpayments/";

    [Fact]
    public async Task TheBootstrapJob_GrantsEachAppExactlyTheFamiliesOfTheAppsOwnTable()
    {
        var objects = await ChartTests.RenderAsync(valuesFile: null);
        var script = Assert.Single(objects.OfType<V1Job>(), job => job.Metadata.Name.EndsWith("-etcd-auth", StringComparison.Ordinal))
            .Spec.Template.Spec.Containers.Single().Args.Single();

        var granted = Grant().Matches(script).Select(match => (match.Groups["role"].Value, match.Groups["type"].Value, match.Groups["key"].Value)).ToHashSet();
        var expected = EtcdRoles.For(KeyPrefix)
            .SelectMany(role => role.Prefixes.Select(prefix => (role.Name, "readwrite", prefix))
                .Concat(role.ReadPrefixes.Select(prefix => (role.Name, "read", prefix))))
            .ToHashSet();
        Assert.Equal(expected.OrderBy(grant => grant.ToString()), granted.OrderBy(grant => grant.ToString()));
        Assert.Contains("user maintenance root", script, StringComparison.Ordinal); // defragmentation needs etcd's root role
        Assert.EndsWith("ctl auth enable", script.TrimEnd().Split('\n')[^2].Trim(), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(ChartTests.ValuesFiles), MemberType = typeof(ChartTests))]
    public async Task Etcd_RunsWithClientAndPeerTls_AndEveryClientPresentsItsOwnCertificate(string valuesFile)
    {
        var objects = await ChartTests.RenderAsync(valuesFile);
        var etcd = objects.OfType<V1StatefulSet>().SingleOrDefault(set => set.Metadata.Name.EndsWith("-etcd", StringComparison.Ordinal));
        if (valuesFile == "ci/external-etcd-values.yaml")
        {
            Assert.Null(etcd); // etcd runs outside the release there alone: no StatefulSet to check
        }
        else
        {
            Assert.NotNull(etcd); // a values file that lost the release's etcd must not pass as one with an external etcd
            var args = etcd.Spec.Template.Spec.Containers.Single().Args;
            foreach (var flag in new[] { "--client-cert-auth=true", "--peer-client-cert-auth=true", "--trusted-ca-file=", "--peer-trusted-ca-file=", "--cert-file=", "--peer-cert-file=" })
            {
                Assert.Contains(args, arg => arg.StartsWith(flag, StringComparison.Ordinal));
            }

            // Only the members' certificate on the Raft port, not an app's of the same CA (review finding); and a member
            // slow to open its database is not restarted in a loop.
            Assert.Contains($"--peer-cert-allowed-cn={etcd.Metadata.Name}", args);
            Assert.NotNull(etcd.Spec.Template.Spec.Containers.Single().StartupProbe);

            Assert.All(args.Where(arg => arg.Contains("-urls=", StringComparison.Ordinal) && !arg.StartsWith("--listen-metrics-urls", StringComparison.Ordinal)),
                arg => Assert.Contains("=https://", arg, StringComparison.Ordinal));
        }

        foreach (var deployment in objects.OfType<V1Deployment>())
        {
            var component = deployment.Spec.Template.Metadata.Labels["app.kubernetes.io/component"];
            var env = deployment.Spec.Template.Spec.Containers.Single().Env.ToDictionary(variable => variable.Name, variable => variable.Value);
            var mounted = deployment.Spec.Template.Spec.Volumes.Where(volume => volume.Secret is not null).Select(volume => volume.Secret.SecretName).ToArray();
            if (component == "risk")
            {
                Assert.False(env.ContainsKey("Payments__EtcdCertFile"), "risk keeps nothing in etcd: no certificate");
                continue;
            }

            Assert.StartsWith("https://", env["Payments__EtcdEndpoints"], StringComparison.Ordinal);
            string[] files = ["Payments__EtcdCaFile", "Payments__EtcdCertFile", "Payments__EtcdKeyFile"];
            Assert.All(files, key => Assert.StartsWith("/etc/daprpayments/etcd-tls/", env[key], StringComparison.Ordinal));
            // Each pod mounts its own user's certificate alone; the maintenance user's (etcd's root role) only the
            // storage maintenance's pod, which serves no request and runs no sidecar.
            var user = component == "etcd-maintenance" ? "maintenance" : component;
            if (component == "orchestrator")
            {
                // And the public part of its sidecar's state-store certificate, whose expiry it reports (the sidecar
                // holds the one the pod started with): the certificate alone, never its key.
                Assert.Equal([$"dp-daprpayments-etcd-client-{user}", "dp-daprpayments-etcd-client-statestore"], mounted);
                var sidecars = deployment.Spec.Template.Spec.Volumes.Single(volume => volume.Secret?.SecretName == "dp-daprpayments-etcd-client-statestore");
                Assert.Equal(["tls.crt"], sidecars.Secret.Items.Select(item => item.Key));
                Assert.Equal("/etc/daprpayments/statestore-tls/tls.crt", env["Payments__StateStoreCertificateFile"]);
            }
            else
            {
                Assert.Equal([$"dp-daprpayments-etcd-client-{user}"], mounted);
                Assert.False(env.ContainsKey("Payments__StateStoreCertificateFile"), component);
            }

            Assert.False(env.ContainsKey("Payments__EtcdMaintenanceCertFile"), $"{component}: a second etcd identity");
            Assert.Equal(component switch { "etcd-maintenance" => "Only", "ledger" => "Off", _ => null }, env.GetValueOrDefault("Payments__EtcdMaintenance"));
            if (component == "etcd-maintenance")
            {
                Assert.Null(deployment.Spec.Template.Metadata.Annotations); // no Dapr sidecar
            }
        }

        var store = Assert.Single(objects.OfType<DaprComponent>(), component => component.Spec.Type == "state.etcd");
        var metadata = store.Spec.Metadata.ToDictionary(item => item.Name);
        Assert.Equal("true", metadata["tlsEnable"].Value);
        Assert.All(new[] { "ca", "cert", "key" }, name => Assert.Equal("dp-daprpayments-etcd-client-statestore", metadata[name].SecretKeyRef?.Name));
    }

    [Fact]
    public async Task WithCertManager_EveryCertificateIsIssuedByIt_AndTheChartGeneratesNone()
    {
        var (exitCode, output) = await HelmTool.HelmAsync(
            "template", "dp", ".", "--set", "etcd.tls.certManager.enabled=true", "--set", "serviceIdentity.createSecrets=false", "--kube-version", ChartTests.KubeVersion);
        Assert.True(exitCode == 0, output);
        Assert.DoesNotContain("kind: Secret", output, StringComparison.Ordinal);
        var certificates = CertificateName().Matches(output).Select(match => match.Groups[1].Value).ToHashSet();
        string[] users = ["root", "maintenance", "ledger", "api", "orchestrator", "failover", "statestore"];
        Assert.Equal(users.Select(user => $"dp-daprpayments-etcd-client-{user}").Append("dp-daprpayments-etcd-member").Append("dp-daprpayments-etcd-ca").Order(), certificates.Order());
    }

    /// <summary>A review: the chart's CA was made with its certificates' lifetime and ended with all of them, so a
    /// certificate re-signed before then (the documented rotation) ended then too, and every 825 days each region went
    /// through a new CA, a planned interruption of writes. The CA outlives every certificate it signs by years.</summary>
    [Fact]
    public async Task TheGeneratedCa_OutlivesTheCertificatesItSigns()
    {
        var objects = await ChartTests.RenderAsync(valuesFile: null);
        var secrets = objects.OfType<V1Secret>().Where(secret => secret.StringData?.ContainsKey("tls.crt") == true).ToArray();
        using var ca = X509Certificate2.CreateFromPem(secrets.Single(secret => secret.Metadata.Name.EndsWith("-etcd-ca", StringComparison.Ordinal)).StringData["tls.crt"]);
        var leaves = secrets.Where(secret => !secret.Metadata.Name.EndsWith("-etcd-ca", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(leaves);
        foreach (var leaf in leaves)
        {
            using var certificate = X509Certificate2.CreateFromPem(leaf.StringData["tls.crt"]);
            Assert.True(ca.NotAfter > certificate.NotAfter.AddYears(5), $"{leaf.Metadata.Name} ends {certificate.NotAfter:O}, its CA {ca.NotAfter:O}");
        }
    }

    /// <summary>Found in review: the member certificate named the pods only by the wildcard "*.&lt;headless&gt;", which Go
    /// accepts but .NET does not (it checks names with OpenSSL's X509_check_host, which refuses a wildcard with fewer
    /// than two labels after it), so every app would have failed its TLS handshake with etcd on a cluster, while the
    /// tests dialed 127.0.0.1. A real handshake with the chart's member certificate, under each name the apps dial.</summary>
    [Fact]
    public async Task EveryEtcdNameTheAppsDial_PassesDotNetsOwnNameCheck_OnTheMembersCertificate()
    {
        var objects = await ChartTests.RenderAsync(valuesFile: null);
        var member = objects.OfType<V1Secret>().Single(secret => secret.Metadata.Name.EndsWith("-etcd-member", StringComparison.Ordinal)).StringData;
        var endpoints = objects.OfType<V1Deployment>().SelectMany(deployment => deployment.Spec.Template.Spec.Containers)
            .SelectMany(container => container.Env ?? []).First(variable => variable.Name == "Payments__EtcdEndpoints").Value;
        var hosts = endpoints.Split(',').Select(url => new Uri(url).Host).ToArray();
        Assert.Equal(3, hosts.Length);
        using var certificate = X509Certificate2.CreateFromPem(member["tls.crt"], member["tls.key"]);
        using var serving = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null); // SslStream needs a persisted key

        foreach (var host in hosts)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var serverSide = Task.Run(async () =>
            {
                using var accepted = await listener.AcceptTcpClientAsync(timeout.Token);
                await using var server = new SslStream(accepted.GetStream());
                await server.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = serving }, timeout.Token);
            });
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port, timeout.Token);
            var seen = SslPolicyErrors.None;
            await using (var client = new SslStream(tcp.GetStream()))
            {
                await client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = host,
                    RemoteCertificateValidationCallback = (_, _, _, errors) =>
                    {
                        seen = errors;
                        return true;
                    },
                }, timeout.Token);
            }

            await serverSide;
            // The chain is the release's own CA (the apps check it themselves, as EtcdTls does); the name must match.
            Assert.True((seen & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None, $"{host}: {seen}");
        }
    }

    /// <summary>The rendered chart run for real, as far as this machine allows (no Kubernetes here): its etcd image
    /// with the StatefulSet's own arguments and the Secrets the chart generated, three members on a Docker network
    /// under the pods' DNS names, then the bootstrap Job's own script in its own image. After it: a client without a
    /// certificate of the release's CA is refused, the ledger's certificate writes the ledger, the API's cannot. And a
    /// member that lost its volume, removed and added again as the runbook says, joins and catches up (it started as a
    /// new cluster's member before, and stopped at once in a loop).</summary>
    [Fact]
    public async Task TheRenderedEtcdAndBootstrapJob_RunForReal_LimitEachAppToItsKeys_AndTakeBackAMemberThatLostItsVolume()
    {
        var objects = await ChartTests.RenderAsync(valuesFile: null);
        var secrets = objects.OfType<V1Secret>().ToDictionary(secret => secret.Metadata.Name);
        var etcd = Assert.Single(objects.OfType<V1StatefulSet>(), set => set.Metadata.Name.EndsWith("-etcd", StringComparison.Ordinal));
        var job = Assert.Single(objects.OfType<V1Job>(), item => item.Metadata.Name.EndsWith("-etcd-auth", StringComparison.Ordinal));
        var member = etcd.Spec.Template.Spec.Containers.Single();
        var jobContainer = job.Spec.Template.Spec.Containers.Single();

        var run = Guid.NewGuid().ToString("N")[..8];
        var work = Path.Combine(Path.GetTempPath(), $"daprpayments-chart-etcd-{run}");
        var network = $"daprpayments-chart-{run}";
        try
        {
            string SecretDirectory(string name)
            {
                // Readable by the containers' user (the bind mount keeps the host's owner): a throw-away CA of this test.
                var directory = Path.Combine(work, name);
                Directory.CreateDirectory(directory);
                foreach (var (key, value) in secrets[name].StringData)
                {
                    var file = Path.Combine(directory, key);
                    File.WriteAllText(file, value);
                    if (!OperatingSystem.IsWindows())
                    {
                        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                    }
                }

                return directory;
            }

            await DockerAsync("network", "create", "--label", "daprpayments.tests.chart=" + run, network);
            var memberTls = SecretDirectory("dp-daprpayments-etcd-member");
            var hostPort = 0;
            Task<string> StartMemberAsync(int index)
            {
                // As the kubelet runs the pod: its command and arguments, its environment ($(POD_NAME) expanded).
                var pod = $"dp-daprpayments-etcd-{index}";
                string Expand(string value) => value.Replace("$(POD_NAME)", pod, StringComparison.Ordinal);
                string[] ports = index == 0 ? ["--publish", "127.0.0.1::2379"] : [];
                var environment = member.Env.Where(variable => variable.Value is not null).SelectMany(variable => new[] { "--env", $"{variable.Name}={Expand(variable.Value)}" });
                return DockerAsync([
                    "run", "--detach", "--name", $"{network}-{pod}", "--network", network, "--network-alias", $"{pod}.dp-daprpayments-etcd-headless",
                    // The headless Service's own name resolves to every member, as in a cluster: etcd checks a peer's
                    // certificate by resolving its DNS names to the peer's address (wildcards cannot be resolved).
                    "--network-alias", "dp-daprpayments-etcd-headless",
                    "--label", "daprpayments.tests.chart=" + run, "--env", $"POD_NAME={pod}", .. environment, "--volume", $"{memberTls}:/etc/etcd/tls:ro", .. ports,
                    "--entrypoint", member.Command[0], member.Image, .. member.Command.Skip(1), .. member.Args.Select(Expand)]);
            }

            // etcdctl in the member image, as the maintenance user (what the runbooks do); not asserting: polls use it.
            var maintenanceTls = SecretDirectory("dp-daprpayments-etcd-client-maintenance");
            Task<(int ExitCode, string Output)> TryEtcdctlAsync(int index, params string[] arguments) => HelmTool.RunAsync("docker", [
                "run", "--rm", "--network", network, "--label", "daprpayments.tests.chart=" + run, "--user", "10001:10001",
                "--volume", $"{maintenanceTls}:/tls:ro", "--entrypoint", "etcdctl", member.Image,
                $"--endpoints=https://dp-daprpayments-etcd-{index}.dp-daprpayments-etcd-headless:2379", "--cacert=/tls/ca.crt", "--cert=/tls/tls.crt",
                "--key=/tls/tls.key", "--dial-timeout=3s", "--command-timeout=10s", .. arguments], Path.GetTempPath());
            async Task<string> PollEtcdctlAsync(int index, Func<string, bool> done, string what, params string[] arguments)
            {
                var last = "";
                for (var attempt = 0; attempt < 45; attempt++)
                {
                    (_, last) = await TryEtcdctlAsync(index, arguments);
                    if (done(last))
                    {
                        return last;
                    }

                    await Task.Delay(TimeSpan.FromSeconds(1)); // bounded by the attempts; a failure says what etcd answered
                }

                var log = (await HelmTool.RunAsync("docker", ["logs", $"{network}-dp-daprpayments-etcd-{index}"], Path.GetTempPath())).Output;
                Assert.Fail($"{what}: {last}\n{log}");
                return last;
            }

            async Task PollAsync(Func<Task<bool>> done, string what)
            {
                for (var attempt = 0; attempt < 45; attempt++)
                {
                    if (await done())
                    {
                        return;
                    }

                    await Task.Delay(TimeSpan.FromSeconds(1)); // bounded by the attempts
                }

                Assert.Fail(what);
            }

            Task PollLogAsync(int index, string line) => PollAsync(
                async () => (await HelmTool.RunAsync("docker", ["logs", $"{network}-dp-daprpayments-etcd-{index}"], Path.GetTempPath())).Output.Contains(line, StringComparison.Ordinal),
                $"etcd-{index} never logged '{line}'");

            // Two members first, the third once they run: a pod that starts late (its node slow, its image still
            // pulling) finds the cluster running, but it is one of the members that cluster was created with (listed
            // under its name, from --initial-cluster), not one added since: it starts as they did (new), and joins.
            await StartMemberAsync(0);
            await StartMemberAsync(1);
            await PollEtcdctlAsync(0, answer => answer.Contains("dp-daprpayments-etcd-1.dp-daprpayments-etcd-headless:2379", StringComparison.Ordinal),
                "the first two members never formed the cluster", "member", "list");
            await StartMemberAsync(2);
            foreach (var index in new[] { 0, 2 })
            {
                await PollLogAsync(index, "starts with --initial-cluster-state=new");
            }

            var published = await DockerAsync("port", $"{network}-dp-daprpayments-etcd-0", "2379/tcp");
            hostPort = int.Parse(published.Trim().Split('\n')[0].Split(':')[^1], CultureInfo.InvariantCulture);

            // The Job, bounded by its own wait for a quorum (60 tries of 5 s) and this test's command timeout.
            var rootTls = SecretDirectory("dp-daprpayments-etcd-client-root");
            Task<string> RunJobAsync() => DockerAsync([
                "run", "--rm", "--network", network, "--label", "daprpayments.tests.chart=" + run, "--user", "10001:10001",
                .. jobContainer.Env.SelectMany(variable => new[] { "--env", $"{variable.Name}={variable.Value}" }),
                "--volume", $"{rootTls}:/tls:ro", "--entrypoint", jobContainer.Command[0], jobContainer.Image, .. jobContainer.Command.Skip(1), .. jobContainer.Args]);
            var jobOutput = await RunJobAsync();
            Assert.Contains("etcd authentication on", jobOutput, StringComparison.Ordinal);
            Assert.DoesNotContain("revoking", jobOutput, StringComparison.Ordinal);

            // The apps' own client (Payments.Etcd) with the chart's certificates, through member 0's published port.
            var endpoint = $"https://127.0.0.1:{hostPort}";
            EtcdTls Client(string user)
            {
                var directory = SecretDirectory($"dp-daprpayments-etcd-client-{user}");
                return new EtcdTls(Path.Combine(directory, "ca.crt"), Path.Combine(directory, "tls.crt"), Path.Combine(directory, "tls.key"));
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var ledgerKey = KeyPrefix + "ledger/acct/chart-test";
            using (var plaintext = EtcdConnection.Create($"http://127.0.0.1:{hostPort}"))
            {
                await Assert.ThrowsAsync<RpcException>(() => PutAsync(plaintext, ledgerKey, timeout.Token));
            }

            using (var ledger = EtcdConnection.Create(endpoint, Client("ledger")))
            {
                await PutAsync(ledger, ledgerKey, timeout.Token);
            }

            using var api = EtcdConnection.Create(endpoint, Client("api"));
            await PutAsync(api, KeyPrefix + "idempotency/chart-test", timeout.Token);
            var denied = await Assert.ThrowsAsync<RpcException>(() => PutAsync(api, ledgerKey, timeout.Token));
            Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);

            // An upgrade narrows a role: a grant an earlier version made (here the ledger's family for the API) is
            // revoked by the Job of the next one, and the role's own families stay. A grant under another key prefix
            // (another release on a shared etcd, with the same role names) is not this Job's to revoke.
            const string OtherRelease = "/other-release/api/";
            using (var root = EtcdConnection.Create(endpoint, Client("root")))
            {
                await EtcdRbac.EnableAsync(root, [new EtcdRole("api", [KeyPrefix + "ledger/", OtherRelease], [])], timeout.Token);
            }

            await PutAsync(api, ledgerKey, timeout.Token); // the stale grant is live
            var upgrade = await RunJobAsync();
            Assert.Contains($"revoking api's grant on {KeyPrefix}ledger/", upgrade, StringComparison.Ordinal);
            Assert.DoesNotContain(OtherRelease, upgrade, StringComparison.Ordinal);
            var revoked = await Assert.ThrowsAsync<RpcException>(() => PutAsync(api, ledgerKey, timeout.Token));
            Assert.Equal(StatusCode.PermissionDenied, revoked.StatusCode);
            await PutAsync(api, KeyPrefix + "idempotency/chart-test", timeout.Token);
            await PutAsync(api, OtherRelease + "merchant", timeout.Token);

            // A member loses its volume (its container and the data in it are gone): the runbook's commands, as the
            // maintenance user (etcd-member-lost.md), then the pod started again with nothing: it joins, and catches up.
            async Task<string> EtcdctlAsync(int index, params string[] arguments)
            {
                var (exitCode, output) = await TryEtcdctlAsync(index, arguments);
                Assert.True(exitCode == 0, $"etcdctl {string.Join(' ', arguments)} failed: {output}");
                return output;
            }

            // The pod comes back on an empty volume before anyone acts: still a member by its name, it starts "new",
            // etcd stops it (its identity was bootstrapped) and leaves a data directory without a write-ahead log.
            const string Lost = "dp-daprpayments-etcd-2";
            await DockerAsync("rm", "--force", $"{network}-{Lost}");
            await StartMemberAsync(2);
            await PollAsync(async () => (await DockerAsync("inspect", "--format", "{{.State.Running}}", $"{network}-{Lost}")) == "false",
                "the member on an empty volume did not stop");
            var lostId = (await EtcdctlAsync(0, "member", "list")).Split('\n').Single(line => line.Contains($", {Lost},", StringComparison.Ordinal)).Split(',')[0];
            await EtcdctlAsync(0, "member", "remove", lostId);
            await EtcdctlAsync(0, "member", "add", Lost, $"--peer-urls=https://{Lost}.dp-daprpayments-etcd-headless:2380");
            await DockerAsync("start", $"{network}-{Lost}"); // the kubelet's next restart of that pod, on that volume
            // Its own copy (a serializable read answers from the member asked): there once it has caught up.
            await PollEtcdctlAsync(2, answer => answer.Contains("chart-test", StringComparison.Ordinal), "the member that lost its volume never caught up",
                "get", "--consistency=s", ledgerKey);
            await PollLogAsync(2, $"etcd member {Lost} starts with --initial-cluster-state=existing");
            Assert.Contains($", started, {Lost},", await EtcdctlAsync(0, "member", "list"), StringComparison.Ordinal);
        }
        finally
        {
            var containers = await DockerAsync("container", "ls", "--all", "--quiet", "--filter", "label=daprpayments.tests.chart=" + run);
            if (containers.Length > 0)
            {
                await DockerAsync(["rm", "--force", .. containers.Split('\n', StringSplitOptions.RemoveEmptyEntries)]);
            }

            await HelmTool.RunAsync("docker", ["network", "rm", network], Path.GetTempPath());
            if (Directory.Exists(work))
            {
                Directory.Delete(work, recursive: true);
            }
        }
    }

    private static async Task<string> DockerAsync(params string[] arguments)
    {
        var (exitCode, output) = await HelmTool.RunAsync("docker", arguments, Path.GetTempPath(), new Dictionary<string, string>
        {
            ["DOCKER_API_VERSION"] = Environment.GetEnvironmentVariable("DOCKER_API_VERSION") ?? "1.41",
        });
        Assert.True(exitCode == 0, $"docker {string.Join(' ', arguments.Take(3))}… failed: {output}");
        return output.Trim();
    }

    /// <summary>A put, retried (bounded) while the member does not answer in time: on a busy machine a TLS handshake
    /// through Docker's port proxy can outlast one call's connect timeout. Refusals (PermissionDenied) are not retried.</summary>
    private static async Task<PutResponse> PutAsync(EtcdConnection connection, string key, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await EtcdConnection.CallAsync(token => connection.Kv.PutAsync(
                    new PutRequest { Key = EtcdBytes.Key(key), Value = EtcdBytes.Key("v") }, cancellationToken: token), cancellationToken);
            }
            catch (RpcException exception) when (exception.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && attempt < MaxPutAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500 * attempt), cancellationToken);
            }
        }
    }

    private const int MaxPutAttempts = 6;

    [GeneratedRegex(@"^\s*grant (?<role>[a-z]+) (?<type>readwrite|read) '(?<key>[^']+)'\s*$", RegexOptions.Multiline)]
    private static partial Regex Grant();

    [GeneratedRegex(@"kind: Certificate\s*\nmetadata:\s*\n\s*name: (\S+)")]
    private static partial Regex CertificateName();
}
