using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Payments.Etcd;
using Payments.Ledger.Core;
using Payments.Merchants;
using Payments.ServiceDefaults.Security;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>The local system for HTTP tests: a real 3-member etcd cluster, the workflow sidecar process, the
/// orchestrator's workflow worker, and the API on Kestrel (real HTTP on 127.0.0.1).</summary>
public sealed class ApiSystemFixture : IAsyncLifetime
{
    public const long ReviewThresholdMinor = 100_000;
    public const string KeyPrefix = "/functional/";

    /// <summary>The operator's token for the API's admin API in these tests.</summary>
    public const string AdminToken = "functional-tests-operator-token-0123456789abcdef";

    private readonly EtcdClusterFixture etcd = new();
    private readonly SidecarProcess sidecar = new();
    private WebApplication? orchestrator;
    private WebApplication? ledgerService;
    private WebApplicationFactory<Program>? api;

    public EtcdLedger Ledger { get; private set; } = null!;

    public MerchantStore Store { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public EtcdConnection Etcd => etcd.Connection;

    /// <summary>The etcd cluster itself, for a test that starts an app of its own on it.</summary>
    public Payments.LocalCluster.LocalEtcdCluster EtcdCluster => etcd.Cluster;

    public Payments.LocalCluster.LocalEtcdCluster Cluster => etcd.Cluster;

    /// <summary>The ledger service the API calls (its internal API, reached directly by the ledger-service tests).</summary>
    public Uri LedgerServiceAddress => new(InProcessApp.BaseUrl(ledgerService!));

    /// <summary>A token the orchestrator knows as the failover service's, which calls no orchestrator route: its
    /// routes' roles, not the token, must refuse it (<c>ServiceIdentityTests</c>).</summary>
    public static readonly string FailoverTokenForOrchestrator = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    /// <summary>The orchestrator's internal endpoints (the saga worker's address).</summary>
    public Uri OrchestratorAddress => new(InProcessApp.BaseUrl(orchestrator!));

    /// <summary>Another API, as in one region of a two-region deployment (<c>Region:Name</c> set) with its data under
    /// <paramref name="keyPrefix"/>: it writes only while its region's epoch mirror is held.</summary>
    public async Task<WebApplicationFactory<Program>> CreateRegionalApiAsync(string keyPrefix)
    {
        await InProcessApp.GrantAsync(etcd.Cluster, keyPrefix);
        return new WebApplicationFactory<Program>().WithWebHostBuilder(web => Configure(web, keyPrefix, regional: true));
    }

    /// <summary>Another replica of the API over the same data, on its own port, with <paramref name="configure"/>
    /// applied after the usual settings (a test's own limits, its own clock).</summary>
    public WebApplicationFactory<Program> StartReplica(Action<IWebHostBuilder>? configure = null)
    {
        var port = Payments.LocalCluster.LocalPorts.Free();
        var replica = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            Configure(web, KeyPrefix, regional: false);
            // Its own port (a second factory's UseKestrel(0) lands on Kestrel's default, the first replica's).
            web.UseSetting(WebHostDefaults.ServerUrlsKey, $"http://127.0.0.1:{port}");
            configure?.Invoke(web);
        });
        replica.UseKestrel();
        replica.StartServer();
        return replica;
    }

    /// <summary>A replica over data of its own under <paramref name="keyPrefix"/> (granted to the API's etcd user), so
    /// that its background work (the webhook dispatcher's lock, trimming) meets nothing of the shared system's.</summary>
    public async Task<WebApplicationFactory<Program>> StartReplicaAsync(string keyPrefix, Action<IWebHostBuilder>? configure = null)
    {
        await InProcessApp.GrantAsync(etcd.Cluster, keyPrefix);
        return StartReplica(web =>
        {
            web.UseSetting("Payments:KeyPrefix", keyPrefix);
            configure?.Invoke(web);
        });
    }

    /// <summary>The API as the run command configures it: the ledger service and the orchestrator over HTTP.</summary>
    private void Configure(IWebHostBuilder web, string keyPrefix, bool regional)
    {
        foreach (var (key, value) in InProcessApp.EtcdSettings(etcd.Cluster, ServiceRoles.Api))
        {
            web.UseSetting(key, value);
        }

        web.UseSetting("Payments:KeyPrefix", keyPrefix);
        web.UseSetting("Admin:Token", AdminToken);
        web.UseSetting("Payments:LedgerUrl", InProcessApp.BaseUrl(ledgerService!));
        web.UseSetting("Payments:OrchestratorUrl", InProcessApp.BaseUrl(orchestrator!));
        foreach (var (key, value) in InProcessApp.Identity.Settings(ServiceRoles.Api))
        {
            web.UseSetting(key, value);
        }

        // The tests' webhook receivers listen on 127.0.0.1, and retry within a second rather than 5 s.
        web.UseSetting("Webhooks:AllowLoopbackTargets", "true");
        web.UseSetting("Webhooks:FirstBackoff", "00:00:00.200");
        web.UseSetting("Webhooks:MaxBackoff", "00:00:01");
        // Short enough that a timed-out delivery is retried within a test, long enough that deliveries a test holds
        // (the per-endpoint bound's) are not given up while its payments finish on a loaded machine.
        web.UseSetting("Webhooks:DeliveryTimeout", "00:00:06");
        web.UseSetting("Logging:LogLevel:Default", "Warning");
        // Spans to the console would bury the test output (tens of thousands of lines); the tracing test listens directly.
        web.UseSetting("Telemetry:Exporter", "none");
        if (regional)
        {
            web.UseSetting("Region:Name", "region-a");
        }
    }

    public async Task InitializeAsync()
    {
        try
        {
            await etcd.InitializeAsync();
            await sidecar.InitializeAsync();
            Ledger = etcd.NewLedger(prefix: KeyPrefix + "ledger/");
            ledgerService = await InProcessApp.StartLedgerServiceAsync(etcd.Cluster, KeyPrefix);
            orchestrator = await SagaWorker.StartAsync(
                sidecar, etcd.Cluster, KeyPrefix, InProcessApp.BaseUrl(ledgerService), ReviewThresholdMinor,
                new Dictionary<string, string> { [$"{ServiceIdentityOptions.Section}:CallerTokens:{ServiceRoles.Failover}"] = FailoverTokenForOrchestrator });
            api = new WebApplicationFactory<Program>().WithWebHostBuilder(web => Configure(web, KeyPrefix, regional: false));
            api.UseKestrel(0);
            api.StartServer();
            BaseAddress = api.ClientOptions.BaseAddress;
            Store = api.Services.GetRequiredService<MerchantStore>();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>A client for a new merchant (a fresh API key each call; <paramref name="scopes"/> default to a
    /// merchant integration's: everything but approving).</summary>
    public async Task<HttpClient> NewMerchantClientAsync(params string[] scopes) =>
        await ClientForAsync($"merchant-{Guid.NewGuid():N}"[..20], scopes);

    /// <summary>A client with a new key of <paramref name="merchant"/> (created if new).</summary>
    public async Task<HttpClient> ClientForAsync(string merchant, params string[] scopes)
    {
        var key = await Store.IssueApiKeyAsync(merchant, CancellationToken.None, scopes);
        var client = AnonymousClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public HttpClient AnonymousClient() => api!.CreateClient();

    /// <summary>The API's own services (its ILedger client, its configured limits), as the admin surface reaches them.</summary>
    public IServiceProvider ApiServices => api!.Services;

    public async Task DisposeAsync()
    {
        if (api is not null)
        {
            await api.DisposeAsync();
        }

        await SagaWorker.StopAsync(orchestrator);
        await InProcessApp.StopAsync(ledgerService);
        await sidecar.DisposeAsync();
        await etcd.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class ApiSystemCollection : ICollectionFixture<ApiSystemFixture>
{
    public const string Name = "api-system";
}
