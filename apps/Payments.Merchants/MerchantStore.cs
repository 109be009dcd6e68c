using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;

namespace Payments.Merchants;

/// <summary>The API's own records on etcd: merchants' API keys (hashed) and which merchant owns which account.
/// Every write is create-only. (Payment records are the saga's: <c>PaymentRecordStore</c>.)</summary>
public sealed class MerchantStore(EtcdConnection etcd, string prefix)
{
    /// <summary>Looked-up keys kept in memory; past it the cache starts over.</summary>
    public const int MaxCachedKeys = 10_000;

    private readonly string root = EtcdBytes.AsPrefix(prefix);
    private readonly ConcurrentDictionary<string, string> merchantsByKeyHash = new(StringComparer.Ordinal);

    /// <summary>Issues a new API key for a merchant. Only its SHA-256 is stored: API keys are 256-bit random values,
    /// so a fast hash is enough (a slow password hash protects guessable secrets, which these are not).</summary>
    public async Task<string> IssueApiKeyAsync(string merchantId, CancellationToken cancellationToken)
    {
        var key = "dp_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        await PutIfAbsentAsync(root + "merchant-keys/" + Hash(key), merchantId, cancellationToken);
        return key;
    }

    public async Task<string?> MerchantForKeyAsync(string apiKey, CancellationToken cancellationToken)
    {
        var hash = Hash(apiKey);
        if (merchantsByKeyHash.TryGetValue(hash, out var cached))
        {
            return cached;
        }

        var merchant = await GetStringAsync(root + "merchant-keys/" + hash, cancellationToken);
        if (merchant is not null)
        {
            if (merchantsByKeyHash.Count >= MaxCachedKeys)
            {
                merchantsByKeyHash.Clear();
            }

            merchantsByKeyHash[hash] = merchant;
        }

        return merchant;
    }

    /// <summary>Records that <paramref name="merchantId"/> owns the account, unless someone already does; returns the owner.</summary>
    public async Task<string> ClaimAccountAsync(string accountId, string merchantId, CancellationToken cancellationToken) =>
        await PutIfAbsentAsync(root + "account-owners/" + accountId, merchantId, cancellationToken);

    public Task<string?> AccountOwnerAsync(string accountId, CancellationToken cancellationToken) =>
        GetStringAsync(root + "account-owners/" + accountId, cancellationToken);

    private async Task<string> PutIfAbsentAsync(string key, string value, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
        request.Success.Add(EtcdBytes.Put(key, ByteString.CopyFromUtf8(value)));
        request.Failure.Add(EtcdBytes.Get(key));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        return response.Succeeded ? value : response.Responses[0].ResponseRange.Kvs[0].Value.ToStringUtf8();
    }

    private async Task<string?> GetStringAsync(string key, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key) }, cancellationToken: token), cancellationToken);
        return response.Kvs.FirstOrDefault()?.Value.ToStringUtf8();
    }

    private static string Hash(string value) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
}
