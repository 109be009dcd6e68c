using Etcdserverpb;
using Payments.Etcd;

namespace Payments.Merchants;

/// <summary>Walking the merchants: for work done merchant by merchant (the webhook events' trim).</summary>
public sealed partial class MerchantStore
{
    /// <summary>Merchant ids in order, after <paramref name="after"/> (null: from the first), at most
    /// <paramref name="limit"/>; more is true when others follow.</summary>
    public async Task<(IReadOnlyList<string> Ids, bool More)> MerchantIdsAsync(string? after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var merchants = root + "merchants/";
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(after is null ? merchants : merchants + after + "\0"), RangeEnd = EtcdBytes.PrefixEnd(merchants), Limit = limit, KeysOnly = true,
        }, cancellationToken: token), cancellationToken);
        return (response.Kvs.Select(kv => kv.Key.ToStringUtf8()[merchants.Length..]).ToArray(), response.More);
    }

    /// <summary>Key records read at most by <see cref="RecordLegacyMerchantsAsync"/>, a page at a time.</summary>
    public const int MaxLegacyScanPages = 100;

    /// <summary>Creates the merchant record of every merchant whose keys were issued before merchants had records (a key
    /// record holding the merchant id alone, which <see cref="DecodeKey"/> still accepts): what walks merchants by their
    /// records — the webhook events' trim — would otherwise never reach their events. Idempotent (create-if-absent);
    /// reads at most <see cref="MaxLegacyScanPages"/> pages of key records. Returns how many records it created.</summary>
    public async Task<int> RecordLegacyMerchantsAsync(CancellationToken cancellationToken)
    {
        var created = 0;
        foreach (var merchant in (await LegacyMerchantIdsAsync(cancellationToken)).Where(MerchantRecord.IsValidId))
        {
            if ((await CreateMerchantAsync(merchant, null, cancellationToken)).Created)
            {
                created++;
            }
        }

        return created;
    }

    /// <summary>The merchants from before merchant records whose id a record cannot have (it predates the id check:
    /// a '.', say; docs/api.md), so that what walks merchants by their records — the webhook events' trim — reaches
    /// their events too: they were kept for good (a review finding). Read only; the same bound as
    /// <see cref="RecordLegacyMerchantsAsync"/>. Only ids that stay one segment of a key's path (no '/').</summary>
    public async Task<IReadOnlyList<string>> LegacyMerchantsWithoutRecordsAsync(CancellationToken cancellationToken) =>
        [.. (await LegacyMerchantIdsAsync(cancellationToken)).Where(merchant => !MerchantRecord.IsValidId(merchant) && merchant.Length > 0 && !merchant.Contains('/'))];

    /// <summary>Every merchant id a key record holds alone (keys issued before merchant records), once each.</summary>
    private async Task<IReadOnlyCollection<string>> LegacyMerchantIdsAsync(CancellationToken cancellationToken)
    {
        var legacy = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var page in KeyRecordPagesAsync(MaxLegacyScanPages, cancellationToken))
        {
            legacy.UnionWith(page.Kvs.Select(kv => kv.Value.ToStringUtf8()).Where(text => !text.StartsWith('{')));
        }

        return legacy;
    }
}
