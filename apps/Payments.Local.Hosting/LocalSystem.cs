using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Etcd;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Core;
using Payments.LocalCluster;
using Payments.ServiceDefaults.Security;

namespace Payments.Local.Hosting;

/// <summary>The whole system on this machine: a 3-member etcd cluster, the development workflow sidecar, the ledger and
/// risk services, the orchestrator, two API replicas and the edge load balancer in front of them (the same one the
/// container tests use), each app its own process. Development only.</summary>
public sealed partial class LocalSystem : IAsyncDisposable
{
    /// <summary>One region of a two-region deployment on this machine: its failover service and fenced, replicating
    /// apps, against a Cosmos DB endpoint both regions share (the local Cosmos-compatible server).</summary>
    /// <param name="Peer">The other region: the only one a planned switchover may hand over to.</param>
    public sealed record RegionSettings(
        string Name, string Peer, RegionRole Role, Uri CosmosEndpoint, string CosmosKey, ReplicationMode Replication = ReplicationMode.Sync);

    public const string KeyPrefix = "/daprpayments/";

    /// <summary>The key layout every app of this system uses (the apps' own default prefix).</summary>
    public static EtcdOptions Layout { get; } = new() { KeyPrefix = KeyPrefix };
    public const long ReviewThresholdMinor = 100_000;

    /// <summary>The demo's risk limit (the default is the largest payment the API takes): its mix shows refusals.</summary>
    public const long RejectAboveMinor = 10_000_000;
    public const int ApiReplicas = 2;
    private readonly List<ChildProcess> children = [];
    private int? orchestratorPort;

    private LocalSystem(LocalEtcdCluster cluster, string logDirectory, RegionSettings? region)
    {
        Region = region;
        Cluster = cluster;
        LogDirectory = logDirectory;
        Etcd = cluster.ConnectAsRoot(); // the host's own checks and set-up (merchants, reports) see every family
        Ledger = new EtcdLedger(Etcd, Layout.LedgerPrefix, TimeProvider.System, NullLogger<EtcdLedger>.Instance);
    }

    public LocalEtcdCluster Cluster { get; }

    /// <summary>Null for the single-region system (the run command's default).</summary>
    public RegionSettings? Region { get; }

    /// <summary>The failover service's address (region mode only).</summary>
    public Uri? FailoverBaseAddress { get; private set; }

    /// <summary>Every process of this system, for fault injection (a region lost entirely).</summary>
    public IReadOnlyList<ChildProcess> Children => children;

    public EtcdConnection Etcd { get; }

    public EtcdLedger Ledger { get; }

    public string LogDirectory { get; }

    public Uri ApiBaseAddress { get; private set; } = null!;

    public string SidecarEndpoint { get; private set; } = null!;

    /// <summary>The ledger service; empty until it started (it starts before the apps that call it).</summary>
    public string LedgerUrl { get; private set; } = string.Empty;

    /// <summary>The storage maintenance process's own address (health, readiness, metrics only).</summary>
    public string MaintenanceUrl { get; private set; } = string.Empty;

    public string RiskUrl { get; private set; } = string.Empty;

    public ChildProcess Orchestrator { get; private set; } = null!;

