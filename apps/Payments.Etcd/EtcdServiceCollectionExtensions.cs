using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Payments.Etcd.Maintenance;
using Payments.Etcd.Regions;

namespace Payments.Etcd;

public static class EtcdServiceCollectionExtensions
{
    /// <summary>The etcd connection every app shares (one per process), the options, the system clock, and the
    /// region's view of its epoch mirror; with <paramref name="regional"/> (a region of a two-region deployment) the
    /// view is kept fresh in the background.</summary>
    public static IServiceCollection AddEtcd(this IServiceCollection services, EtcdOptions options, bool regional)
    {
        ArgumentNullException.ThrowIfNull(options);
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(_ => EtcdConnection.Create(options.EtcdEndpoints, options.Tls));
        services.AddSingleton(provider => new RegionEpochWatcher(
            provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix, provider.GetRequiredService<TimeProvider>()));
        if (regional)
        {
            services.AddHostedService<RegionEpochWatcherService>();
        }

        return services;
    }

    /// <summary>Defragments the members one at a time when compaction has left their files mostly free, disarms a
    /// NOSPACE alarm once there is room again, and exports the database sizes (one app per region runs it: the ledger
    /// service, which writes most).</summary>
    public static IServiceCollection AddEtcdMaintenance(this IServiceCollection services, EtcdOptions options, DefragPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var effective = (policy ?? DefragPolicy.Default) with { QuotaBytes = options.QuotaBackendBytes };
        services.AddSingleton(provider =>
        {
            var defragmenter = new EtcdDefragmenter(
                provider.GetRequiredService<EtcdConnection>(), options.MaintenanceLockKey, effective,
                provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdDefragmenter>());
            defragmenter.ExportMetrics();
            return defragmenter;
        });
        services.AddHostedService<EtcdMaintenanceService>();
        return services;
    }

    /// <summary>Runs the defragmenter for the life of the app.</summary>
    private sealed class EtcdMaintenanceService(EtcdDefragmenter defragmenter, TimeProvider time) : BackgroundService
    {
        protected override Task ExecuteAsync(CancellationToken stoppingToken) => defragmenter.RunAsync(time, stoppingToken);
    }
}
