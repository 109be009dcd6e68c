using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;

namespace Payments.Merchants;

/// <summary>The API's own records on etcd: merchants' API keys (hashed) and which merchant owns which account.
/// Every write is create-only. (Payment records are the saga's: <c>PaymentRecordStore</c>.)</summary>
public sealed class MerchantStore(EtcdConnection etcd, string prefix, TimeProvider? time = null)
{
    /// <summary>Looked-up keys kept in memory; past it the cache starts over.</summary>
    public const int MaxCachedKeys = 10_000;

    /// <summary>Unknown keys remembered (by hash) at most; past it that cache starts over.</summary>
    public const int MaxUnknownKeys = 10_000;

    /// <summary>How long a key found unknown is answered as unknown without asking etcd again: a client hammering with
    /// a wrong or stale key costs one linearizable read per window, not one per request (issue 12). A key is random
    /// and 256 bits long, so none is looked up before it is issued; the window only delays a record restored by hand.</summary>
    public static readonly TimeSpan UnknownKeyWindow = TimeSpan.FromSeconds(30);

    private readonly string root = EtcdBytes.AsPrefix(prefix);
    private readonly TimeProvider clock = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, string> merchantsByKeyHash = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> unknownUntil = new(StringComparer.Ordinal);

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

        var now = clock.GetUtcNow();
        if (unknownUntil.TryGetValue(hash, out var until) && now < until)
        {
            return null;
        }

        var merchant = await GetStringAsync(root + "merchant-keys/" + hash, cancellationToken);
        if (merchant is null)
        {
            Remember(unknownUntil, MaxUnknownKeys, hash, now + UnknownKeyWindow);
            return null;
        }

        unknownUntil.TryRemove(hash, out _);
        Remember(merchantsByKeyHash, MaxCachedKeys, hash, merchant);
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

    /// <summary>Bounded: a full cache starts over rather than grow (a flood of distinct keys cannot exhaust memory).</summary>
    private static void Remember<T>(ConcurrentDictionary<string, T> cache, int bound, string hash, T value)
    {
        if (cache.Count >= bound)
        {
            cache.Clear();
        }

        cache[hash] = value;
    }

    /// <summary>The stored form of an API key (its SHA-256, hex).</summary>
    public static string Hash(string value) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
}
