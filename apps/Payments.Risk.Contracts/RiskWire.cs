using Payments.Domain;

namespace Payments.Risk.Contracts;

/// <summary>The risk service's routes, shared by the service and its client.</summary>
public static class RiskRoutes
{
    public const string Assess = "risk/v1/assessments";
}

/// <summary>The risk service's request body.</summary>
/// <param name="CreatedAtUnixMs">When the payment was accepted (<see cref="RiskInput.CreatedAt"/>); absent from a caller of
/// an earlier version: now.</param>
/// <param name="MerchantId">Whose payment it is (<see cref="RiskInput.MerchantId"/>); absent from a caller of an earlier
/// version, or for a merchant whose id predates the id check.</param>
public sealed record RiskRequestWire(
    string PaymentId, string DebtorAccountId, string CreditorAccountId, long AmountMinor, string Currency, long? CreatedAtUnixMs = null, string? MerchantId = null)
{
    /// <summary>The last millisecond DateTimeOffset holds (year 9999).</summary>
    private const long MaxUnixMs = 253_402_300_799_999;

    /// <summary>Null, with a reason, when a field is invalid.</summary>
    public RiskInput? ToInput(out string? problem)
    {
        problem = null;
        if (!AccountId.TryParseLedger(DebtorAccountId, out var debtor, out problem) || !AccountId.TryParseLedger(CreditorAccountId, out var creditor, out problem))
        {
            return null;
        }

        if (!Domain.Currency.TryFromCode(Currency, out var currency) || AmountMinor <= 0)
        {
            problem = "A positive amountMinor and an ISO 4217 currency are required.";
            return null;
        }

        // Bounded like every id the saga uses: each assessment is remembered in the debtor's velocity window.
        if (!TransferId.TryParse(PaymentId, out _, out problem))
        {
            return null;
        }

        if (debtor == creditor)
        {
            problem = "The debtor and the creditor must differ.";
            return null;
        }

        if (CreatedAtUnixMs is < 0 or > MaxUnixMs)
        {
            problem = "createdAtUnixMs must be a time in Unix milliseconds.";
            return null;
        }

        if (MerchantId is not null && !AccountId.IsMerchantId(MerchantId))
        {
            problem = "merchantId must be a merchant id when given.";
            return null;
        }

        return new RiskInput(PaymentId, debtor, creditor, new Money(AmountMinor, currency),
            CreatedAtUnixMs is { } created ? DateTimeOffset.FromUnixTimeMilliseconds(created) : null, MerchantId);
    }
}
