namespace Payments.Merchants;

/// <summary>Revoking a key by the key itself, for the operator who holds a leaked one (found in a repository, sent by a
/// secret-scanning partner). Every other admin route names a key by its merchant and id, and a key issued before keys
/// had records to a merchant whose id predates the id check is in no merchant's index (<see cref="MigrateLegacyKeysAsync"/>
/// leaves it as it is): without this it could be neither listed, rotated nor revoked, and stayed valid for ever.</summary>
public sealed partial class MerchantStore
{
    /// <summary>Revokes the key presented (whatever its form: a full record, or a legacy one, which is rewritten as a
    /// revoked full record); the record it had (null when there is no such key, or it had ended already).</summary>
    public async Task<ApiKeyRecord?> RevokePresentedKeyAsync(string apiKey, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(apiKey);
        var hash = Hash(apiKey);
        for (var attempt = 0; attempt < MaxRevokeAttempts; attempt++)
        {
            if (await GetAsync(KeyRecordKey(hash), cancellationToken) is not { } stored || DecodeKey(stored.Value) is not { } record
                || record.IsExpired(clock.GetUtcNow()))
            {
                return null;
            }

            var named = IsLegacy(stored.Value) ? record with { KeyId = LegacyKeyId(hash) } : record;
            if (await TryRevokeAsync(hash, stored.ModRevision, named, cancellationToken))
            {
                return named;
            }
        }

        throw new InvalidOperationException($"The key kept changing while it was revoked ({MaxRevokeAttempts} attempts); try again.");
    }
}
