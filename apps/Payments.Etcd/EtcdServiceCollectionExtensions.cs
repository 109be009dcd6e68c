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
            provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix, provider.GetRequiredService<TimeProvider>(),
            provider.GetService<ILoggerFactory>()?.CreateLogger<RegionEpochWatcher>()));
        if (regional)
        {
            services.AddHostedService<RegionEpochWatcherService>();
        }

        return services;
    }

    /// <summary>Readiness of an app's etcd: a linearizable read of the region epoch (every app's etcd role may read it).</summary>
    public static Task<bool> IsEtcdReachableAsync(this IServiceProvider services, CancellationToken cancellationToken) =>
        services.GetRequiredService<EtcdConnection>().IsReachableAsync(
            RegionEpochFence.KeyFor(services.GetRequiredService<EtcdOptions>().KeyPrefix), cancellationToken);

    /// <summary>Defragments the members one at a time when compaction has left their files mostly free, disarms a
    /// NOSPACE alarm once there is room again, and exports the database sizes (one process per region runs it: on
    /// Kubernetes the etcd-maintenance Deployment, <c>Payments:EtcdMaintenance=Only</c>; the ledger with <c>On</c>).</summary>
    public static IServiceCollection AddEtcdMaintenance(this IServiceCollection services, EtcdOptions options, DefragPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var effective = (policy ?? DefragPolicy.Default) with { QuotaBytes = options.QuotaBackendBytes };
        // With etcd auth on, maintenance runs as its own user (root role) over its own connection, so the app's
        // everyday connection keeps only its prefixes.
        services.AddSingleton(provider => options.MaintenanceTls is { } maintenance
            ? new MaintenanceConnection(EtcdConnection.Create(options.EtcdEndpoints, maintenance))
            : new MaintenanceConnection(provider.GetRequiredService<EtcdConnection>(), Owned: false));
        services.AddSingleton(provider =>
        {
            var defragmenter = new EtcdDefragmenter(
                provider.GetRequiredService<MaintenanceConnection>().Etcd, options.MaintenanceLockKey, effective,
                provider.GetRequiredService<ILoggerFactory>().CreateLogger<EtcdDefragmenter>());
            defragmenter.ExportMetrics();
            return defragmenter;
        });
        services.AddHostedService<EtcdMaintenanceService>();
        return services;
    }

    /// <summary>The maintenance user's connection, disposed with the container when it is its own.</summary>
    private sealed record MaintenanceConnection(EtcdConnection Etcd, bool Owned = true) : IDisposable
    {
        public void Dispose()
        {
            if (Owned)
            {
                Etcd.Dispose();
            }
        }
    }

    /// <summary>Runs the defragmenter for the life of the app.</summary>
    private sealed class EtcdMaintenanceService(EtcdDefragmenter defragmenter, TimeProvider time) : BackgroundService
    {
        protected override Task ExecuteAsync(CancellationToken stoppingToken) => defragmenter.RunAsync(time, stoppingToken);
    }
}
