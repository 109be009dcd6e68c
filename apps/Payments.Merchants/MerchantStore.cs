using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;

namespace Payments.Merchants;

/// <summary>The API's own records on etcd: merchants, their API keys (hashed) and which merchant owns which account.
/// (Payment records are the saga's: <c>PaymentRecordStore</c>.) Every live key is held in memory and kept true by an
/// etcd watch (<see cref="RunInvalidationAsync"/>): a revoked or rotated key stops working on every replica as soon
/// as the watch delivers the change.</summary>
/// <remarks>Layout under the API prefix: <c>merchants/{merchant}</c> the merchant · <c>merchant-keys/{sha256}</c> a
/// key's record · <c>keys/{merchant}/{keyId}</c> the merchant's index of its keys (value: the hash) ·
/// <c>key-used/{sha256}</c> when the key was last used · <c>account-owners/{ledger account id}</c> the merchant that holds
/// it (a merchant's account id, or its namespaced form when another merchant opened that id first).</remarks>
public sealed partial class MerchantStore(EtcdConnection etcd, string prefix, TimeProvider? time = null, string mode = ApiKeyModes.Test)
{
    /// <summary>Keys a merchant holds at most (rotated ones count until their overlap ends): a list is one page, and a
    /// leaked admin credential cannot fill etcd with keys.</summary>
    public const int MaxKeysPerMerchant = 20;

    /// <summary>Longest overlap a rotation may grant the old key.</summary>
    public static readonly TimeSpan MaxRotationOverlap = TimeSpan.FromDays(7);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly string root = EtcdBytes.AsPrefix(prefix);
    private readonly TimeProvider clock = time ?? TimeProvider.System;

    /// <summary>Which kind of keys this store issues and accepts (<see cref="ApiKeyModes"/>).</summary>
    public string Mode { get; } = ApiKeyModes.IsKnown(mode) ? mode : throw new ArgumentException($"Unknown key mode '{mode}'.", nameof(mode));

    /// <summary>Creates the merchant unless it exists; returns the record that is there.</summary>
    public async Task<(MerchantRecord Merchant, bool Created)> CreateMerchantAsync(string merchantId, string? name, CancellationToken cancellationToken)
    {
        if (!MerchantRecord.IsValidId(merchantId))
        {
            throw new ArgumentException("A merchant id is 1–64 letters, digits, '-' or '_', starting with a letter or digit.", nameof(merchantId));
        }

        var record = new MerchantRecord(merchantId, name, clock.GetUtcNow());
        var stored = await PutIfAbsentAsync(MerchantKey(merchantId), Encode(record), cancellationToken);
        return stored is null ? (record, true) : (await NamedIfNamelessAsync(Decode<MerchantRecord>(stored), stored, name, cancellationToken), false);
    }

    public async Task<MerchantRecord?> GetMerchantAsync(string merchantId, CancellationToken cancellationToken) =>
        MerchantRecord.IsValidId(merchantId) && await GetAsync(MerchantKey(merchantId), cancellationToken) is { } value
            ? Decode<MerchantRecord>(value.Value)
            : null;

    /// <summary>For the local tools and tests: the merchant (created if new) and a key with <paramref name="scopes"/>
    /// (default <see cref="ApiScopes.Default"/>).</summary>
    public async Task<string> IssueApiKeyAsync(string merchantId, CancellationToken cancellationToken, params string[] scopes)
    {
        await CreateMerchantAsync(merchantId, null, cancellationToken);
        var (result, issued) = await IssueKeyAsync(merchantId, scopes.Length == 0 ? ApiScopes.Default : scopes, cancellationToken);
        return result == KeyAdminResult.Done ? issued!.Key : throw new InvalidOperationException($"Could not issue a key for {merchantId}: {result}.");
    }