    /// <param name="supervise">Restart crashed apps and etcd members, as Kubernetes would (the run command and the fault
    /// campaign); fault tests that keep a process down on purpose leave it off.</param>
    public static async Task<LocalSystem> StartAsync(
        int apiPort, Action<string> progress, CancellationToken cancellationToken, RegionSettings? region = null, bool supervise = false)
    {
        // As in the chart: client and peer TLS, and each app its own etcd user limited to its key families.
        var cluster = await LocalEtcdCluster.StartAsync(3, progress, cancellationToken);
        try
        {
            await cluster.EnableAuthAsync(EtcdRoles.For(KeyPrefix), cancellationToken);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        progress("etcd: TLS with client certificates, authentication on, one role per app");
        var logDirectory = Path.Combine(cluster.Directory, "logs");
        Directory.CreateDirectory(logDirectory);
        var system = new LocalSystem(cluster, logDirectory, region);
        try
        {
            await system.StartAppsAsync(apiPort, progress, cancellationToken);
            progress($"Credentials of this run (the internal services refuse calls without their tokens): {system.WriteCredentials()}");
            system.Supervisor = supervise ? new ProcessSupervisor(system, progress) : null;
            return system;
        }
        catch
        {
            await system.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a new orchestrator process (after a crash of the old one, in the fault tests).</summary>
    public async Task<ChildProcess> StartOrchestratorAsync(CancellationToken cancellationToken)
    {
        // The same port on every start: the API keeps calling it across an orchestrator restart.
        var port = orchestratorPort ??= LocalPorts.Free();
        var orchestrator = ChildProcess.Start("orchestrator", "Payments.Orchestrator.Host.dll", [], AppEnvironment(port, ServiceRoles.Orchestrator), LogDirectory);
        children.Add(orchestrator);
        await orchestrator.WaitReadyAsync(new Uri($"http://127.0.0.1:{port}/readyz"), tcpOnly: false, cancellationToken);
        Orchestrator = orchestrator;
        return orchestrator;
    }

    /// <summary>SIGKILLs the app named <paramref name="name"/> (e.g. <c>risk</c>, <c>workflow-sidecar</c>) and starts it
    /// again with the same command line, as Kubernetes restarts a crashed pod.</summary>
    public async Task<ChildProcess> RestartAsync(string name, CancellationToken cancellationToken)
    {
        var index = children.FindLastIndex(child => child.Name == name);
        if (index < 0)
        {
            throw new ArgumentException($"No app named {name} in this system.", nameof(name));
        }

        var restarted = await children[index].RestartAsync(cancellationToken);
        children[index] = restarted;
        Orchestrator = name == Orchestrator.Name ? restarted : Orchestrator;
        return restarted;
    }

    /// <summary>Restarts crashed processes (null unless started with supervision).</summary>
    public ProcessSupervisor? Supervisor { get; private set; }

    /// <summary>The apps whose current process has exited (a crash, or a kill).</summary>
    public IReadOnlyList<string> ExitedApps() =>
        [.. children.GroupBy(child => child.Name).Select(group => group.Last()).Where(child => child.HasExited).Select(child => child.Name)];

    /// <summary>The app named <paramref name="name"/>, for fault injection.</summary>
    public ChildProcess App(string name) => children.Last(child => child.Name == name);

    /// <summary>A lost region coming back (the drill): its etcd members restart on their data, and its failover
    /// service starts again — to find another region holding the record, and stay passive.</summary>
    public async Task RestartEtcdAndFailoverAsync(Action<string> progress, CancellationToken cancellationToken)
    {
        for (var member = 0; member < Cluster.Members.Count; member++)
        {
            Cluster.Restart(member);
        }

        await Cluster.WaitForLeaderAsync(cancellationToken);
        await StartFailoverAsync(progress, cancellationToken);
    }

    private async Task StartFailoverAsync(Action<string> progress, CancellationToken cancellationToken)
    {
        var region = Region ?? throw new InvalidOperationException("Not a region of a two-region system.");
        // Reserved now: the failover service resumes unfinished payments through the orchestrator after a takeover.
        orchestratorPort ??= LocalPorts.Free();
        var failoverPort = LocalPorts.Free();
        FailoverBaseAddress = new Uri($"http://127.0.0.1:{failoverPort}");
        var failoverEnvironment = new Dictionary<string, string>(AppEnvironment(failoverPort, ServiceRoles.Failover))
        {
            ["Region__Role"] = region.Role.ToString(),
            ["Admin__Token"] = AdminToken,
            ["Admin__PeerRegion"] = region.Peer,
        };
        var failover = ChildProcess.Start("failover", "Payments.Failover.dll", [], failoverEnvironment, LogDirectory);
        children.Add(failover);
        await failover.WaitReadyAsync(new Uri(FailoverBaseAddress, "/readyz"), tcpOnly: false, cancellationToken);
        progress($"Failover service of {region.Name} ({region.Role} at start) on {FailoverBaseAddress}");
    }

    /// <summary>The whole region lost at once (the drill): every process SIGKILLed, every etcd member killed.</summary>
    public async Task KillAllAsync()
    {
        foreach (var child in children.Where(child => !child.HasExited))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(child.ProcessId);
                process.Kill(entireProcessTree: true);
            }
            catch (ArgumentException)
            {
                // already gone
            }
        }

        for (var member = 0; member < Cluster.Members.Count; member++)
        {
            await Cluster.KillAsync(member);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Supervisor is not null)
        {
            await Supervisor.DisposeAsync(); // first: it must not restart what is being stopped
        }

        // Apps first (they hold connections to the sidecar and etcd), then the sidecar, then etcd.
        foreach (var child in Enumerable.Reverse(children))
        {
            await child.DisposeAsync();
        }

        Etcd.Dispose();
        await Cluster.DisposeAsync();
    }

    private async Task StartAppsAsync(int apiPort, Action<string> progress, CancellationToken cancellationToken)
    {
        if (Region is not null)
        {
            // First: it decides whether this region may write, and the apps' readiness depends on it.
            await StartFailoverAsync(progress, cancellationToken);
        }

        var sidecarPort = LocalPorts.Free();
        SidecarEndpoint = $"http://127.0.0.1:{sidecarPort}";
        var sidecar = ChildProcess.Start("workflow-sidecar", "Payments.WorkflowSidecar.dll",
            ["--port", sidecarPort.ToString(CultureInfo.InvariantCulture)],
            // Warnings only, like the apps: at Information it wrote four lines per gRPC call (~10 % of its CPU under load).
            new Dictionary<string, string> { ["Logging__LogLevel__Default"] = "Warning", ["DAPR_API_TOKEN"] = WorkflowSidecarToken }, LogDirectory);
        children.Add(sidecar);
        await sidecar.WaitReadyAsync(new Uri(SidecarEndpoint), tcpOnly: true, cancellationToken);
        progress($"Development workflow sidecar ready on {SidecarEndpoint} (in-memory; development only)");

        var ledgerPort = LocalPorts.Free();
        LedgerUrl = $"http://127.0.0.1:{ledgerPort}/";
        var ledger = ChildProcess.Start("ledger", "Payments.Ledger.dll", [], AppEnvironment(ledgerPort, ServiceRoles.Ledger), LogDirectory);
        children.Add(ledger);
        var maintenance = StartMaintenance();
        await ledger.WaitReadyAsync(new Uri(LedgerUrl + WritableProbe), tcpOnly: false, cancellationToken);
        progress($"Ledger service ready on {LedgerUrl}");
        await maintenance.WaitReadyAsync(new Uri(MaintenanceUrl + "readyz"), tcpOnly: false, cancellationToken);
        progress($"etcd storage maintenance ready on {MaintenanceUrl}");

        var riskPort = LocalPorts.Free();
        var risk = ChildProcess.Start("risk", "Payments.Risk.dll", [], AppEnvironment(riskPort, ServiceRoles.Risk), LogDirectory);
        children.Add(risk);
        await risk.WaitReadyAsync(new Uri($"http://127.0.0.1:{riskPort}/readyz"), tcpOnly: false, cancellationToken);
        RiskUrl = $"http://127.0.0.1:{riskPort}/";
        progress($"Risk service ready on {RiskUrl}");

        await StartOrchestratorAsync(cancellationToken);
        progress("Orchestrator ready (PaymentWorkflow and its activities)");

        var replicas = new List<string>();
        for (var replica = 0; replica < ApiReplicas; replica++)
        {
            var replicaUrl = $"http://127.0.0.1:{LocalPorts.Free()}";
            var apiEnvironment = new Dictionary<string, string>(AppEnvironment(new Uri(replicaUrl).Port, ServiceRoles.Api))
            {
                ["Admin__Token"] = ApiAdminToken,
                ["Payments__Replicas"] = ApiReplicas.ToString(CultureInfo.InvariantCulture),
                // Development: merchants' webhook receivers run on this machine (127.0.0.1), which a cluster refuses.
                ["Webhooks__AllowLoopbackTargets"] = "true",
                // Behind the edge, which starts each request's trace (it ignores the caller's): continue it.
                ["Telemetry__TrustInboundTraceContext"] = "true",
            };
            var api = ChildProcess.Start($"api-{replica}", "Payments.Api.dll", [], apiEnvironment, LogDirectory);
            children.Add(api);
            await api.WaitReadyAsync(new Uri(replicaUrl + "/" + WritableProbe), tcpOnly: false, cancellationToken);
            replicas.Add(replicaUrl);
        }

        ApiReplicaAddresses = [.. replicas.Select(replica => new Uri(replica))];
        // Clients see one address: the edge load balancer, which spreads requests over the replicas and stops
        // sending to one that fails (a replica can be killed; clients retry with their Idempotency-Keys).
        var port = apiPort == 0 || !IsFree(apiPort) ? LocalPorts.Free() : apiPort;
        ApiBaseAddress = new Uri($"http://127.0.0.1:{port}");
        // No scraper's token for the edge (it serves no metrics here): 401 to a wrong one, 404 to the right one was an oracle.
        var edgeEnvironment = AppEnvironment(port, "edge").Where(variable => variable.Key != "Metrics__Token")
            .Append(KeyValuePair.Create("Edge__Backends", string.Join(',', replicas))).ToDictionary();
        var edge = ChildProcess.Start("edge", "Payments.Edge.dll", [], edgeEnvironment, LogDirectory);
        children.Add(edge);
        await edge.WaitReadyAsync(new Uri(ApiBaseAddress, "/readyz"), tcpOnly: false, cancellationToken);
        progress($"API ready on {ApiBaseAddress}: the edge load balancer over {ApiReplicas} replicas (logs in {LogDirectory})");
    }

    /// <summary>etcd's storage maintenance: the ledger's image in a process of its own, as the chart's etcd-maintenance
    /// Deployment runs it, so the root-role certificate is in no app that serves requests (started beside the ledger).</summary>
    private ChildProcess StartMaintenance()
    {
        var port = LocalPorts.Free();
        MaintenanceUrl = $"http://127.0.0.1:{port}/";
        var maintenance = ChildProcess.Start(EtcdMaintenanceApp, "Payments.Ledger.dll", [], AppEnvironment(port, EtcdMaintenanceApp), LogDirectory);
        children.Add(maintenance);
        return maintenance;
    }

    /// <summary>The environment of the app in <paramref name="role"/> on <paramref name="port"/>, with its identity.</summary>
    private Dictionary<string, string> AppEnvironment(int port, string role) => new Dictionary<string, string>
    {
        ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
        ["DAPR_GRPC_ENDPOINT"] = SidecarEndpoint,
        ["Payments__KeyPrefix"] = KeyPrefix,
        ["Payments__LedgerUrl"] = LedgerUrl,
        ["Payments__RiskUrl"] = RiskUrl,
        ["Payments__OrchestratorUrl"] = orchestratorPort is { } orchestrator && orchestrator != port ? $"http://127.0.0.1:{orchestrator}/" : string.Empty,
        ["Payments__ReviewThresholdMinor"] = ReviewThresholdMinor.ToString(CultureInfo.InvariantCulture),
        ["Payments__RejectAboveMinor"] = RejectAboveMinor.ToString(CultureInfo.InvariantCulture),
        ["Logging__LogLevel__Default"] = "Warning",
        // The operator's changes (the admin API's audit lines) are logged whatever the default (docs/api.md).
        ["Logging__LogLevel__Payments.Merchants.MerchantStore"] = "Information",
        ["Telemetry__Exporter"] = Environment.GetEnvironmentVariable("Telemetry__Exporter") ?? "none",
        ["Metrics__Token"] = MetricsToken,
    }.Concat(RegionEnvironment()).Concat(Identity.Environment(role)).Concat(EtcdEnvironment(role)).Concat(SidecarTokenEnvironment(role)).ToDictionary();

    /// <summary>The orchestrator alone drives workflows: it presents the sidecar's API token (the Dapr SDK reads
    /// <c>DAPR_API_TOKEN</c>, as from <c>dapr.io/api-token-secret</c> in a pod).</summary>
    private IEnumerable<KeyValuePair<string, string>> SidecarTokenEnvironment(string role) =>
        role == ServiceRoles.Orchestrator ? [KeyValuePair.Create("DAPR_API_TOKEN", WorkflowSidecarToken)] : [];

    /// <summary>The app's etcd user is its role (<see cref="EtcdRoles"/>); risk and the edge get no certificate: they
    /// keep nothing in etcd. The storage maintenance runs in its own process as the maintenance user, not in the
    /// ledger.</summary>
    private IEnumerable<KeyValuePair<string, string>> EtcdEnvironment(string role)
    {
        var settings = role == EtcdMaintenanceApp
            ? Cluster.ClientSettings(EtcdRbac.Maintenance)
            : Cluster.ClientSettings(role is EtcdRoles.Ledger or EtcdRoles.Api or EtcdRoles.Orchestrator or EtcdRoles.Failover ? role : null);
        var mode = role switch
        {
            EtcdMaintenanceApp => [KeyValuePair.Create($"{EtcdOptions.Section}:{nameof(EtcdOptions.EtcdMaintenance)}", nameof(EtcdMaintenanceMode.Only))],
            EtcdRoles.Ledger => [KeyValuePair.Create($"{EtcdOptions.Section}:{nameof(EtcdOptions.EtcdMaintenance)}", nameof(EtcdMaintenanceMode.Off))],
            _ => Array.Empty<KeyValuePair<string, string>>(),
        };
        return settings.Concat(mode).Select(pair => KeyValuePair.Create(pair.Key.Replace(":", "__", StringComparison.Ordinal), pair.Value));
    }

    /// <summary>The name of the storage maintenance process (the chart's component has the same name).</summary>
    public const string EtcdMaintenanceApp = "etcd-maintenance";

    /// <summary>Region mode: the apps fence their writes by the region's epoch, the ledger ships its journal, and the
    /// failover service and the ledger reach the shared Cosmos endpoint (the local server's self-signed certificate is
    /// accepted: development only).</summary>
    private IEnumerable<KeyValuePair<string, string>> RegionEnvironment() => Region is not { } region
        ? []
        : new Dictionary<string, string>
        {
            ["Region__Name"] = region.Name,
            ["Replication__Mode"] = region.Replication.ToString(),
            ["Cosmos__Endpoint"] = region.CosmosEndpoint.ToString(),
            ["Cosmos__Key"] = region.CosmosKey,
            ["Cosmos__LimitToEndpoint"] = "true",
            ["Cosmos__AcceptAnyServerCertificate"] = "true",
        };

    /// <summary>What "started" means for the apps whose readiness follows the region's role: in a standby region they
    /// are alive but (rightly) not ready, so the start waits for liveness there.</summary>
    private string WritableProbe => Region is null ? "readyz" : "healthz";

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
