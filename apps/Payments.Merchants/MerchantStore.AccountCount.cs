using System.Globalization;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;

namespace Payments.Merchants;

/// <summary>How many accounts each merchant opened, <c>{api}account-counts/{merchant}</c> (shipped with the API's
/// records), so that the API can bound them: every account stays in etcd for good.</summary>
public sealed partial class MerchantStore
{
    /// <summary>Compare-and-swap rounds of one count at most (each lost to another account of the merchant opened at
    /// the same moment).</summary>
    public const int MaxCountAttempts = 16;

    private string AccountCountKey(string merchantId) => root + "account-counts/" + merchantId;

    /// <summary>The accounts the merchant opened, as counted (0 for a merchant from before the count: its earlier
    /// accounts are not in it).</summary>
    public async Task<long> AccountCountAsync(string merchantId, CancellationToken cancellationToken) =>
        CountOf(await GetAsync(AccountCountKey(merchantId), cancellationToken));

    private static long CountOf(Mvccpb.KeyValue? kv) => kv is null ? 0 : long.Parse(kv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture);

    /// <summary>Counts one more account of the merchant (one compare-and-swap; retried while others count at once, at
    /// most <see cref="MaxCountAttempts"/> times — then left uncounted: the bound guards storage, not money, and a miss
    /// of one account is not worth failing an account the ledger has opened).</summary>
    public async Task<bool> CountAccountOpenedAsync(string merchantId, CancellationToken cancellationToken)
    {
        var key = AccountCountKey(merchantId);
        for (var attempt = 0; attempt < MaxCountAttempts; attempt++)
        {
            var current = await GetAsync(key, cancellationToken);
            var count = CountOf(current);
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(key, current?.ModRevision ?? 0));
            request.Success.Add(EtcdBytes.Put(key, ByteString.CopyFromUtf8((count + 1).ToString(CultureInfo.InvariantCulture))));
            if ((await TxnAsync(request, cancellationToken)).Succeeded)
            {
                return true;
            }
        }

        return false;
    }
}
