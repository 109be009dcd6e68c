using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;

namespace Payments.Api.Apis;

/// <summary>A deposit's id, as a payment's (<see cref="PaymentAdmission.PaymentIdOf"/>): a hash of merchant, key and
/// a UTC day — the day the key was first claimed in this region, which its retries here keep. What decides is the ledger's record of the deposit — durable and shipped to the
/// other region, unlike the idempotency record: a deposit of this key under yesterday's, today's or tomorrow's id
/// (another replica's clock a little ahead) is this key's deposit — a retry, also one whose idempotency record was lost
/// or one in the other region after a failover; otherwise the key makes a new deposit under today's id. So a key names
/// its deposit until the end of the UTC day after it (24 to 48 hours), and never later. The day in the id, not the
/// ledger's applied time, decides: it needs no clock but the API's (the ledger's may differ from a replica's).
/// <para>Before, the id was merchant and key alone, and the deposit was issued "now" on every attempt: a key reused
/// after the ledger had archived its deposit (8 days) applied it again under the same transfer id — funded twice,
/// and a standby still holding the first skipped the second, so the regions' balances diverged. A day's id is named
/// for three days at most, and the ledger keeps a deposit eight. The id deposits had before (merchant and key) is read
/// too, and names its deposit while that is younger than the key's window: a retry across the upgrade finds it.</para></summary>
internal static class DepositIds
{
    public const int HexChars = 32;

    /// <param name="firstClaimed">When this region's idempotency record of the key was first claimed (a retry taking
    /// the claim over keeps it): the day a new deposit is made under, the same for every retry here.</param>
    /// <returns>The id, and whether the ledger already applied a deposit under it: a retry whose first attempt's
    /// answer was lost. Such a retry is answered with that deposit, never refused by a limit checked now (a limit
    /// lowered since, or another day's volume): a refusal would tell the merchant nothing was deposited.</returns>
    public static async Task<(string Id, JournalEntry? Applied)> OfAsync(
        ILedger ledger, string merchant, IdempotencyKey key, DateTimeOffset firstClaimed, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var candidates = IdempotencyStore.OperationIdCandidates("dep_", HexChars, merchant, key, firstClaimed);
        var found = await Task.WhenAll(candidates.Select(id => ledger.GetTransferAsync(TransferId.Parse(id), cancellationToken)));
        if (found.Take(3).FirstOrDefault(entry => entry is not null) is { } current)
        {
            return (current.TransferId.Value, current);
        }

        return found[3] is { } legacy && now - legacy.AppliedAt < IdempotencyStore.Retention ? (legacy.TransferId.Value, legacy) : (candidates[1], null);
    }
}
