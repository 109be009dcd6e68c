using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Ledger.Core.Retention;

namespace Payments.Ledger.Core.Extensions;

public static class LedgerServiceCollectionExtensions
{
    /// <summary>The ledger on the app's etcd (register <see cref="EtcdServiceCollectionExtensions.AddEtcd"/> first), at
    /// <see cref="EtcdOptions.LedgerPrefix"/>. With <paramref name="fenced"/> every write carries the region's epoch
    /// fence (a region's serving ledger); without it the ledger writes unfenced (single region, or the standby's
    /// replication, which runs only while nothing else writes). The replay window and retention come from a registered
    /// <see cref="JournalRetentionOptions"/>, else its defaults.</summary>
    public static IServiceCollection AddEtcdLedger(this IServiceCollection services, bool fenced)
    {
        services.AddSingleton(provider => Create(provider, fenced));
        return services;
    }

    private static EtcdLedger Create(IServiceProvider provider, bool fenced)
    {
        var options = provider.GetRequiredService<EtcdOptions>();
        var watcher = provider.GetRequiredService<RegionEpochWatcher>();
        return new EtcdLedger(
            provider.GetRequiredService<EtcdConnection>(), options.LedgerPrefix, provider.GetRequiredService<TimeProvider>(),
            provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdLedger>(), fenced ? watcher.CurrentFence : null,
            provider.GetService<JournalRetentionOptions>());
    }
}
