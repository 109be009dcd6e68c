using Payments.Domain;

namespace Payments.Risk.Contracts;

/// <summary>The risk service's routes, shared by the service and its client.</summary>
public static class RiskRoutes
{
    public const string Assess = "risk/v1/assessments";
}

/// <summary>The risk service's request body.</summary>
public sealed record RiskRequestWire(string PaymentId, string DebtorAccountId, string CreditorAccountId, long AmountMinor, string Currency)
{
    /// <summary>Null, with a reason, when a field is invalid.</summary>
    public RiskInput? ToInput(out string? problem)
    {
        problem = null;
        if (!AccountId.TryParseLedger(DebtorAccountId, out var debtor, out problem) || !AccountId.TryParseLedger(CreditorAccountId, out var creditor, out problem))
        {
            return null;
        }

        if (!Domain.Currency.TryFromCode(Currency, out var currency) || AmountMinor <= 0 || string.IsNullOrEmpty(PaymentId))
        {
            problem = "paymentId, a positive amountMinor and an ISO 4217 currency are required.";
            return null;
        }

        return new RiskInput(PaymentId, debtor, creditor, new Money(AmountMinor, currency));
    }
}
