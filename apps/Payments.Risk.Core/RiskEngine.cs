using Payments.Domain;
using Payments.Risk.Contracts;

namespace Payments.Risk.Core;

/// <summary>The rules, evaluated in order of severity: blocklist and hard limits reject; velocity and the review
/// threshold send a payment to a person. Velocity is counted per debtor over a sliding window, in memory.</summary>
/// <remarks>Velocity here is per process: with several risk replicas each sees its share, so the limits are a floor
/// of protection, not an exact count. Assessing the same payment id twice here counts it once (activities may retry;
/// a retry on another replica, or after a restart, counts there).
/// Memory is bounded by accounts and by payments remembered in all; past either bound the accounts furthest from both
/// velocity limits (count and sum), the idlest among equals, are forgotten first — never all at
/// once, as before, which let anyone who could pay from enough accounts reset every other account's window.</remarks>
public sealed class RiskEngine(RiskPolicy policy, TimeProvider time, int maxTrackedAccounts = RiskEngine.MaxTrackedAccounts, int maxTrackedEntries = RiskEngine.MaxTrackedEntries)
    : IRiskAssessor
{
    /// <summary>Payments remembered per account (older ones fall out of the window anyway); bounds memory per account.</summary>
    public const int MaxRememberedPerAccount = 10_000;

    /// <summary>Accounts tracked at most.</summary>
    public const int MaxTrackedAccounts = 100_000;

    /// <summary>Payments remembered across all accounts at most (about 120 bytes each: some 60 MB).</summary>
    public const int MaxTrackedEntries = 500_000;

    /// <summary>An eviction frees this share of each bound, so it runs once per that many new entries, not per call.</summary>
    private const double EvictDownTo = 0.9;

    private readonly Dictionary<AccountId, AccountVelocity> velocity = [];
    private readonly Lock gate = new();
    private int entries;

    public Task<RiskAssessment> AssessAsync(RiskInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var amounts = policy.AmountsFor(input.Amount.Currency);
        var reasons = new List<string>();
        if (Blocked(input.Debtor, input.MerchantId))
        {
            reasons.Add(RiskAssessment.DebtorBlocked);
        }

        if (Blocked(input.Creditor, input.MerchantId))
        {
            reasons.Add(RiskAssessment.CreditorBlocked);
        }

        if (input.Amount.AmountMinor > amounts.RejectAboveMinor)
        {
            reasons.Add(RiskAssessment.AmountAboveLimit);
        }

        if (reasons.Count > 0)
        {
            return Task.FromResult(new RiskAssessment(RiskDecision.Reject, reasons));
        }

        var (count, sum) = Record(input);
        if (count > policy.VelocityMaxCount)
        {
            reasons.Add(RiskAssessment.VelocityCountExceeded);
        }

        if (sum > amounts.VelocityMaxSumMinor)
        {
            reasons.Add(RiskAssessment.VelocitySumExceeded);
        }

        if (input.Amount.AmountMinor > amounts.ReviewThresholdMinor)
        {
            reasons.Add(RiskAssessment.AmountAboveReviewThreshold);
        }

        return Task.FromResult(new RiskAssessment(reasons.Count > 0 ? RiskDecision.Review : RiskDecision.Approve, reasons));
    }

    /// <summary>Whether the blocklist names <paramref name="account"/>: by its ledger id, or as
    /// <c>{merchantId}~{accountId}</c> — the merchant's account whatever its ledger id (the first merchant to open an id
    /// has it plain, so an operator could not tell which form to write, and a plain id blocks whoever opened it first).</summary>
    private bool Blocked(AccountId account, string? merchantId) =>
        policy.BlockedAccounts.Contains(account.Value)
        || (merchantId is not null && !account.IsNamespaced && policy.BlockedAccounts.Contains(merchantId + AccountId.MerchantSeparator + account.Value));

    /// <summary>Adds the payment to its debtor's window (once per payment id) and returns the window's count and sum.
    /// One lock for all accounts: an assessment is one call per payment, and the bounds need a consistent count.</summary>
    private (int Count, long Sum) Record(RiskInput input)
    {
        var now = time.GetUtcNow();
        lock (gate)
        {
            if (!velocity.TryGetValue(input.Debtor, out var window))
            {
                if (velocity.Count >= maxTrackedAccounts || entries >= maxTrackedEntries)
                {
                    Evict(now, keep: null);
                }

                window = new AccountVelocity();
                velocity[input.Debtor] = window;
            }
            else if (entries >= maxTrackedEntries)
            {
                Evict(now, keep: input.Debtor); // in use now: not forgotten, whatever its last payment
            }

            Expire(window, now);
            // Counted at the payment's acceptance, not at this assessment: a saga run again long after (resumed when
            // its workflow engine lost it, restarted by the sweeper) re-assessed a payment whose first count had left
            // the window, and its debtor's new payments went to review (a fault probe: a crashed workflow engine sent
            // 191 parked payments through risk again). Accepted longer ago than the window, it is not counted —
            // judged by its acceptance, not by where it would sit: placed no earlier than the window's last entry (the
            // window is kept in time order), an old payment re-assessed after one new payment of its debtor's was
            // counted as new (a review).
            var accepted = input.CreatedAt is { } created && created < now ? created : now;
            var at = Max(accepted, window.LastCountedAt);
            if (now - accepted <= policy.VelocityWindow && window.PaymentIds.Add(input.PaymentId))
            {
                window.LastCountedAt = at;
                window.Entries.Enqueue((at, input.PaymentId, input.Amount.AmountMinor));
                window.SumMinor += input.Amount.AmountMinor;
                entries++;
            }

            window.LastSeen = now;
            return (window.Entries.Count, (long)Int128.Min(window.SumMinor, long.MaxValue));
        }
    }

    private void Expire(AccountVelocity window, DateTimeOffset now)
    {
        while (window.Entries.Count > 0 && (now - window.Entries.Peek().At > policy.VelocityWindow || window.Entries.Count >= MaxRememberedPerAccount))
        {
            var expired = window.Entries.Dequeue();
            window.PaymentIds.Remove(expired.PaymentId);
            window.SumMinor -= expired.AmountMinor;
            entries--;
        }
    }

    /// <summary>Forgets accounts whose window is empty by now, then, while either bound is above its mark, those furthest
    /// from both limits, the idlest first among equals: an account near a limit is the last to go, so a flood of accounts
    /// with a small payment each cannot reset it.</summary>
    private void Evict(DateTimeOffset now, AccountId? keep)
    {
        foreach (var (account, window) in velocity.ToArray())
        {
            Expire(window, now);
            if (window.Entries.Count == 0 && account != keep)
            {
                velocity.Remove(account);
            }
        }

        var accountMark = (int)(maxTrackedAccounts * EvictDownTo);
        var entryMark = (int)(maxTrackedEntries * EvictDownTo);
        if (velocity.Count <= accountMark && entries <= entryMark)
        {
            return;
        }

        foreach (var (account, window) in velocity.Where(pair => pair.Key != keep).OrderBy(pair => NearnessToLimits(pair.Value)).ThenBy(pair => pair.Value.LastSeen).ToArray())
        {
            if (velocity.Count <= accountMark && entries <= entryMark)
            {
                break;
            }

            velocity.Remove(account);
            entries -= window.Entries.Count;
        }
    }

    /// <summary>How close a window is to either velocity limit (1: at it): one large payment near the sum limit
    /// counts as much as many small ones near the count limit. The sum is measured against the default limit, not
    /// the account's currency's: this only orders which accounts are forgotten first when memory is full.</summary>
    private double NearnessToLimits(AccountVelocity window) => Math.Max(
        window.Entries.Count / (double)Math.Max(1, policy.VelocityMaxCount),
        (double)window.SumMinor / Math.Max(1, policy.VelocityMaxSumMinor));

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private sealed class AccountVelocity
    {
        public Queue<(DateTimeOffset At, string PaymentId, long AmountMinor)> Entries { get; } = new();

        public HashSet<string> PaymentIds { get; } = new(StringComparer.Ordinal);

        /// <summary>When the newest entry counts from (entries stay in this order).</summary>
        public DateTimeOffset LastCountedAt { get; set; } = DateTimeOffset.MinValue;

        /// <summary>Wider than any amount: up to <see cref="MaxRememberedPerAccount"/> amounts of up to
        /// <c>long.MaxValue</c> each cannot overflow it (a checked long threw once a window passed 9.2 × 10^18, and
        /// every assessment of that account failed as risk-unavailable).</summary>
        public Int128 SumMinor { get; set; }

        public DateTimeOffset LastSeen { get; set; }
    }
}
