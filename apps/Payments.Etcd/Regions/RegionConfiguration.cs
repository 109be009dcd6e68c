using Microsoft.Extensions.Configuration;

namespace Payments.Etcd.Regions;

public static class RegionConfiguration
{
    /// <summary>A region of a two-region deployment (configuration <c>Region:Name</c> set): its apps fence every write
    /// with the region's epoch (ARCHITECTURE §2, invariants 5 and 6). A single-region or local deployment writes unfenced.</summary>
    public static bool IsRegional(this IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return !string.IsNullOrWhiteSpace(configuration["Region:Name"]);
    }
}
