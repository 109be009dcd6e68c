using System.Collections.Concurrent;
using Payments.Domain;
using Payments.Risk.Contracts;

namespace Payments.Risk.Core;

/// <summary>The rules, evaluated in order of severity: blocklist and hard limits reject; velocity and the review
/// threshold send a payment to a person. Velocity is counted per debtor over a sliding window, in memory.</summary>
/// <remarks>Velocity here is per process: with several risk replicas each sees its share, so the limits are a floor
/// of protection, not an exact count. Assessing the same payment id twice counts it once (activities may retry).</remarks>
public sealed class RiskEngine(RiskPolicy policy, TimeProvider time) : IRiskAssessor
{
    /// <summary>Payments remembered per account (older ones fall out of the window anyway); bounds memory per account.</summary>
    public const int MaxRememberedPerAccount = 10_000;

    /// <summary>Accounts tracked; past it the least useful (oldest) state is dropped wholesale.</summary>
    public const int MaxTrackedAccounts = 100_000;

    private readonly ConcurrentDictionary<AccountId, AccountVelocity> velocity = new();

    public Task<RiskAssessment> AssessAsync(RiskInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var reasons = new List<string>();
        if (policy.BlockedAccounts.Contains(input.Debtor.Value))
        {
            reasons.Add(RiskAssessment.DebtorBlocked);
        }

        if (policy.BlockedAccounts.Contains(input.Creditor.Value))
        {
            reasons.Add(RiskAssessment.CreditorBlocked);
        }

        if (input.Amount.AmountMinor > policy.RejectAboveMinor)
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

        if (sum > policy.VelocityMaxSumMinor)
        {
            reasons.Add(RiskAssessment.VelocitySumExceeded);
        }

        if (input.Amount.AmountMinor > policy.ReviewThresholdMinor)
        {
            reasons.Add(RiskAssessment.AmountAboveReviewThreshold);
        }

        return Task.FromResult(new RiskAssessment(reasons.Count > 0 ? RiskDecision.Review : RiskDecision.Approve, reasons));
    }

    /// <summary>Adds the payment to its debtor's window (once per payment id) and returns the window's count and sum.</summary>
    private (int Count, long Sum) Record(RiskInput input)
    {
        if (velocity.Count >= MaxTrackedAccounts)
        {
            velocity.Clear();
        }

        var window = velocity.GetOrAdd(input.Debtor, _ => new AccountVelocity());
        var now = time.GetUtcNow();
        lock (window)
        {
            while (window.Entries.Count > 0 && (now - window.Entries.Peek().At > policy.VelocityWindow || window.Entries.Count >= MaxRememberedPerAccount))
            {
                var expired = window.Entries.Dequeue();
                window.PaymentIds.Remove(expired.PaymentId);
                window.SumMinor -= expired.AmountMinor;
            }

            if (window.PaymentIds.Add(input.PaymentId))
            {
                window.Entries.Enqueue((now, input.PaymentId, input.Amount.AmountMinor));
                window.SumMinor = checked(window.SumMinor + input.Amount.AmountMinor);
            }

            return (window.Entries.Count, window.SumMinor);
        }
    }

    private sealed class AccountVelocity
    {
        public Queue<(DateTimeOffset At, string PaymentId, long AmountMinor)> Entries { get; } = new();

        public HashSet<string> PaymentIds { get; } = new(StringComparer.Ordinal);

        public long SumMinor { get; set; }
    }
}