    /// <summary>Issues a new key. Only its SHA-256 is stored: keys are 256-bit random values, so a fast hash is enough
    /// (a slow password hash protects guessable secrets, which these are not).</summary>
    public async Task<(KeyAdminResult Result, IssuedApiKey? Issued)> IssueKeyAsync(
        string merchantId, IReadOnlyList<string> scopes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scopes);
        if (scopes.Count == 0 || scopes.Any(scope => !ApiScopes.IsKnown(scope)))
        {
            throw new ArgumentException("Scopes must be a non-empty subset of " + string.Join(", ", ApiScopes.All) + ".", nameof(scopes));
        }

        if (await GetMerchantAsync(merchantId, cancellationToken) is null)
        {
            return (KeyAdminResult.MerchantNotFound, null);
        }

        for (var attempt = 1; attempt <= MaxKeyWriteAttempts; attempt++)
        {
            if (await RoomForAKeyAsync(merchantId, cancellationToken) is not { } counted)
            {
                return (KeyAdminResult.KeyLimitReached, null);
            }

            var (key, record) = NewKey(merchantId, scopes.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray());
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.CreateRevisionIs(KeyRecordKey(Hash(key)), 0)); // 2^-256 to fail: a broken RNG
            request.Compare.Add(KeysUnchangedSince(merchantId, counted));
            request.Success.Add(EtcdBytes.Put(KeyRecordKey(Hash(key)), Encode(record)));
            request.Success.Add(EtcdBytes.Put(KeyIndexKey(merchantId, record.KeyId), ByteString.CopyFromUtf8(Hash(key))));
            if ((await TxnAsync(request, cancellationToken)).Succeeded)
            {
                return (KeyAdminResult.Done, new IssuedApiKey(key, record));
            }
        }

        throw new EtcdContentionException($"The keys of merchant {merchantId} kept changing during {MaxKeyWriteAttempts} attempts to add one.");
    }

    /// <summary>The merchant's keys (at most <see cref="MaxKeysPerMerchant"/>), oldest first; keys whose rotation
    /// overlap has ended are removed on the way (in a standby region that cannot write, left for the active one).</summary>
    public Task<IReadOnlyList<ApiKeyListing>?> ListKeysAsync(string merchantId, CancellationToken cancellationToken) =>
        ListKeysAsync(merchantId, servedWhenFencedOff: true, cancellationToken);

    /// <param name="servedWhenFencedOff">False for a count before a write: a clean-up the region's fence refused
    /// leaves the ended keys counted, and the caller must answer 503, not "the merchant holds as many keys as it may".</param>
    private async Task<IReadOnlyList<ApiKeyListing>?> ListKeysAsync(string merchantId, bool servedWhenFencedOff, CancellationToken cancellationToken)
    {
        if (await GetMerchantAsync(merchantId, cancellationToken) is null)
        {
            return null;
        }

        var index = await RangeAsync(KeyIndexPrefix(merchantId), MaxKeysPerMerchant * 2, cancellationToken);
        if (index.Count == 0)
        {
            return [];
        }

        var request = new TxnRequest();
        foreach (var hash in index.Select(kv => kv.Value.ToStringUtf8()))
        {
            request.Success.Add(EtcdBytes.Get(KeyRecordKey(hash)));
            request.Success.Add(EtcdBytes.Get(UsageKey(hash)));
        }

        var response = await TxnAsync(request, cancellationToken);
        var now = clock.GetUtcNow();
        var listed = new List<ApiKeyListing>();
        for (var item = 0; item < index.Count; item++)
        {
            var hash = index[item].Value.ToStringUtf8();
            var stored = response.Responses[item * 2].ResponseRange.Kvs.FirstOrDefault();
            var used = response.Responses[(item * 2) + 1].ResponseRange.Kvs.FirstOrDefault();
            var record = stored is null ? null : DecodeKey(stored.Value);
            if (record is null || record.IsExpired(now))
            {
                try
                {
                    await DeleteKeyAsync(merchantId, index[item].Key.ToStringUtf8()[KeyIndexPrefix(merchantId).Length..], hash,
                        keepRecord: record?.RevokedAt is not null, cancellationToken);
                }
                catch (Payments.Ledger.Contracts.RegionNotWritableException) when (servedWhenFencedOff)
                {
                    // A listing in the standby region: the clean-up is the active region's, and the listing is served.
                }

                continue;
            }

            listed.Add(new ApiKeyListing(record, used is null ? null : DateTimeOffset.Parse(used.Value.ToStringUtf8(), System.Globalization.CultureInfo.InvariantCulture)));
        }

        return [.. listed.OrderBy(listing => listing.Record.CreatedAt)];
    }

    /// <summary>Issues a successor with the same scopes and lets the old key work for <paramref name="overlap"/> more
    /// (at most <see cref="MaxRotationOverlap"/>; zero ends it now), in one transaction.</summary>
    public async Task<(KeyAdminResult Result, IssuedApiKey? Issued)> RotateKeyAsync(
        string merchantId, string keyId, TimeSpan overlap, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(overlap, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(overlap, MaxRotationOverlap);
        long? seenRevision = null;
        for (var attempt = 1; attempt <= MaxKeyWriteAttempts; attempt++)
        {
            // Once only: a second rotation (a retry, a double click, parallel calls) made another live successor with
            // the key's scopes each time, none of them expiring. The successor is the key to rotate. Said so after
            // its overlap too (a retry of a rotation with none was 404, naming no successor: a probe), while the
            // rotated key's record is still indexed.
            if (await FindKeyAsync(merchantId, keyId, cancellationToken, rotatedEvenIfEnded: true) is not { } old || (!old.Record.IsRotated && seenRevision is { } seen && old.Revision != seen))
            {
                return (KeyAdminResult.KeyNotFound, null); // revoked meanwhile
            }

            if (old.Record.IsRotated)
            {
                return (KeyAdminResult.KeyAlreadyRotated, new IssuedApiKey(string.Empty, old.Record));
            }

            seenRevision = old.Revision;

            if (await RoomForAKeyAsync(merchantId, cancellationToken) is not { } counted)
            {
                return (KeyAdminResult.KeyLimitReached, null);
            }

            var now = clock.GetUtcNow();
            var endsAt = now + overlap;
            // The successor inherits its holder: four eyes must not see a new person in a rotated key.
            var (key, record) = NewKey(merchantId, old.Record.Scopes, old.Record.Holder);
            var retired = old.Record with { ExpiresAt = endsAt, SuccessorId = record.KeyId };
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(KeyRecordKey(old.Hash), old.Revision));
            request.Compare.Add(KeysUnchangedSince(merchantId, counted));
            request.Success.Add(EtcdBytes.Put(KeyRecordKey(old.Hash), Encode(retired)));
            request.Success.Add(EtcdBytes.Put(KeyRecordKey(Hash(key)), Encode(record)));
            request.Success.Add(EtcdBytes.Put(KeyIndexKey(merchantId, record.KeyId), ByteString.CopyFromUtf8(Hash(key))));
            if ((await TxnAsync(request, cancellationToken)).Succeeded)
            {
                return (KeyAdminResult.Done, new IssuedApiKey(key, record));
            }

            // Changed meanwhile: the key (the next round answers as before) or only the merchant's keys (another issued:
            // this was answered 404 for a key that exists). Tried again, bounded.
        }

        throw new EtcdContentionException($"The keys of merchant {merchantId} kept changing during {MaxKeyWriteAttempts} attempts to rotate {keyId}.");
    }

    /// <summary>Ends the key now: every replica stops accepting it when its watch delivers the change.</summary>
    /// <remarks>Marked revoked in place — a write — rather than deleted: a region's records reach its standby as they
    /// are stored, and a deletion is not shipped, so a deleted key's record stayed there and the key worked again
    /// after a failover. The revoked record is refused in both regions, whatever their clocks say, and stays; the next
    /// listing of the merchant's keys (or a new key at <see cref="MaxKeysPerMerchant"/>) takes it out of the merchant's
    /// index only.</remarks>
    public async Task<KeyAdminResult> RevokeKeyAsync(string merchantId, string keyId, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < MaxRevokeAttempts; attempt++)
        {
            if (await FindKeyAsync(merchantId, keyId, cancellationToken) is not { } found)
            {
                return attempt == 0 ? KeyAdminResult.KeyNotFound : KeyAdminResult.Done; // gone meanwhile: ended either way
            }

            if (await TryRevokeAsync(found.Hash, found.Revision, found.Record, cancellationToken))
            {
                return KeyAdminResult.Done;
            }
        }

        throw new InvalidOperationException($"Key {keyId} kept changing while it was revoked ({MaxRevokeAttempts} attempts); try again.");
    }

    /// <summary>Writes <paramref name="record"/> revoked now, if the key's record is still at <paramref name="revision"/>.</summary>
    private async Task<bool> TryRevokeAsync(string hash, long revision, ApiKeyRecord record, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.ModRevisionIs(KeyRecordKey(hash), revision));
        request.Success.Add(EtcdBytes.Put(KeyRecordKey(hash), Encode(record with { ExpiresAt = clock.GetUtcNow(), RevokedAt = clock.GetUtcNow() })));
        return (await TxnAsync(request, cancellationToken)).Succeeded;
    }

    /// <summary>Attempts of one revocation at most (each loses only to a concurrent rotation or revocation of the key).</summary>
    private const int MaxRevokeAttempts = 3;

    public async Task<string?> AccountOwnerAsync(string accountId, CancellationToken cancellationToken) =>
        (await GetAsync(root + "account-owners/" + accountId, cancellationToken))?.Value.ToStringUtf8();

    /// <summary>Records the currency the ledger opened the account in — written once the ledger has the account, so
    /// its presence means "exists, in this currency" (an account's currency never changes). Lets a payment's checks
    /// read owner and currency in one etcd read instead of asking the ledger service for each account.</summary>
    public async Task RecordAccountCurrencyAsync(string accountId, string currency, CancellationToken cancellationToken) =>
        await PutIfAbsentAsync(root + "account-currencies/" + accountId, ByteString.CopyFromUtf8(currency), cancellationToken);

    /// <summary>Owner and recorded currency of each account, read together (one round trip); either null when
    /// absent (accounts opened before currencies were recorded have none: ask the ledger, then record it).</summary>
    public async Task<IReadOnlyList<(string? Owner, string? Currency)>> AccountFactsAsync(IReadOnlyList<string> accountIds, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Success.Add(AccountFactsReads(accountIds));
        return AccountFactsFrom((await TxnAsync(request, cancellationToken)).Responses);
    }

    /// <summary>The reads of <see cref="AccountFactsAsync"/> (two per account, in order), for a caller that reads more
    /// in the same transaction; <see cref="AccountFactsFrom"/> makes the facts of their answers.</summary>
    public IEnumerable<RequestOp> AccountFactsReads(IReadOnlyList<string> accountIds)
    {
        ArgumentNullException.ThrowIfNull(accountIds);
        return accountIds.SelectMany(accountId => new[]
        {
            EtcdBytes.Get(root + "account-owners/" + accountId),
            EtcdBytes.Get(root + "account-currencies/" + accountId),
        }).ToArray();
    }

    /// <summary>The facts of the answers to <see cref="AccountFactsReads"/>, in the same order.</summary>
    public static IReadOnlyList<(string? Owner, string? Currency)> AccountFactsFrom(IReadOnlyList<ResponseOp> answers)
    {
        ArgumentNullException.ThrowIfNull(answers);
        string? ValueAt(int index) => answers[index].ResponseRange.Kvs.FirstOrDefault()?.Value.ToStringUtf8();
        return Enumerable.Range(0, answers.Count / 2).Select(index => (ValueAt(2 * index), ValueAt((2 * index) + 1))).ToArray();
    }

    /// <summary>The stored form of an API key (its SHA-256, hex).</summary>
    public static string Hash(string value) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(value)));

    private (string Key, ApiKeyRecord Record) NewKey(string merchantId, IReadOnlyList<string> scopes, string? holderId = null)
    {
        var key = ApiKeyModes.Prefix(Mode) + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var keyId = "key_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant();
        return (key, new ApiKeyRecord(keyId, merchantId, Mode, key[^4..], scopes, clock.GetUtcNow(), null, holderId));
    }

    private async Task<(ApiKeyRecord Record, string Hash, long Revision)?> FindKeyAsync(
        string merchantId, string keyId, CancellationToken cancellationToken, bool rotatedEvenIfEnded = false)
    {
        if (!MerchantRecord.IsValidId(merchantId) || !MerchantRecord.IsValidId(keyId)
            || await GetAsync(KeyIndexKey(merchantId, keyId), cancellationToken) is not { } index)
        {
            return null;
        }

        var hash = index.Value.ToStringUtf8();
        return await GetAsync(KeyRecordKey(hash), cancellationToken) is { } stored && DecodeKey(stored.Value) is { } record
            && record.MerchantId == merchantId
            && (!record.IsExpired(clock.GetUtcNow()) || (rotatedEvenIfEnded && record.IsRotated && record.RevokedAt is null))
            ? (record, hash, stored.ModRevision)
            : null;
    }

    /// <summary>Writes the value unless the key exists; null when written, else the stored value.</summary>
    private async Task<ByteString?> PutIfAbsentAsync(string key, ByteString value, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Compare.Add(EtcdBytes.CreateRevisionIs(key, 0));
        request.Success.Add(EtcdBytes.Put(key, value));
        request.Failure.Add(EtcdBytes.Get(key));
        var response = await TxnAsync(request, cancellationToken);
        return response.Succeeded ? null : response.Responses[0].ResponseRange.Kvs[0].Value;
    }

    private async Task<Mvccpb.KeyValue?> GetAsync(string key, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(
            token => etcd.Kv.RangeAsync(new RangeRequest { Key = EtcdBytes.Key(key) }, cancellationToken: token), cancellationToken);
        return response.Kvs.FirstOrDefault();
    }

    private async Task<IReadOnlyList<Mvccpb.KeyValue>> RangeAsync(string keyPrefix, int limit, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(keyPrefix), RangeEnd = EtcdBytes.PrefixEnd(keyPrefix), Limit = limit,
        }, cancellationToken: token), cancellationToken);
        return response.Kvs;
    }

    private string MerchantKey(string merchantId) => root + "merchants/" + merchantId;

    private string KeyRecordKey(string hash) => root + "merchant-keys/" + hash;

    private string KeyIndexPrefix(string merchantId) => root + "keys/" + merchantId + "/";

    private string KeyIndexKey(string merchantId, string keyId) => KeyIndexPrefix(merchantId) + keyId;

    private string UsageKey(string hash) => root + "key-used/" + hash;

    private static ByteString Encode<T>(T value) => ByteString.CopyFromUtf8(JsonSerializer.Serialize(value, Json));

    private static T Decode<T>(ByteString value) => JsonSerializer.Deserialize<T>(value.Span, Json)!;

    /// <summary>A key record; one stored before keys had records (the merchant id alone) reads as a key with the scopes
    /// every key had then (<see cref="LegacyScopes"/>, not today's default, which gained webhooks:manage since), so keys
    /// issued by earlier versions keep working until a replica rewrites them (<see cref="MigrateLegacyKeysAsync"/>).</summary>
    private static ApiKeyRecord? DecodeKey(ByteString value)
    {
        var text = value.ToStringUtf8();
        return text.StartsWith('{')
            ? JsonSerializer.Deserialize<ApiKeyRecord>(text, Json)
            : new ApiKeyRecord("key_legacy", text, ApiKeyModes.Test, "????", LegacyScopes, DateTimeOffset.UnixEpoch, null);
    }
}
