using Etcdserverpb;
using Payments.Etcd;
using Payments.Ledger.Contracts;

namespace Payments.Ledger.Core.Transfers;

/// <summary>Turns a write refused by the region's epoch fence into the fault callers answer with 503.</summary>
internal static class RegionFences
{
    public static void ThrowIfFencedOff(IWriteFence? region, TxnResponse response)
    {
        if (region is not null && region.WasFencedOff(response))
        {
            throw new RegionNotWritableException($"This region does not hold {region.Description} (demoted, or another region was promoted); nothing was written.");
        }
    }
}
