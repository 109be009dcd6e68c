using Payments.Domain;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Failover.Core.Replication;
using Payments.Ledger.Apis;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;
using Payments.Ledger.Core.Extensions;
using Payments.Ledger.Core.Retention;
using Payments.Ledger.Replication;
using Payments.ServiceDefaults;
using Payments.ServiceDefaults.Security;

namespace Payments.Ledger.Extensions;

public static class LedgerServiceExtensions
{
    /// <summary>The ledger service: the etcd ledger (fenced by the region's epoch in a two-region deployment), its
    /// hold-expiry sweep, and journal shipping to Cosmos DB when <c>Replication:Mode</c> is sync or async — then also
    /// the archiving of settled entries past <c>Ledger:Retention:KeepFor</c> (ADR 0004).</summary>
    public static Task AddLedgerServiceAsync(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddServiceIdentity();
        var etcd = builder.Configuration.GetSection(EtcdOptions.Section).Get<EtcdOptions>() ?? new EtcdOptions();
        var regional = builder.Configuration.IsRegional();
        builder.Services.AddEtcd(etcd, regional);
        var retention = (builder.Configuration.GetSection(JournalRetentionOptions.Section).Get<JournalRetentionOptions>() ?? new JournalRetentionOptions()).Validate();
        builder.Services.AddSingleton(retention);
        // The overdraft maximum the API applies, applied here too (the chart gives both the same settings).
        builder.Services.AddSingleton((builder.Configuration.GetSection(MoneyLimits.Section).Get<MoneyLimits>() ?? new MoneyLimits()).Validate());
        builder.Services.AddEtcdLedger(fenced: regional);
        builder.Services.AddHostedService<HoldExpiryService>();
        if (etcd.EtcdMaintenance == EtcdMaintenanceMode.On)
        {
            builder.Services.AddEtcdMaintenance(etcd);
        }
        else if (etcd.EtcdMaintenanceCertFile.Length > 0)
        {
            // Off exists to keep the root-role certificate out of this pod: one still mounted is a deployment mistake.
            throw new InvalidOperationException("Payments:EtcdMaintenance=Off, yet Payments:EtcdMaintenanceCertFile is set: the ledger does not run the maintenance, so it must not hold the maintenance user's certificate.");
        }

        var replication = (builder.Configuration.GetSection("Replication").Get<ReplicationOptions>() ?? new ReplicationOptions()).Validate();
        builder.AddJournalReplication(replication, etcd);
        if (replication.Enabled && retention.Enabled)
        {
            // Settled entries leave etcd only once the shipper has them in Cosmos DB; without replication the journal
            // has no other copy and stays (size the quota: docs/storage.md).
            builder.Services.AddHostedService(provider => new JournalArchiveService(
                provider.GetRequiredService<EtcdLedger>(), () => provider.GetRequiredService<JournalShipper>().ShippedSequence,
                provider.GetRequiredService<ILoggerFactory>()));
        }

        return Task.CompletedTask; // nothing is awaited at start-up: Cosmos DB is checked by the shipping service
    }

    /// <summary>True when this process is only etcd's storage maintenance (<c>Payments:EtcdMaintenance=Only</c>: the
    /// chart's <c>etcd-maintenance</c> Deployment runs the ledger image so).</summary>
    public static bool IsEtcdMaintenanceOnly(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Configuration.GetSection(EtcdOptions.Section).Get<EtcdOptions>()?.EtcdMaintenance == EtcdMaintenanceMode.Only;
    }

    /// <summary>etcd's storage maintenance alone, as the maintenance user (its own certificate is that user's): no
    /// ledger, no API, no Dapr sidecar; health and readiness (etcd reachable) and the storage metrics. It takes no
    /// request but the probes' and the scraper's, so it has no service identity to check.</summary>
    public static void AddEtcdMaintenanceOnly(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var etcd = builder.Configuration.GetSection(EtcdOptions.Section).Get<EtcdOptions>() ?? new EtcdOptions();
        if (etcd.EtcdMaintenanceCertFile.Length > 0)
        {
            throw new InvalidOperationException("Payments:EtcdMaintenance=Only connects as the maintenance user through Payments:EtcdCertFile; leave EtcdMaintenanceCertFile empty.");
        }

        builder.Services.AddEtcd(etcd, regional: false);
        builder.Services.AddEtcdMaintenance(etcd);
    }

    public static void UseEtcdMaintenanceOnly(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseInternalProblems(); // an unknown route is problem+json not-found, as in every other app (it was bodiless)
        app.MapHealthEndpoints(async (services, cancellationToken) => await services.IsEtcdReachableAsync(cancellationToken));
        app.MapMetricsEndpoint();
    }

    public static void UseLedgerService(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var regional = app.Configuration.IsRegional();
        app.UseServiceIdentity();
        app.MapLedgerApi();
        // Readiness: etcd reachable and, in a region, the region active (a standby's ledger takes no traffic).
        app.MapHealthEndpoints(async (services, cancellationToken) =>
            await services.IsEtcdReachableAsync(cancellationToken)
            && (!regional || services.GetRequiredService<RegionEpochWatcher>().IsWritable));
        app.MapMetricsEndpoint();
    }
}
