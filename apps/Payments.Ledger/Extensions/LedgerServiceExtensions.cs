using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Ledger.Apis;
using Payments.Ledger.Core.Expiry;
using Payments.Ledger.Core.Extensions;
using Payments.Ledger.Replication;
using Payments.ServiceDefaults;

namespace Payments.Ledger.Extensions;

public static class LedgerServiceExtensions
{
    /// <summary>The ledger service: the etcd ledger (fenced by the region's epoch in a two-region deployment), its
    /// hold-expiry sweep, and journal shipping to Cosmos DB when <c>Replication:Mode</c> is sync or async.</summary>
    public static async Task AddLedgerServiceAsync(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var etcd = builder.Configuration.GetSection(EtcdOptions.Section).Get<EtcdOptions>() ?? new EtcdOptions();
        var regional = builder.Configuration.IsRegional();
        builder.Services.AddEtcd(etcd, regional);
        builder.Services.AddEtcdLedger(fenced: regional);
        builder.Services.AddHostedService<HoldExpiryService>();
        builder.Services.AddEtcdMaintenance(etcd);
        var replication = (builder.Configuration.GetSection("Replication").Get<ReplicationOptions>() ?? new ReplicationOptions()).Validate();
        await builder.AddJournalReplicationAsync(replication, etcd);
    }

    public static void UseLedgerService(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var regional = app.Configuration.IsRegional();
        app.MapLedgerApi();
        // Readiness: etcd reachable and, in a region, the region active (a standby's ledger takes no traffic).
        app.MapHealthEndpoints(async (services, cancellationToken) =>
            await services.GetRequiredService<EtcdConnection>().IsReachableAsync(cancellationToken)
            && (!regional || services.GetRequiredService<RegionEpochWatcher>().IsWritable));
    }
}
