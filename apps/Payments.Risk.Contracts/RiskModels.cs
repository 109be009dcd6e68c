using Payments.Domain;

namespace Payments.Risk.Contracts;

public enum RiskDecision
{
    Approve,
    Review,
    Reject,
}

/// <summary>A risk verdict with its stable reason codes (empty when approved without remark).</summary>
public sealed record RiskAssessment(RiskDecision Decision, IReadOnlyList<string> Reasons)
{
    public const string AmountAboveLimit = "amount-above-limit";
    public const string AmountAboveReviewThreshold = "amount-above-review-threshold";
    public const string VelocityCountExceeded = "velocity-count-exceeded";
    public const string VelocitySumExceeded = "velocity-sum-exceeded";
    public const string DebtorBlocked = "debtor-blocked";
    public const string CreditorBlocked = "creditor-blocked";

    /// <summary>The payment was sent to review by an earlier assessment (an activity retried): it stays there.</summary>
    public const string ReviewAlreadyRequested = "review-already-requested";

    /// <summary>The payment's record is terminal already (a saga started for it again): nothing is decided anew.</summary>
    public const string AlreadyFinished = "payment-already-finished";

    /// <summary>An earlier assessment of the payment rejected it (recorded in its record): it stays rejected.</summary>
    public const string RejectedBefore = "rejected-before";
}

/// <summary>What the risk check looks at. <paramref name="CreatedAt"/>: when the payment was accepted (null: now) —
/// velocity counts a payment at that instant, so a saga run again long after (resumed, restarted) adds nothing to
/// its debtor's window today. <paramref name="MerchantId"/>: whose payment it is (both accounts are that merchant's;
/// null from an older caller, or a merchant whose id predates the id check), so that a blocklist entry
/// <c>{merchantId}~{accountId}</c> finds the merchant's account whatever its ledger id.</summary>
public sealed record RiskInput(string PaymentId, AccountId Debtor, AccountId Creditor, Money Amount, DateTimeOffset? CreatedAt = null, string? MerchantId = null);

/// <summary>The amount limits of one currency, in its minor units.</summary>
public sealed record RiskAmounts(long ReviewThresholdMinor, long RejectAboveMinor, long VelocityMaxSumMinor);

/// <summary>Limits in minor units — the same number for every currency unless <see cref="Currencies"/> names it;
/// velocity over <see cref="VelocityWindow"/> per debtor account.</summary>
public sealed record RiskPolicy(
    long ReviewThresholdMinor,
    long RejectAboveMinor,
    int VelocityMaxCount,
    long VelocityMaxSumMinor,
    TimeSpan VelocityWindow,
    IReadOnlySet<string> BlockedAccounts)
{
    public static RiskPolicy Default { get; } = new(
        ReviewThresholdMinor: 100_000, // 1,000.00 in a two-decimal currency
        RejectAboveMinor: 10_000_000_000, // the API's default maximum payment (MoneyLimits): larger ones go to review, not to an automatic refusal
        VelocityMaxCount: 50,
        VelocityMaxSumMinor: 5_000_000,
        VelocityWindow: TimeSpan.FromMinutes(10),
        BlockedAccounts: new HashSet<string>(StringComparer.Ordinal));

    /// <summary>Amount limits of the currencies whose minor unit is worth much more or less than the defaults assume
    /// (100,000 minor units is 1,000.00 of a two-decimal currency, but about 600 euros in JPY and 6 cents in IDR:
    /// every IDR payment went to a reviewer); by ISO 4217 code. Any other currency takes the defaults above.</summary>
    public IReadOnlyDictionary<string, RiskAmounts> Currencies { get; init; } = new Dictionary<string, RiskAmounts>(StringComparer.Ordinal);

    /// <summary>The amount limits for <paramref name="currency"/>.</summary>
    public RiskAmounts AmountsFor(Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        return Currencies.TryGetValue(currency.Code, out var amounts) ? amounts : new(ReviewThresholdMinor, RejectAboveMinor, VelocityMaxSumMinor);
    }
}

public interface IRiskAssessor
{
    Task<RiskAssessment> AssessAsync(RiskInput input, CancellationToken cancellationToken);
}
