using Microsoft.Azure.Cosmos;
using Payments.Cosmos;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Failover.Apis;
using Payments.Failover.Archiving;
using Payments.Failover.Core.Archiving;
using Payments.Failover.Core;
using Payments.Failover.Core.Replication;
using Payments.Failover.Reconciliation;
using Payments.Failover.Security;
using Payments.Ledger.Core.Extensions;
using Payments.Orchestrator.Client.Records;
using Payments.ServiceDefaults;

using Payments.ServiceDefaults.Security;

namespace Payments.Failover.Extensions;

public static class FailoverExtensions
{
    /// <summary>Rounds of 16 pages per catch-up attempt; a tick's timeout bounds it too, and the next tick resumes.</summary>
    private const int MaxCatchUpRounds = 1_000;

    /// <summary>The largest request body the failover service reads.</summary>
    private const long MaxRequestBodyBytes = 64 * 1024;

    /// <summary>The longest a planned switchover waits for this region's journal and records to be shipped; the
    /// region's lease bounds it tighter (lease − demote margin, <c>RegionLeaseManager.HandOverAsync</c>).</summary>
    private static readonly TimeSpan SwitchoverDrainTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The failover service of one region: the lease loop on the active-region record in Cosmos DB, the epoch
    /// mirror in this region's etcd, the warm standby (this region's ledger, written only by the journal applier while
    /// standby), reconciliation after a takeover, and the admin surface.</summary>
    public static Task AddFailoverServiceAsync(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var region = (builder.Configuration.GetSection("Region").Get<RegionLeaseOptions>() ?? new RegionLeaseOptions()).Validate();
        var admin = (builder.Configuration.GetSection(AdminOptions.Section).Get<AdminOptions>() ?? new AdminOptions()).Validate(region.Name);
        var cosmos = builder.Configuration.GetSection(CosmosSettings.Section).Get<CosmosSettings>() ?? new CosmosSettings();
        var etcd = builder.Configuration.GetSection(EtcdOptions.Section).Get<EtcdOptions>() ?? new EtcdOptions();
        var archiving = (builder.Configuration.GetSection(ArchiveOptions.Section).Get<ArchiveOptions>() ?? new ArchiveOptions()).Validate();
        // The admin API's bodies are a few bytes, read only after the operator's token is checked; the bound keeps an
        // operator's tool (or a stolen token) from making the service read Kestrel's default 30 MB.
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = MaxRequestBodyBytes;
            kestrel.AddServerHeader = false;
        });
        // Read as the other services read bodies (ServiceIdentityExtensions): {"to":"x","to":"region-b"} was a switchover
        // to region-b, what a parser on the way that reads the first value took for a refused one.
        builder.Services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
            json.SerializerOptions.AllowDuplicateProperties = false;
        });
        var client = cosmos.CreateClient();
        // Handles need no call; the lease loop checks the containers before its first tick, not start-up (CosmosSetup).
        var (control, journal, archive) = (client.GetContainer(cosmos.Database, cosmos.ControlContainer),
            client.GetContainer(cosmos.Database, cosmos.JournalContainer), client.GetContainer(cosmos.Database, cosmos.ArchiveContainer));

        var services = builder.Services;
        services.AddSingleton(new CosmosSetup(client, cosmos, [cosmos.ControlContainer, cosmos.JournalContainer, cosmos.ArchiveContainer]));
        services.AddSingleton(region);
        services.AddSingleton(admin);
        services.AddSingleton(admin.Credential!);
        services.AddSingleton<OperatorAuthentication>();
        services.AddSingleton<SwitchoverGate>();
        services.AddSingleton(_ => client); // created by a factory: disposed with the container
        services.AddEtcd(etcd, regional: false); // the failover service writes the mirror itself; it reads no fence
        services.AddEtcdLedger(fenced: false); // the standby's applier: runs only while nothing else writes
        services.AddSingleton(new ActiveRegionStore(control, cosmos.ServerErrorMeansMissing));
        // The mirror's deadline is real time, like its etcd lease's TTL, and the apps read it with their real clocks: the
        // system clock, whatever clock drives the lease manager (a fake one in tests).
        services.AddSingleton(provider => new RegionEpochMirror(provider.GetRequiredService<EtcdConnection>(), etcd.KeyPrefix));
        services.AddSingleton(provider => new JournalReplicator(
            journal, provider.GetRequiredService<Ledger.Core.EtcdLedger>(), provider.GetRequiredService<EtcdConnection>(), etcd.KeyPrefix)
        {
            ServerErrorMeansMissing = cosmos.ServerErrorMeansMissing,
        });
        services.AddSingleton(provider => new ShippingProgress(
            journal, provider.GetRequiredService<Ledger.Core.EtcdLedger>(), provider.GetRequiredService<TimeProvider>())
        {
            RecordRoot = etcd.KeyPrefix, // the ledger service ships the API's records with the journal (JournalReplication)
            Etcd = provider.GetRequiredService<EtcdConnection>(),
            ServerErrorMeansMissing = cosmos.ServerErrorMeansMissing,
        });
        services.AddSingleton(provider => CreateLeaseManager(provider, region));
        services.AddSingleton(provider => new PromotionReconciler(
            provider.GetRequiredService<EtcdConnection>(), etcd, provider.GetRequiredService<TimeProvider>(),
            provider.GetRequiredService<ILogger<PromotionReconciler>>(), provider.GetRequiredService<IHostApplicationLifetime>())
        {
            // Read at each attempt (the manager is made after this, and raises the promotion this answers).
            StillHolds = epoch => provider.GetRequiredService<RegionLeaseManager>() is { Role: RegionRole.Active } manager && manager.Epoch == epoch,
        });
        services.AddSingleton(archiving);
        services.AddSingleton(provider => new PaymentArchiver(
            new PaymentRecordStore(provider.GetRequiredService<EtcdConnection>(), etcd.PaymentsPrefix), new RecordArchive(archive, cosmos.ServerErrorMeansMissing),
            provider.GetRequiredService<TimeProvider>(), archiving.PaymentRecordsKeepFor, provider.GetRequiredService<ILogger<PaymentArchiver>>()));
        services.AddHostedService<ArchivingService>();
        services.AddSingleton<RegionLeaseService>();
        services.AddHostedService(provider => provider.GetRequiredService<RegionLeaseService>());
        return Task.CompletedTask; // nothing is awaited at start-up: Cosmos DB is checked by the lease loop
    }

    public static void UseFailoverService(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var region = app.Services.GetRequiredService<RegionLeaseOptions>();
        // A malformed body, an unknown route, a wrong method: problem+json with our types, as the other services answer.
        app.UseInternalProblems();
        Payments.ServiceDefaults.Security.OperatorAuthentication.UseOperatorAuthenticationForAdmin(app); // before routing answers an admin path 404/405
        app.MapAdminApi();
        // Ready while the lease loop completes ticks (Cosmos and etcd answer); the region's role is in /admin/v1/region.
        app.MapHealthEndpoints((services, _) =>
        {
            var lastTick = services.GetRequiredService<RegionLeaseService>().LastTickCompletedAt;
            var now = services.GetRequiredService<TimeProvider>().GetUtcNow();
            return Task.FromResult(lastTick is { } at && now - at < region.RenewInterval * 3);
        });
        app.MapMetricsEndpoint();
    }

    private static RegionLeaseManager CreateLeaseManager(IServiceProvider provider, RegionLeaseOptions region)
    {
        var replicator = provider.GetRequiredService<JournalReplicator>();
        var manager = new RegionLeaseManager(
            region, provider.GetRequiredService<ActiveRegionStore>(), provider.GetRequiredService<RegionEpochMirror>(),
            provider.GetRequiredService<TimeProvider>(), provider.GetRequiredService<ILoggerFactory>().CreateLogger<RegionLeaseManager>())
        {
            // A region that takes over applies everything the previous one shipped before it writes; so does a process
            // that starts while its region holds the record (PeerRegion).
            CatchUp = (previous, cancellationToken) => replicator.DrainAsync(previous, MaxCatchUpRounds, cancellationToken),
            PeerRegion = provider.GetRequiredService<AdminOptions>().PeerRegion,
            // Resolves what the previous active region left unfinished (PromotionReconciler says by which rule).
            Promoted = provider.GetRequiredService<PromotionReconciler>().OnPromotedAsync,
            BeforeHandOver = cancellationToken => provider.GetRequiredService<ShippingProgress>().WaitCaughtUpAsync(region.Name, SwitchoverDrainTimeout, cancellationToken),
        };
        RegionMetrics.Observe(manager, provider.GetRequiredService<TimeProvider>());
        return manager;
    }
}
