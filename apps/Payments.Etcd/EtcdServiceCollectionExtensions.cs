using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
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
        services.AddSingleton(_ => EtcdConnection.Create(options.EtcdEndpoints));
        services.AddSingleton(provider => new RegionEpochWatcher(
            provider.GetRequiredService<EtcdConnection>(), options.KeyPrefix, provider.GetRequiredService<TimeProvider>()));
        if (regional)
        {
            services.AddHostedService<RegionEpochWatcherService>();
        }

        return services;
    }
}
