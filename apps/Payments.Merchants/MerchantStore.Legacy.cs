using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Payments.Etcd;

namespace Payments.Merchants;

/// <summary>Keys issued before keys had records: stored as the merchant id alone under the key's hash, with no entry in
/// the merchant's key index — so the operator's API could neither list, rotate nor revoke them (a leaked one stayed
/// valid for ever), and they read with today's default scopes, which gained webhooks:manage after they were issued.</summary>
public sealed partial class MerchantStore
{
    /// <summary>Legacy keys rewritten per key load at most; the rest wait for the next load (a replica's start, or a
    /// reload after its watch broke).</summary>
    public const int MaxLegacyMigrationsPerLoad = 1_000;

    /// <summary>What a key issued before scopes existed may do: what every key could do then (before webhooks).</summary>
    public static readonly IReadOnlyList<string> LegacyScopes = [ApiScopes.AccountsRead, ApiScopes.AccountsWrite, ApiScopes.PaymentsRead, ApiScopes.PaymentsWrite];

    /// <summary>The id a legacy key gets (stable: every replica names it alike), from its hash.</summary>
    public static string LegacyKeyId(string hash) => "key_" + hash[..16].ToLowerInvariant();

    private static bool IsLegacy(ByteString value) => value.Length > 0 && value.Span[0] != (byte)'{';

    /// <summary>Rewrites each legacy record (<paramref name="legacy"/>: hash and the revision read) as a full record with
    /// its scopes, under <see cref="LegacyKeyId"/>, and adds it to its merchant's index, in one compare-and-swap on the
    /// revision read: of the replicas that find it, one rewrites it; the watch then carries the record to all.</summary>
    private async Task MigrateLegacyKeysAsync(IReadOnlyList<(string Hash, long Revision, string MerchantId)> legacy, ILogger logger, CancellationToken cancellationToken)
    {
        var migrated = 0;
        foreach (var (hash, revision, merchantId) in legacy)
        {
            if (!MerchantRecord.IsValidId(merchantId))
            {
                continue; // an id no index key can carry: left as it is (it still authenticates as before)
            }

            var record = new ApiKeyRecord(LegacyKeyId(hash), merchantId, ApiKeyModes.Test, "????", LegacyScopes, DateTimeOffset.UnixEpoch, null);
            var request = new TxnRequest();
            request.Compare.Add(EtcdBytes.ModRevisionIs(KeyRecordKey(hash), revision));
            request.Success.Add(EtcdBytes.Put(KeyRecordKey(hash), Encode(record)));
            request.Success.Add(EtcdBytes.Put(KeyIndexKey(merchantId, record.KeyId), ByteString.CopyFromUtf8(hash)));
            try
            {
                // Its merchant's record first (create-if-absent): RecordLegacyMerchantsAsync finds such merchants by
                // their legacy key records, which this rewrites.
                await CreateMerchantAsync(merchantId, null, cancellationToken);
                migrated += (await TxnAsync(request, cancellationToken)).Succeeded ? 1 : 0;
            }
            catch (Exception exception) when (exception is Grpc.Core.RpcException or EtcdContentionException or Payments.Ledger.Contracts.RegionNotWritableException)
            {
                logger.LogWarning("Could not rewrite legacy API keys ({Error}); the next key load tries again", exception.Message);
                return;
            }
        }

        if (migrated > 0)
        {
            logger.LogWarning("Rewrote {Count} API keys issued before keys had records: the operator's API now lists, rotates and revokes them", migrated);
        }
    }
}
