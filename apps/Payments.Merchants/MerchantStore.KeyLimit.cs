using Etcdserverpb;
using Payments.Etcd;

namespace Payments.Merchants;

/// <summary>The bound on a merchant's keys (<see cref="MaxKeysPerMerchant"/>), held under concurrent issues and
/// rotations.</summary>
public sealed partial class MerchantStore
{
    /// <summary>Counts and writes of one new key at most, each lost to a concurrent change of the merchant's keys.</summary>
    public const int MaxKeyWriteAttempts = 8;

    /// <summary>The revision at which the merchant held fewer than <see cref="MaxKeysPerMerchant"/> keys, or null when
    /// it holds that many; ended keys (revoked, or past a rotation's overlap) are removed first at the limit
    /// (<see cref="ListKeysAsync"/>). A write of a new key compares the merchant's index with this revision
    /// (<see cref="KeysUnchangedSince"/>): count then write let concurrent requests all pass the count.</summary>
    private async Task<long?> RoomForAKeyAsync(string merchantId, CancellationToken cancellationToken)
    {
        var (count, revision) = await CountKeysAsync(merchantId, cancellationToken);
        if (count < MaxKeysPerMerchant)
        {
            return revision;
        }

        if ((await ListKeysAsync(merchantId, servedWhenFencedOff: false, cancellationToken))?.Count >= MaxKeysPerMerchant)
        {
            return null;
        }

        (count, revision) = await CountKeysAsync(merchantId, cancellationToken);
        return count < MaxKeysPerMerchant ? revision : null;
    }

    /// <summary>Every key of the merchant's index last changed at or before <paramref name="revision"/> (an empty index
    /// holds too): no key was added since it was counted (a deletion since leaves the range, and the count only high).</summary>
    private Compare KeysUnchangedSince(string merchantId, long revision) => new()
    {
        Key = EtcdBytes.Key(KeyIndexPrefix(merchantId)), RangeEnd = EtcdBytes.PrefixEnd(KeyIndexPrefix(merchantId)),
        Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Less, ModRevision = revision + 1,
    };

    private async Task<(long Count, long Revision)> CountKeysAsync(string merchantId, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(KeyIndexPrefix(merchantId)), RangeEnd = EtcdBytes.PrefixEnd(KeyIndexPrefix(merchantId)), CountOnly = true,
        }, cancellationToken: token), cancellationToken);
        return (response.Count, response.Header.Revision);
    }
}
