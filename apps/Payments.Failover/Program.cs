using Payments.Etcd;
using Payments.Failover;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Core;
using Payments.Orchestrator.Gateway;
using Payments.Orchestrator.Records;
using Payments.ServiceDefaults;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddServiceDefaults("payments-failover");
var region = (builder.Configuration.GetSection("Region").Get<RegionLeaseOptions>() ?? new RegionLeaseOptions()).Validate();
var cosmos = builder.Configuration.GetSection("Cosmos").Get<CosmosSettings>() ?? new CosmosSettings();
var etcdEndpoints = builder.Configuration["Payments:EtcdEndpoints"] ?? "http://127.0.0.1:2379";
var keyPrefix = builder.Configuration["Payments:KeyPrefix"] ?? "/daprpayments/";
using var cosmosClient = cosmos.CreateClient();
using (var setup = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
{
    // The control container exists before any region decides anything (idempotent; bounded).
    await CosmosSettings.EnsureContainerAsync(cosmosClient, cosmos.Database, cosmos.ControlContainer, setup.Token);
    await CosmosSettings.EnsureContainerAsync(cosmosClient, cosmos.Database, cosmos.JournalContainer, setup.Token);
}

builder.Services.AddSingleton(region);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton(_ => EtcdConnection.Create(etcdEndpoints));
builder.Services.AddSingleton(new ActiveRegionStore(cosmosClient.GetContainer(cosmos.Database, cosmos.ControlContainer)));
builder.Services.AddSingleton(provider => new RegionEpochMirror(provider.GetRequiredService<EtcdConnection>(), keyPrefix));
// The warm standby: this region's ledger (written only by the applier while standby), fed from the active region's
// replicated journal; after a promotion the region writes only once it has applied everything shipped.
builder.Services.AddSingleton(provider => new EtcdLedger(
    provider.GetRequiredService<EtcdConnection>(), keyPrefix + "ledger/", provider.GetRequiredService<TimeProvider>(),
    provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdLedger>()));
builder.Services.AddSingleton(provider => new JournalReplicator(
    cosmosClient.GetContainer(cosmos.Database, cosmos.JournalContainer), provider.GetRequiredService<EtcdLedger>(),
    provider.GetRequiredService<EtcdConnection>(), keyPrefix));
builder.Services.AddSingleton(provider =>
{
    var replicator = provider.GetRequiredService<JournalReplicator>();
    return new RegionLeaseManager(
        region, provider.GetRequiredService<ActiveRegionStore>(), provider.GetRequiredService<RegionEpochMirror>(),
        provider.GetRequiredService<TimeProvider>(), provider.GetRequiredService<ILoggerFactory>().CreateLogger<RegionLeaseManager>())
    {
        CatchUp = (previous, cancellationToken) => replicator.DrainAsync(previous, MaxCatchUpRounds, cancellationToken),
        // Resolves what the previous active region left unfinished (PromotionReconciler says by which rule).
        Promoted = provider.GetRequiredService<PromotionReconciler>().OnPromotedAsync,
        BeforeHandOver = cancellationToken => provider.GetRequiredService<ShippingProgress>().WaitCaughtUpAsync(region.Name, SwitchoverDrainTimeout, cancellationToken),
    };
});
builder.Services.AddSingleton(provider => new ShippingProgress(
    cosmosClient.GetContainer(cosmos.Database, cosmos.JournalContainer), provider.GetRequiredService<EtcdLedger>(),
    provider.GetRequiredService<TimeProvider>()));
builder.Services.AddSingleton(provider => new PaymentRecordStore(provider.GetRequiredService<EtcdConnection>(), keyPrefix + "payments/"));
var orchestratorUrl = builder.Configuration["Payments:OrchestratorUrl"];
if (!string.IsNullOrWhiteSpace(orchestratorUrl))
{
    // The orchestrator's internal endpoints (its Dapr sidecar's invocation URL on Kubernetes), bounded per call.
    builder.Services.AddInvocationClient<IPaymentWorkflows, HttpPaymentWorkflows>(orchestratorUrl, TimeSpan.FromSeconds(10));
}

builder.Services.AddSingleton(provider => new PromotionReconciler(
    provider.GetRequiredService<PaymentRecordStore>(), provider.GetService<IPaymentWorkflows>(), provider.GetRequiredService<TimeProvider>(),
    provider.GetRequiredService<ILogger<PromotionReconciler>>(), provider.GetRequiredService<IHostApplicationLifetime>()));
builder.Services.AddSingleton<RegionLeaseService>();
builder.Services.AddHostedService(provider => provider.GetRequiredService<RegionLeaseService>());

var app = builder.Build();
app.MapAdminApi();
// Ready while the lease loop completes ticks (Cosmos and etcd answer); the region's role is in /admin/v1/region.
app.MapHealthEndpoints((services, _) =>
{
    var lastTick = services.GetRequiredService<RegionLeaseService>().LastTickCompletedAt;
    return Task.FromResult(lastTick is { } at && TimeProvider.System.GetUtcNow() - at < region.RenewInterval * 3);
});
await app.RunAsync();

/// <summary>Visible to the tests (WebApplicationFactory).</summary>
public partial class Program
{
    /// <summary>Rounds of 16 pages per catch-up attempt; a tick's timeout bounds it too, and the next tick resumes.</summary>
    private const int MaxCatchUpRounds = 1_000;

    /// <summary>How long a planned switchover waits for this region's journal to be shipped before it gives up.</summary>
    private static readonly TimeSpan SwitchoverDrainTimeout = TimeSpan.FromSeconds(30);
}
