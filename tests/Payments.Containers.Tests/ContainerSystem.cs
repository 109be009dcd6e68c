using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Images;
using DotNet.Testcontainers.Networks;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Etcd;
using Payments.Ledger.Core;
using Payments.LocalCluster;
using Payments.Merchants;
using Payments.Orchestrator.Client.Records;
using Payments.ServiceDefaults.Security;

namespace Payments.Containers.Tests;

/// <summary>The whole system as containers on one user-defined Docker network, as on a cluster: a 3-member etcd
/// cluster, the workflow sidecar, the ledger, risk and orchestrator services, two API replicas and the edge load
/// balancer in front of them. The images are the ones <c>scripts/build-images.sh</c> builds (the test command builds
/// them first). Every app runs as on Kubernetes: non-root, read-only root file system, <c>/tmp</c> as tmpfs.
/// <para>The workflow sidecar is the development one (in-memory durable-task engine speaking Dapr's workflow protocol,
/// ADR 0002) by default, because no daprd image can be pulled on the machines this suite runs on. With
/// <c>DAPRPAYMENTS_TEST_SIDECAR=daprd</c> (where Dapr's images can be pulled) each Dapr-enabled app gets a real daprd
/// in its network namespace instead, with Dapr's placement and scheduler services and the etcd state store: the apps
/// then call <c>localhost:3500</c> and <c>localhost:50001</c> exactly as in a pod (docs/deploy.md, "Container tests with
/// real daprd").</para></summary>
public sealed partial class ContainerSystem : IAsyncLifetime
{
    public const string KeyPrefix = "/daprpayments/";
    public const string ImageTag = "0.1.0";
    public const string EtcdImage = "daprpayments/etcd:3.5.16";
    public const long ReviewThresholdMinor = 100_000;
    public const int EtcdMembers = 3;
    public const int ApiReplicas = 2;
    public const int AppPort = 8080;
    public const int SidecarPort = 50001;
    /// <summary>The bound on any container's start. This suite shares CI's 2 cores with the other suites: the failover
    /// service, started mid-suite, once needed over 90 s to answer ready (its first lease ticks under that load), and
    /// in one CI run the edge (1.7 s and one CPU second on an idle machine) wrote its first line 77 s after it started
    /// and had not bound its port 185 s after (every process starved alike: its 1 s probe timer fired 74 s late).
    /// A timeout says what the machine was doing (<see cref="MachineStateAsync"/>).</summary>
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(300);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);
    /// <summary><c>development</c> (default) or <c>daprd</c>.</summary>
    public static readonly string SidecarMode = Environment.GetEnvironmentVariable("DAPRPAYMENTS_TEST_SIDECAR") ?? "development";
    /// <summary>The Dapr runtime for <c>daprd</c> mode (the chart's docs install the same version).</summary>
    public static readonly string DaprVersion = Environment.GetEnvironmentVariable("DAPRPAYMENTS_TEST_DAPR_VERSION") ?? "1.18.3"; // Chart.yaml's daprpayments.dev/dapr-version (a deploy test checks they agree)
    private const string DaprComponentsPath = "/components/statestore.yaml";
    /// <summary>Where a container finds its etcd certificates (the chart mounts its Secrets at the same path).</summary>
    public const string EtcdTlsPath = "/etc/daprpayments/etcd-tls";
    private const string OwnerLabel = "daprpayments.tests.owner-pid";
    private const string RunLabel = "daprpayments.tests.run";

    private readonly string run = Guid.NewGuid().ToString("N")[..8];
    private readonly int[] etcdHostPorts = new int[EtcdMembers];
    private readonly IContainer[] apis = new IContainer[ApiReplicas];
    private int generation;
    private INetwork? network;
    private string? pkiRoot;
    private EtcdCertificates? certificates;

    static ContainerSystem()
    {
        // Debian's Docker engine speaks API 1.41 at most, and the resource reaper's image cannot be pulled offline:
        // this fixture removes what it created itself (also when its start fails, and orphans of killed runs).
        Environment.SetEnvironmentVariable("DOCKER_API_VERSION", Environment.GetEnvironmentVariable("DOCKER_API_VERSION") ?? "1.41");
        Environment.SetEnvironmentVariable("TESTCONTAINERS_RYUK_DISABLED", "true");
    }

    public string NetworkName => network?.Name ?? throw new InvalidOperationException("Not started.");

    public IContainer[] EtcdContainers { get; } = new IContainer[EtcdMembers];

    public IContainer Orchestrator { get; private set; } = null!;

    public IContainer Ledger { get; private set; } = null!;

    public IContainer Risk { get; private set; } = null!;

    public IReadOnlyList<IContainer> Apis => apis;

    public IContainer Edge { get; private set; } = null!;

    /// <summary>A direct connection to the etcd cluster (through the members' published ports), for reads that do
    /// not trust the API.</summary>
    public EtcdConnection Etcd { get; private set; } = null!;

    /// <summary>The run's etcd CA and client certificates (etcd runs with TLS, client certificates and auth).</summary>
    public EtcdCertificates Certificates => certificates ?? throw new InvalidOperationException("Not started.");

    /// <summary>Every member's client URL as reached from the host (the published ports).</summary>
    public string EtcdHostEndpoints => string.Join(',', etcdHostPorts.Select(port => $"https://127.0.0.1:{port}"));

    public EtcdLedger LedgerStore { get; private set; } = null!;

    public PaymentRecordStore Records { get; private set; } = null!;

    /// <summary>The public API through the edge load balancer, with a merchant's API key.</summary>
    public HttpClient Client { get; private set; } = null!;

    /// <summary>The merchant's reviewer: a key that may approve or reject (and read) payments, through the edge.</summary>
    public HttpClient ReviewerClient { get; private set; } = null!;

    public string MerchantId => "merchant-containers";

    public TimeSpan StartTime { get; private set; }

    public async Task InitializeAsync()
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await RemoveOrphansAsync();
            await StartAsync();
        }
        catch
        {
            // xunit does not call DisposeAsync when InitializeAsync throws: remove what was created here.
            await DisposeAsync();
            throw;
        }

        StartTime = clock.Elapsed;
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        ReviewerClient?.Dispose();
        Etcd?.Dispose();
        if (cosmos is not null)
        {
            await cosmos.DisposeAsync();
        }

        // Every container of this run, whatever state it is in (killed, paused, replaced), then the network.
        var ids = await DockerCli.RunAsync("container", "ls", "--all", "--quiet", "--filter", $"label={RunLabel}={run}");
        if (ids.Length > 0)
        {
            await DockerCli.RunAsync(["rm", "--force", "--volumes", .. ids.Split('\n', StringSplitOptions.RemoveEmptyEntries)]);
        }

        if (network is not null)
        {
            await RemoveNetworkAsync(network.Name);
        }

        if (pkiRoot is not null && Directory.Exists(pkiRoot))
        {
            Directory.Delete(pkiRoot, recursive: true);
        }
    }

    /// <summary>Attempts at removing the run's network: Docker may still hold a removed container's endpoint for a moment
    /// ("has active endpoints"; a CI run failed its cleanup so), so whatever is still attached is removed and the removal
    /// tried again, a bounded number of times.</summary>
    private const int MaxNetworkRemovals = 10;

    private static async Task RemoveNetworkAsync(string name)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await DockerCli.RunAsync("network", "rm", name);
                return;
            }
            catch (InvalidOperationException removal) when (attempt < MaxNetworkRemovals)
            {
                if (removal.Message.Contains("not found", StringComparison.OrdinalIgnoreCase))
                {
                    return; // gone already
                }

                var attached = await DockerCli.RunAsync("network", "inspect", "--format", "{{range $id, $c := .Containers}}{{$id}} {{end}}", name);
                var ids = attached.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (ids.Length > 0)
                {
                    await DockerCli.RunAsync(["rm", "--force", "--volumes", .. ids]);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(300 * attempt)); // Docker releases endpoints asynchronously
            }
        }
    }

    /// <summary>Replaces a killed orchestrator with a fresh container under the same network alias.</summary>
    public async Task StartFreshOrchestratorAsync()
    {
        Orchestrator = await StartAppAsync("orchestrator", "orchestrator", AppEnvironment());
    }

    public async Task StartFreshApiAsync(int replica)
    {
        apis[replica] = await StartAppAsync("api", $"api-{replica}", AppEnvironment());
    }

    /// <summary>Index of the etcd member that leads, as a majority of the running members reports it (bounded poll).</summary>
    /// <param name="everyMember">Wait until all members answer and follow that leader (one brought back has rejoined),
    /// not only a majority.</param>
    public async Task<int> WaitForEtcdLeaderAsync(bool everyMember = false)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var statuses = await Task.WhenAll(etcdHostPorts.Select(TryStatusAsync));
            var answered = statuses.Where(status => status is not null).Select(status => status!).ToArray();
            var leaders = answered.Select(status => status.Leader).Where(leader => leader != 0).Distinct().ToArray();
            var enough = everyMember ? answered.Length == EtcdMembers : answered.Length * 2 > EtcdMembers;
            if (enough && leaders.Length == 1 && answered.FirstOrDefault(status => status.Header.MemberId == leaders[0]) is { } leader)
            {
                return Array.IndexOf(statuses, leader);
            }

            if (waited.Elapsed > ReadyTimeout)
            {
                throw new TimeoutException($"The etcd containers agreed on no leader within {ReadyTimeout.TotalSeconds} s ({answered.Length} answered).");
            }

            await Task.Delay(PollInterval);
        }
    }

    /// <summary>Moves etcd's leadership to <paramref name="member"/> (etcd's MoveLeader, sent to the current leader)
    /// and waits (bounded) until it leads.</summary>
    public async Task MakeEtcdLeaderAsync(int member)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var leader = await WaitForEtcdLeaderAsync();
            if (leader == member)
            {
                return;
            }

            var target = await TryStatusAsync(etcdHostPorts[member]);
            if (target is not null)
            {
                try
                {
                    using var client = EtcdConnection.Create($"https://127.0.0.1:{etcdHostPorts[leader]}", Certificates.Client(EtcdRbac.Root));
                    using var deadline = new CancellationTokenSource(ProbeTimeout * 3);
                    await client.MemberMaintenance(0).MoveLeaderAsync(
                        new Etcdserverpb.MoveLeaderRequest { TargetID = target.Header.MemberId }, cancellationToken: deadline.Token);
                }
                catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException)
                {
                    // leadership changed meanwhile: look again
                }
            }

            if (waited.Elapsed > ReadyTimeout)
            {
                throw new TimeoutException($"etcd-{member} did not become the leader within {ReadyTimeout.TotalSeconds} s.");
            }

            await Task.Delay(PollInterval);
        }
    }

    /// <summary>Polls (bounded) until every app answers <c>/readyz</c> and the edge reaches an API replica.</summary>
    public async Task WaitUntilReadyAsync()
    {
        await WaitForEtcdLeaderAsync();
        foreach (var container in new[] { Ledger, Orchestrator, Edge }.Concat(apis))
        {
            await WaitForHttpAsync(container, "/readyz");
        }
    }

    private async Task StartAsync()
    {
        if (SidecarMode is not ("development" or "daprd"))
        {
            throw new InvalidOperationException($"DAPRPAYMENTS_TEST_SIDECAR is '{SidecarMode}'; use 'development' (default) or 'daprd'.");
        }

        var builder = new NetworkBuilder().WithName($"daprpayments-{run}").WithLabel(OwnerLabel, OwnerPid).Build();
        await builder.CreateAsync();
        network = builder; // from here on, DisposeAsync removes it
        foreach (var image in new[] { "api", "orchestrator", "ledger", "risk", UsesDaprd ? "edge" : "workflow-sidecar", "edge" }.Select(Image).Append(EtcdImage))
        {
            if (!await DockerCli.ImageExistsAsync(image))
            {
                throw new InvalidOperationException($"Image {image} is missing: run scripts/build-images.sh (the test command does).");
            }
        }

        await StartEtcdAsync();
        // As root (this fixture sets up and checks everything); the apps connect as their own users.
        Etcd = EtcdConnection.Create(EtcdHostEndpoints, Certificates.Client(EtcdRbac.Root));
        using (var timeout = new CancellationTokenSource(ReadyTimeout))
        {
            await EtcdRbac.EnableAsync(Etcd, EtcdRoles.For(KeyPrefix), timeout.Token);
        }

        LedgerStore = new EtcdLedger(Etcd, KeyPrefix + "ledger/", TimeProvider.System, NullLogger<EtcdLedger>.Instance);
        Records = new PaymentRecordStore(Etcd, KeyPrefix + "payments/");

        var environment = AppEnvironment();
        if (UsesDaprd)
        {
            await StartDaprControlPlaneAsync();
        }
        else
        {
            // With its API token, as daprd runs in a pod: only the orchestrator, which presents it, drives workflows.
            var sidecar = Container("workflow-sidecar", "workflow-sidecar", environment: new Dictionary<string, string> { ["DAPR_API_TOKEN"] = SidecarApiToken })
                .WithCommand("--host", "0.0.0.0", "--port", SidecarPort.ToString(CultureInfo.InvariantCulture))
                .WithPortBinding(SidecarPort, assignRandomHostPort: true)
                .Build();
            await StartTrackedAsync(sidecar);
            await WaitForTcpAsync(sidecar, SidecarPort);
        }

        // Independent of one another: started together.
        var started = await Task.WhenAll(
            StartAppAsync("ledger", "ledger", environment),
            StartAppAsync("risk", "risk", environment),
            StartAppAsync("orchestrator", "orchestrator", environment),
            StartAppAsync("api", "api-0", environment),
            StartAppAsync("api", "api-1", environment),
            StartMaintenanceAsync(AppEnvironment(daprEnabled: false)));
        (Ledger, Risk, Orchestrator, apis[0], apis[1]) = (started[0], started[1], started[2], started[3], started[4]);
        var edgeEnvironment = new Dictionary<string, string>(AppEnvironment(daprEnabled: false))
        {
            ["Edge__Backends"] = string.Join(',', Enumerable.Range(0, ApiReplicas).Select(replica => $"http://api-{replica}:{AppPort}")),
        };
        Edge = await StartAppAsync("edge", "edge", edgeEnvironment);

        var merchants = new MerchantStore(Etcd, KeyPrefix + "api/");
        var key = await merchants.IssueApiKeyAsync(MerchantId, CancellationToken.None);
        Client = new HttpClient { BaseAddress = BaseAddress(Edge), Timeout = TimeSpan.FromSeconds(15) };
        Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        // Payments held for review are decided by another key than the one that created them (four eyes).
        var reviewerKey = await merchants.IssueApiKeyAsync(MerchantId, CancellationToken.None, ApiScopes.PaymentsRead, ApiScopes.PaymentsApprove);
        ReviewerClient = new HttpClient { BaseAddress = BaseAddress(Edge), Timeout = TimeSpan.FromSeconds(15) };
        ReviewerClient.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", reviewerKey);
    }

    private async Task StartEtcdAsync()
    {
        // As in the chart: client and peer TLS with certificates from the release's CA, clients proving themselves.
        pkiRoot = Path.Combine(Path.GetTempPath(), $"daprpayments-containers-{run}");
        certificates = EtcdCertificates.Create(pkiRoot, [.. Enumerable.Range(0, EtcdMembers).Select(index => $"etcd-{index}")]);
        var peers = string.Join(',', Enumerable.Range(0, EtcdMembers).Select(index => $"etcd-{index}=https://etcd-{index}:2380"));
        for (var index = 0; index < EtcdMembers; index++)
        {
            // A fixed host port: a member killed and started again keeps it, so the test's own connection finds it.
            etcdHostPorts[index] = LocalPorts.Free();
            EtcdContainers[index] = Container("etcd", $"etcd-{index}", EtcdImage, new Dictionary<string, string>())
                .WithPortBinding(etcdHostPorts[index], 2379)
                .WithBindMount(Shared(Certificates.CaFile), $"{EtcdTlsPath}/ca.crt", AccessMode.ReadOnly)
                .WithBindMount(Shared(Certificates.MemberCertFile), $"{EtcdTlsPath}/member.crt", AccessMode.ReadOnly)
                .WithBindMount(Shared(Certificates.MemberKeyFile), $"{EtcdTlsPath}/member.key", AccessMode.ReadOnly)
                .WithCommand([
                    "--name", $"etcd-{index}",
                    // On the container's own layer, not a tmpfs: a member killed and started again rejoins with its
                    // log, as a pod with its volume does.
                    "--data-dir", "/var/lib/etcd/data",
                    "--listen-client-urls", "https://0.0.0.0:2379",
                    "--advertise-client-urls", $"https://etcd-{index}:2379",
                    "--listen-peer-urls", "https://0.0.0.0:2380",
                    "--initial-advertise-peer-urls", $"https://etcd-{index}:2380",
                    "--cert-file", $"{EtcdTlsPath}/member.crt", "--key-file", $"{EtcdTlsPath}/member.key",
                    "--client-cert-auth", "--trusted-ca-file", $"{EtcdTlsPath}/ca.crt",
                    "--peer-cert-file", $"{EtcdTlsPath}/member.crt", "--peer-key-file", $"{EtcdTlsPath}/member.key",
                    "--peer-client-cert-auth", "--peer-trusted-ca-file", $"{EtcdTlsPath}/ca.crt",
                    "--initial-cluster", peers,
                    "--initial-cluster-token", $"daprpayments-{run}",
                    "--initial-cluster-state", "new",
                    .. EtcdServerFlags.Storage()])
                .Build();
        }

        await Task.WhenAll(EtcdContainers.Select(StartTrackedAsync));
        await WaitForEtcdLeaderAsync();
    }

    /// <summary>A copy of a PKI file the containers' users can read (they are not this process's user; the bind mount
    /// keeps the host's owner and mode). Test-only: a throw-away CA of this run, removed with it.</summary>
    private string Shared(string file)
    {
        var directory = Path.Combine(pkiRoot!, "shared");
        Directory.CreateDirectory(directory);
        var copy = Path.Combine(directory, Path.GetFileName(file));
        File.Copy(file, copy, overwrite: true);
        if (OperatingSystem.IsWindows())
        {
            return copy; // no Unix owners to bridge (and no Linux containers' users either)
        }

        File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return copy;
    }

    /// <summary>The app's etcd user is its role (<see cref="EtcdRoles"/>): its certificate mounted read-only. The storage
    /// maintenance is the maintenance user, in a container of its own (as the chart's etcd-maintenance Deployment); the
    /// ledger runs without it. Risk and the edge keep nothing in etcd: no certificate.</summary>
    private ContainerBuilder WithEtcdIdentity(ContainerBuilder builder, string role)
    {
        if (role is not (EtcdRoles.Ledger or EtcdRoles.Api or EtcdRoles.Orchestrator or EtcdRoles.Failover or MaintenanceAlias))
        {
            return builder;
        }

        var own = Certificates.Client(role == MaintenanceAlias ? EtcdRbac.Maintenance : role);
        var environment = new Dictionary<string, string>
        {
            ["Payments__EtcdCaFile"] = $"{EtcdTlsPath}/ca.crt",
            ["Payments__EtcdCertFile"] = $"{EtcdTlsPath}/client.crt",
            ["Payments__EtcdKeyFile"] = $"{EtcdTlsPath}/client.key",
        };
        if (role is EtcdRoles.Ledger or MaintenanceAlias)
        {
            environment["Payments__EtcdMaintenance"] = role == MaintenanceAlias ? "Only" : "Off";
        }

        return builder
            .WithBindMount(Shared(own.CaFile), $"{EtcdTlsPath}/ca.crt", AccessMode.ReadOnly)
            .WithBindMount(Shared(own.CertFile), $"{EtcdTlsPath}/client.crt", AccessMode.ReadOnly)
            .WithBindMount(Shared(own.KeyFile), $"{EtcdTlsPath}/client.key", AccessMode.ReadOnly)
            .WithEnvironment(environment);
    }

    /// <summary>The storage maintenance's container (the ledger image, no sidecar in either mode).</summary>
    private const string MaintenanceAlias = "etcd-maintenance";

    private async Task<IContainer> StartMaintenanceAsync(IReadOnlyDictionary<string, string> environment)
    {
        var container = WithEtcdIdentity(Container("ledger", MaintenanceAlias, Image("ledger"), environment), MaintenanceAlias).Build();
        await StartTrackedAsync(container);
        await WaitForHttpAsync(container, "/readyz");
        return container;
    }

    private async Task<IContainer> StartAppAsync(string image, string alias, IReadOnlyDictionary<string, string> environment)
    {
        // Each app with its own identity (the image name is its role): the service identity checks run in every scenario.
        // The orchestrator also presents the development sidecar's API token (the Dapr SDK reads DAPR_API_TOKEN).
        var sidecarToken = image == "orchestrator" && !UsesDaprd ? [KeyValuePair.Create("DAPR_API_TOKEN", SidecarApiToken)] : Array.Empty<KeyValuePair<string, string>>();
        var builder = WithEtcdIdentity(Container(image, alias, Image(image), environment.Concat(IdentityEnvironment(image)).Concat(sidecarToken).ToDictionary()), image);
        // Only the edge is reached from the host (the clients); the apps talk over the network, as on a cluster.
        var container = (image == "edge" ? builder.WithPortBinding(AppPort, assignRandomHostPort: true) : builder).Build();
        await StartTrackedAsync(container);
        if (UsesDaprd && image != "edge")
        {
            await StartTrackedAsync(Daprd(container.Name.TrimStart('/'), image));
        }

        await WaitForHttpAsync(container, "/readyz");
        return container;
    }

    private ContainerBuilder Container(string name, string alias, string image, IReadOnlyDictionary<string, string> environment) =>
        new ContainerBuilder(image)
            .WithImagePullPolicy(PullPolicy.Never)
            .WithName($"daprpayments-{run}-{alias}-{Interlocked.Increment(ref generation)}")
            .WithLabel(OwnerLabel, OwnerPid)
            .WithLabel(RunLabel, run)
            .WithNetwork(network!)
            .WithNetworkAliases(alias)
            .WithEnvironment(environment)
            .WithCreateParameterModifier(parameters =>
            {
                // As in the chart: nothing may write outside /tmp.
                parameters.HostConfig ??= new Docker.DotNet.Models.HostConfig();
                parameters.HostConfig.ReadonlyRootfs = name != "etcd";
                parameters.HostConfig.Tmpfs = new Dictionary<string, string> { ["/tmp"] = "rw,size=64m" };
                // As a pod's restartPolicy: a process that crashes is started again by Docker. A deliberate
                // `docker kill` (the fault scenarios) disables the policy until the next start (docker-kill(1)).
                parameters.HostConfig.RestartPolicy = new Docker.DotNet.Models.RestartPolicy { Name = Docker.DotNet.Models.RestartPolicyKind.UnlessStopped };
            });

    private ContainerBuilder Container(string image, string alias, IReadOnlyDictionary<string, string> environment) =>
        Container(image, alias, Image(image), environment);

    private static async Task StartTrackedAsync(IContainer container)
    {
        using var timeout = new CancellationTokenSource(ReadyTimeout);
        await container.StartAsync(timeout.Token);
    }

    private static bool UsesDaprd => SidecarMode == "daprd";

    /// <summary>The development workflow sidecar's API token for this run (daprd's <c>DAPR_API_TOKEN</c>).</summary>
    private string SidecarApiToken { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    /// <summary>The service identity of this run: a fresh token per internal app (the attacker scenarios read it).</summary>
    public LocalServiceIdentity Identity { get; } = new();

    /// <summary>The app token of the app in <paramref name="role"/>, or null for an app that serves no internal endpoint.</summary>
    public string? AppToken(string role) => Identity.Settings(role).GetValueOrDefault(ServiceIdentityOptions.Section + ":AppToken");

    /// <summary>Without daprd a caller presents its own token for the target, which knows it by it; with daprd, as in a pod, the app knows only
    /// its own token (daprd presents it, <c>APP_API_TOKEN</c>) and its callers by their Dapr app ids.</summary>
    private IReadOnlyDictionary<string, string> IdentityEnvironment(string role)
    {
        if (!UsesDaprd || role == "edge")
        {
            return Identity.Environment(role);
        }

        var environment = new Dictionary<string, string> { ["ServiceIdentity__AppId"] = $"daprpayments-{role}" };
        foreach (var caller in new[] { ServiceRoles.Api, ServiceRoles.Orchestrator, ServiceRoles.Failover })
        {
            environment[$"ServiceIdentity__Callers__{caller}"] = $"daprpayments-{caller}";
        }

        if (AppToken(role) is { } token)
        {
            environment["ServiceIdentity__AppToken"] = token;
        }

        return environment;
    }

    private Dictionary<string, string> AppEnvironment(bool daprEnabled = true) => UsesDaprd && daprEnabled
        ? new Dictionary<string, string>(DevelopmentEnvironment())
        {
            // As in a pod (see the chart): the app's own daprd on localhost, service invocation through it.
            ["DAPR_GRPC_ENDPOINT"] = $"http://localhost:{SidecarPort}",
            ["Payments__LedgerUrl"] = "http://localhost:3500/v1.0/invoke/daprpayments-ledger/method/",
            ["Payments__RiskUrl"] = "http://localhost:3500/v1.0/invoke/daprpayments-risk/method/",
            ["Payments__OrchestratorUrl"] = "http://localhost:3500/v1.0/invoke/daprpayments-orchestrator/method/",
        }
        : DevelopmentEnvironment();

    private Dictionary<string, string> DevelopmentEnvironment() => new()
    {
        ["DAPR_GRPC_ENDPOINT"] = $"http://workflow-sidecar:{SidecarPort}",
        ["Payments__EtcdEndpoints"] = string.Join(',', Enumerable.Range(0, EtcdMembers).Select(index => $"https://etcd-{index}:2379")),
        ["Payments__KeyPrefix"] = KeyPrefix,
        ["Payments__LedgerUrl"] = $"http://ledger:{AppPort}/",
        ["Payments__RiskUrl"] = $"http://risk:{AppPort}/",
        ["Payments__OrchestratorUrl"] = $"http://orchestrator:{AppPort}/",
        ["Payments__ReviewThresholdMinor"] = ReviewThresholdMinor.ToString(CultureInfo.InvariantCulture),
        ["Logging__LogLevel__Default"] = "Warning",
        // "Application started" with its time: a readiness timeout's logs then tell a slow start from a stuck app.
        ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
        ["Telemetry__Exporter"] = "none",
    };

    /// <summary>daprd mode: Dapr's placement (actors) and scheduler (workflow reminders) services on the network.</summary>
    private async Task StartDaprControlPlaneAsync()
    {
        var placement = DaprContainer("placement", "placement").WithCommand("./placement", "--port", "50005").Build();
        var scheduler = DaprContainer("scheduler", "scheduler")
            .WithCommand("./scheduler", "--port", "50006", "--etcd-data-dir", "/tmp/scheduler")
            .Build();
        await Task.WhenAll(StartTrackedAsync(placement), StartTrackedAsync(scheduler));
    }

    /// <summary>The chart's Resiliency, as components/dapr.yaml renders it: its retries and timeouts are what every
    /// service call meets on a cluster (a policy that retried business answers made every new deposit fail there, and
    /// this mode, without it, could not see that).</summary>
    private static readonly Lazy<string> ChartResiliency = new(() =>
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "components", "dapr.yaml")))
        {
            directory = directory.Parent;
        }

        var rendered = File.ReadAllText(Path.Combine(directory?.FullName ?? throw new FileNotFoundException("components/dapr.yaml"), "components", "dapr.yaml"));
        return rendered.Split("\n---\n").Single(document => document.Contains("\nkind: Resiliency\n", StringComparison.Ordinal));
    });

    /// <summary>daprd mode: a real daprd in <paramref name="appContainer"/>'s network namespace (as in a pod), with the
    /// etcd state store as the workflow and actor store and the chart's Resiliency, named as the chart names the app.</summary>
    private IContainer Daprd(string appContainer, string component)
    {
        // The state store's own etcd user (the chart passes the same PEM values from its Secret).
        var tls = Certificates.Client(EtcdRoles.StateStore);
        string Pem(string file) => string.Join("\n", File.ReadAllLines(file).Select(line => "          " + line));
        var statestore = $"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: daprpayments-statestore
            spec:
              type: state.etcd
              version: v2
              metadata:
                - name: endpoints
                  value: "{string.Join(',', Enumerable.Range(0, EtcdMembers).Select(index => $"etcd-{index}:2379"))}"
                - name: keyPrefixPath
                  value: "{KeyPrefix}dapr"
                - name: tlsEnable
                  value: "true"
                - name: ca
                  value: |
            {Pem(tls.CaFile)}
                - name: cert
                  value: |
            {Pem(tls.CertFile)}
                - name: key
                  value: |
            {Pem(tls.KeyFile)}
                - name: maxTxnOps
                  value: "{EtcdLimits.MaxTxnOps}"
                - name: actorStateStore
                  value: "true"
            """;
        return new ContainerBuilder($"daprio/daprd:{DaprVersion}")
            .WithName($"{appContainer}-daprd")
            .WithLabel(OwnerLabel, OwnerPid)
            .WithLabel(RunLabel, run)
            .WithResourceMapping(System.Text.Encoding.UTF8.GetBytes(statestore), DaprComponentsPath)
            .WithResourceMapping(System.Text.Encoding.UTF8.GetBytes(ChartResiliency.Value), "/components/resiliency.yaml")
            .WithEnvironment(AppToken(component) is { } token ? new Dictionary<string, string> { ["APP_API_TOKEN"] = token } : [])
            .WithCommand(
                "./daprd",
                "--app-id", $"daprpayments-{component}",
                "--app-port", AppPort.ToString(CultureInfo.InvariantCulture),
                "--app-protocol", "http",
                "--dapr-grpc-port", SidecarPort.ToString(CultureInfo.InvariantCulture),
                "--dapr-http-port", "3500",
                "--placement-host-address", "placement:50005",
                "--scheduler-host-address", "scheduler:50006",
                "--resources-path", "/components",
                "--enable-app-health-check", "--app-health-check-path", "/healthz")
            .WithCreateParameterModifier(parameters =>
            {
                parameters.HostConfig ??= new Docker.DotNet.Models.HostConfig();
                parameters.HostConfig.NetworkMode = $"container:{appContainer}";
            })
            .Build();
    }

    private ContainerBuilder DaprContainer(string service, string alias) =>
        new ContainerBuilder($"daprio/{service}:{DaprVersion}")
            .WithName($"daprpayments-{run}-{alias}-{Interlocked.Increment(ref generation)}")
            .WithLabel(OwnerLabel, OwnerPid)
            .WithLabel(RunLabel, run)
            .WithNetwork(network!)
            .WithNetworkAliases(alias);

    private static string Image(string name) => $"daprpayments/{name}:{ImageTag}";

    private static Uri BaseAddress(IContainer container) => new($"http://127.0.0.1:{container.GetMappedPublicPort(AppPort)}");

    private static string OwnerPid => Environment.ProcessId.ToString(CultureInfo.InvariantCulture);

    /// <summary>One HTTP request sent from inside <paramref name="from"/> (as any process in that pod could) to
    /// <paramref name="host"/>:<paramref name="port"/>; the answer's status code, or 0 when none came within a bound.</summary>
    public static async Task<int> HttpFromAsync(
        IContainer from, string host, int port, string method, string path, IReadOnlyDictionary<string, string> headers, string body = "")
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(headers);
        // Positional arguments, never spliced into the script: the values cannot change what the shell runs.
        const string Script = "exec 3<>/dev/tcp/$1/$2 && printf '%s %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Type: application/json\\r\\n" +
            "Content-Length: %s\\r\\n%s\\r\\n%s' \"$3\" \"$4\" \"$1\" \"${#6}\" \"$5\" \"$6\" >&3 && head -1 <&3";
        var headerBlock = string.Concat(headers.Select(header => $"{header.Key}: {header.Value}\r\n"));
        string[] command = ["/bin/bash", "-c", Script, "http", host, port.ToString(CultureInfo.InvariantCulture), method, "/" + path.TrimStart('/'), headerBlock, body];
        using var timeout = new CancellationTokenSource(ProbeTimeout * 5);
        var result = await from.ExecAsync(command, timeout.Token);
        var parts = result.Stdout.Split(' ', 3);
        return parts.Length >= 2 && int.TryParse(parts[1], CultureInfo.InvariantCulture, out var status) ? status : 0;
    }

    /// <summary>Polls (bounded) the app's own <paramref name="path"/> from inside its container, so the answer does
    /// not depend on the host's port mapping (a network disconnect and reconnect drops a container's published ports).</summary>
    private static async Task WaitForHttpAsync(IContainer container, string path)
    {
        string[] probe = ["/bin/bash", "-c", $"exec 3<>/dev/tcp/127.0.0.1/{AppPort} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3"];
        var waited = Stopwatch.StartNew();
        var last = "no answer yet";
        while (waited.Elapsed < ReadyTimeout)
        {
            using var timeout = new CancellationTokenSource(ProbeTimeout * 5);
            ExecResult result;
            try
            {
                result = await container.ExecAsync(probe, timeout.Token);
            }
            catch (Docker.DotNet.DockerApiException exception) when (exception.StatusCode == HttpStatusCode.Conflict)
            {
                // The container is not running: it exited at start. Its output says why.
                var (exitedStdout, exitedStderr) = await container.GetLogsAsync();
                throw new InvalidOperationException($"{container.Name} exited before it was ready. Logs:\n{exitedStdout}\n{exitedStderr}", exception);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                // The probe got no answer in time (an app still starting on a busy machine): ask again, within ReadyTimeout.
                last = $"no answer within {(ProbeTimeout * 5).TotalSeconds} s";
                continue;
            }

            if (result.ExitCode == 0 && result.Stdout.Contains(" 200 ", StringComparison.Ordinal))
            {
                return;
            }

            last = $"{result.Stdout.Trim()} {result.Stderr.Trim()}";
            await Task.Delay(PollInterval);
        }

        var (stdout, stderr) = await container.GetLogsAsync();
        throw new TimeoutException(
            $"{container.Name} (started {container.StartedTime:O}) not ready at {path} within {ReadyTimeout.TotalSeconds} s, until {DateTime.UtcNow:O} ({last}). " +
            $"{await MachineStateAsync(container)}\nLogs:\n{stdout}\n{stderr}");
    }

    /// <summary>What tells a starved machine from a stuck app: the host's load, the container's state as Docker
    /// sees it (restarts, an OOM kill, its exit code) and the CPU each of this run's containers is taking.</summary>
    private static async Task<string> MachineStateAsync(IContainer container)
    {
        static async Task<string> Try(Func<Task<string>> read)
        {
            try
            {
                return (await read()).Trim();
            }
            catch (Exception exception) when (exception is InvalidOperationException or TimeoutException or IOException)
            {
                return $"unknown ({exception.Message})";
            }
        }

        // Bounded short: on the starved machine this describes, the timeout it explains must not wait minutes more.
        var bound = TimeSpan.FromSeconds(10);
        var load = await Try(() => File.ReadAllTextAsync("/proc/loadavg"));
        var state = await Try(() => DockerCli.RunAsync(bound, "inspect", "--format", "{{json .State}} restarts={{.RestartCount}}", container.Id));
        var stats = await Try(async () =>
        {
            var ours = (await DockerCli.RunAsync(bound, "ps", "--quiet", "--filter", $"label={OwnerLabel}={OwnerPid}"))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return ours.Length == 0 ? "none running" : await DockerCli.RunAsync(bound, ["stats", "--no-stream", "--format", "{{.Name}} cpu={{.CPUPerc}} mem={{.MemUsage}}", .. ours]);
        });
        return $"Load average: {load}. State: {state}.\nContainers:\n{stats}";
    }

    private static async Task WaitForTcpAsync(IContainer container, int port)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < ReadyTimeout)
        {
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync("127.0.0.1", container.GetMappedPublicPort(port));
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(PollInterval);
            }
        }

        throw new TimeoutException($"{container.Name} did not accept connections on {port} within {ReadyTimeout.TotalSeconds} s.");
    }

    private async Task<Etcdserverpb.StatusResponse?> TryStatusAsync(int hostPort)
    {
        try
        {
            using var connection = EtcdConnection.Create($"https://127.0.0.1:{hostPort}", Certificates.Client(EtcdRbac.Root));
            using var deadline = new CancellationTokenSource(ProbeTimeout);
            return await connection.Client.StatusAsync(new Etcdserverpb.StatusRequest(), cancellationToken: deadline.Token);
        }
        catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException or HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>Containers and networks left by a test process that no longer runs (killed before it cleaned up).</summary>
    private static async Task RemoveOrphansAsync()
    {
        foreach (var kind in new[] { "container", "network" })
        {
            string[] list = kind == "container" ? ["container", "ls", "--all"] : ["network", "ls"];
            var listed = await DockerCli.RunAsync([.. list, "--filter", $"label={OwnerLabel}", "--format", $"{{{{.ID}}}} {{{{.Label \"{OwnerLabel}\"}}}}"]);
            foreach (var line in listed.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(' ');
                if (parts.Length == 2 && int.TryParse(parts[1], CultureInfo.InvariantCulture, out var pid) && !IsAlive(pid))
                {
                    try
                    {
                        await (kind == "container" ? DockerCli.RunAsync("rm", "--force", parts[0]) : RemoveNetworkAsync(parts[0]));
                    }
                    catch (InvalidOperationException)
                    {
                        // An orphan Docker will not let go of (a phantom endpoint) does not stop this run: its network
                        // has a name of its own. A CI run failed all its container tests on one.
                    }
                }
            }
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

}

[CollectionDefinition("containers")]
public sealed class ContainerCollection : ICollectionFixture<ContainerSystem>;
