using Etcdserverpb;
using Payments.Etcd;

namespace Payments.Merchants;

public sealed partial class MerchantStore
{
    /// <summary>The region's epoch fence (null: a single region), carried by every write: merchants and keys reach the
    /// other region from the active one only, and the API's view of the epoch is polled, so a revocation made just
    /// after a switchover was answered 204 and the key kept working in the region now serving it (failover review).</summary>
    public Func<IWriteFence?>? RegionFence { get; init; }

    /// <summary>A transaction; one that writes carries <see cref="RegionFence"/>, and refused by it throws
    /// <see cref="Payments.Ledger.Contracts.RegionNotWritableException"/> (the API answers 503 region-not-writable).</summary>
    private async Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken)
    {
        var fence = request.Success.Concat(request.Failure).Any(op => op.RequestCase is not RequestOp.RequestOneofCase.RequestRange) ? RegionFence?.Invoke() : null;
        if (fence is null)
        {
            return await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        }

        // The fence around the whole request, not among its compares: a failed compare runs the failure branch, and
        // some requests write there (an account's claim under its namespaced id) — a fenced-off claim still wrote.
        var fenced = new TxnRequest();
        fenced.Success.Add(new RequestOp { RequestTxn = request });
        fence.AddFence(fenced);
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(fenced, cancellationToken: token), cancellationToken);
        return fence.WasFencedOff(response)
            ? throw new Payments.Ledger.Contracts.RegionNotWritableException($"This region no longer holds {fence.Description}: nothing was written.")
            : response.Responses[0].ResponseTxn;
    }

    /// <summary>A merchant made without a name (by the keys' migration, or the local tools) takes the first name a
    /// create gives it, exactly once (a compare of the record as read): there is no rename, so without this it could
    /// never have one, and an operator's "ensure it exists" with a name failed on it. Otherwise the record as it is.</summary>
    private async Task<MerchantRecord> NamedIfNamelessAsync(MerchantRecord merchant, Google.Protobuf.ByteString stored, string? name, CancellationToken cancellationToken)
    {
        if (merchant.Name is not null || name is null)
        {
            return merchant;
        }

        var key = MerchantKey(merchant.MerchantId);
        var named = merchant with { Name = name };
        var request = new TxnRequest();
        request.Compare.Add(new Compare { Key = EtcdBytes.Key(key), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = stored });
        request.Success.Add(EtcdBytes.Put(key, Encode(named)));
        request.Failure.Add(EtcdBytes.Get(key));
        var response = await TxnAsync(request, cancellationToken);
        return response.Succeeded ? named : response.Responses[0].ResponseRange.Kvs is [var now, ..] ? Decode<MerchantRecord>(now.Value) : merchant;
    }

    /// <summary>Removes an ended key from the merchant's index, with its record unless <paramref name="keepRecord"/>: a
    /// revoked key's record stays, marked revoked, because deleting it could overtake the shipping of its revocation
    /// (a deletion is not shipped), and the standby would keep the key live. Revocations are the operator's acts, so
    /// what stays is bounded by them.</summary>
    private async Task DeleteKeyAsync(string merchantId, string keyId, string hash, bool keepRecord, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        if (!keepRecord)
        {
            request.Success.Add(EtcdBytes.Delete(KeyRecordKey(hash)));
        }

        request.Success.Add(EtcdBytes.Delete(KeyIndexKey(merchantId, keyId)));
        request.Success.Add(EtcdBytes.Delete(UsageKey(hash)));
        await TxnAsync(request, cancellationToken);
    }
}
