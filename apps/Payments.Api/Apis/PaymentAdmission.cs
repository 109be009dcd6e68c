using Etcdserverpb;
using Payments.Domain;
using Payments.Etcd;
using Payments.Merchants;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Apis;

/// <summary>What accepting a payment needs to know, read in one etcd transaction: this key's payment records (which
/// decide the payment id), owner and currency of both accounts, and how many of the merchant's payments are in flight
/// (counted, or estimated by <see cref="Limits.InFlightEstimates"/>). One linearizable read per payment instead of
/// three requests.</summary>
/// <param name="Records">The records under the key's candidate ids (see <see cref="PaymentIdOf"/>).</param>
/// <param name="Accounts">Owner and recorded currency per ledger id asked (<see cref="AccountsApi.LedgerCandidates"/>), in order.</param>
/// <param name="KeyUsed">The Idempotency-Key has a record (read only for an unclaimed first attempt, see
/// <see cref="IdempotencyStore.UnclaimedAsync"/>; false otherwise).</param>
internal sealed record PaymentAdmission(
    IReadOnlyList<PaymentRecord> Records, IReadOnlyList<(string? Owner, string? Currency)> Accounts, long InFlight, bool KeyUsed)
{
    /// <summary>Hex characters of a payment id's hash.</summary>
    public const int PaymentIdHexChars = 24;

    public static async Task<PaymentAdmission> ReadAsync(
        string merchant, IdempotencyClaim claim, IdempotencyKey key, IReadOnlyList<string> ledgerIds, PaymentServices services, CancellationToken cancellationToken)
    {
        var candidates = Candidates(merchant, key, claim, services.Time.GetUtcNow());
        var request = new TxnRequest();
        request.Success.Add(services.Records.GetReads(candidates));
        request.Success.Add(services.Store.AccountFactsReads(ledgerIds));
        if (claim.IsUnclaimed)
        {
            request.Success.Add(IdempotencyStore.RecordRead(claim)); // in the same snapshot: no second round trip
        }

        var estimate = services.InFlight.TryEstimate(merchant, services.MaxInFlight);
        if (estimate is null)
        {
            request.Success.Add(services.Records.CountInFlightRead(merchant)); // costs etcd every marker deleted lately
        }

        var answers = (await EtcdConnection.CallAsync(token => services.Etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken)).Responses;
        if (estimate is null)
        {
            estimate = answers[^1].ResponseRange.Count;
            services.InFlight.Counted(merchant, estimate.Value, services.MaxInFlight);
        }

        var facts = candidates.Length + (2 * ledgerIds.Count);
        return new PaymentAdmission(
            PaymentRecordStore.RecordsFrom(answers.Take(candidates.Length)),
            MerchantStore.AccountFactsFrom(answers.Skip(candidates.Length).Take(2 * ledgerIds.Count).ToArray()),
            estimate.Value,
            KeyUsed: claim.IsUnclaimed && answers[facts].ResponseRange.Kvs.Count > 0);
    }

    /// <summary>The payment id of this key now: a hash of merchant, key and the UTC day the key's payment starts.
    /// What decides is the payment record — durable and shipped to the other region, unlike the idempotency record. A
    /// record of this key younger than the idempotency window is this key's payment (a retry, also one whose
    /// idempotency record was lost, or one in the other region after a failover); otherwise the key starts a new
    /// payment under today's id. The window is counted from the key's first use while its record lives (a claimed
    /// key: the record's creation, which a takeover keeps), else from now: the key's record lives up to an hour past
    /// the window (hourly shared leases), and a retry in that hour of a key whose record was never completed (its
    /// request crashed, or released it with a 503) started a second payment. A record younger than the window always
    /// carries yesterday's or today's day of that start, or of now (the day after too, allowing for another replica's
    /// clock a little ahead), so those candidates decide, and nothing else about the key is kept: an archived record
    /// (older than the window by days) can never be named again. The id payments had before (merchant and key only) is
    /// a candidate too, never created: a retry across the upgrade finds its payment. Null only when today's id is taken
    /// by a payment older than the window, which only clocks a day apart could make.</summary>
    public string? PaymentIdOf(string merchant, IdempotencyKey key, IdempotencyClaim claim, DateTimeOffset now)
    {
        var from = WindowStart(claim, now);
        if (Records.Where(record => from - record.CreatedAt < IdempotencyStore.Retention).MinBy(record => record.CreatedAt) is { } current)
        {
            return current.PaymentId;
        }

        var today = Candidates(merchant, key, claim, now)[1];
        return Records.Any(record => record.PaymentId == today) ? null : today;
    }

    /// <summary>Whether <paramref name="paymentId"/> has a record already (a retry after its record was written).</summary>
    public bool HasRecord(string paymentId) => Records.Any(record => record.PaymentId == paymentId);

    /// <summary>Yesterday's, today's (index 1: a new payment's) and tomorrow's id of the key, then the id it had
    /// before days were part of it; for a claimed key first used on another day, that day's three ids after them.</summary>
    private static string[] Candidates(string merchant, IdempotencyKey key, IdempotencyClaim claim, DateTimeOffset now)
    {
        var ids = IdempotencyStore.OperationIdCandidates("pay_", PaymentIdHexChars, merchant, key, now);
        var from = WindowStart(claim, now);
        return from == now ? ids : [.. ids, .. IdempotencyStore.OperationIdCandidates("pay_", PaymentIdHexChars, merchant, key, from).Except(ids)];
    }

    /// <summary>Where the key's window starts: its first use while its record lives (never after now: another replica's
    /// clock may be ahead), else now.</summary>
    private static DateTimeOffset WindowStart(IdempotencyClaim claim, DateTimeOffset now) =>
        claim.IsUnclaimed || claim.CreatedAt >= now ? now : claim.CreatedAt;
}
