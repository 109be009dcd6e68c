using Payments.Domain;

namespace Payments.Local;

public enum PaymentKind
{
    /// <summary>Hold, credit, post: the saga's happy path.</summary>
    Settled,
    /// <summary>Hold, then the payer cancels: the hold is voided.</summary>
    Cancelled,
    /// <summary>More than the payer has: refused at the hold, nothing moves.</summary>
    Overdrawn,
    /// <summary>A hold nobody resolves (a crashed client): the expiry sweep releases it.</summary>
    AbandonedHold,
}

public enum PaymentStatus
{
    Completed,
    Voided,
    InsufficientFunds,
    HoldAbandoned,
    Failed,
}

public sealed record PlannedPayment(string PaymentId, PaymentKind Kind, AccountId Debtor, AccountId Creditor, Money Amount)
{
    public TransferId HoldId => TransferId.Parse(PaymentId).Derive("hold");
}

/// <summary>A deterministic mix of payments (the same seed gives the same run), so runs can be compared.</summary>
public static class PaymentPlan
{
    public static IReadOnlyList<PlannedPayment> Create(int count, IReadOnlyList<(AccountId Id, Currency Currency)> accounts, int seed)
    {
        var random = new Random(seed);
        var runId = Guid.NewGuid().ToString("N")[..8];
        return Enumerable.Range(0, count).Select(index =>
        {
            var (debtor, currency) = accounts[random.Next(accounts.Count)];
            var creditors = accounts.Where(account => account.Currency == currency && account.Id != debtor).ToArray();
            var creditor = creditors[random.Next(creditors.Length)].Id;
            var roll = random.Next(100);
            var kind = roll switch
            {
                < 80 => PaymentKind.Settled,
                < 88 => PaymentKind.Cancelled,
                < 95 => PaymentKind.Overdrawn,
                _ => PaymentKind.AbandonedHold,
            };
            var amount = kind == PaymentKind.Overdrawn ? 10_000_000 : random.Next(100, 5_000);
            return new PlannedPayment($"pay-{runId}-{index:D6}", kind, debtor, creditor, new Money(amount, currency));
        }).ToArray();
    }
}
