using System.Net.Http.Json;
using Payments.Domain;

namespace Payments.Risk.Core;

/// <summary>The risk service over HTTP (Dapr service invocation on Kubernetes, the risk process locally).
/// A fault throws, and the saga's activity is retried by the workflow runtime; assessing a payment again is safe
/// (the engine counts a payment id once).</summary>
public sealed class HttpRiskAssessor(HttpClient http) : IRiskAssessor
{
    public const string AssessRoute = "risk/v1/assessments";

    public async Task<RiskAssessment> AssessAsync(RiskInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var wire = new RiskRequestWire(input.PaymentId, input.Debtor.Value, input.Creditor.Value, input.Amount.AmountMinor, input.Amount.Currency.Code);
        using var response = await http.PostAsJsonAsync(AssessRoute, wire, cancellationToken);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<RiskAssessment>(cancellationToken)
            ?? throw new InvalidDataException("The risk service answered with no assessment.");
    }
}

/// <summary>The risk service's request body.</summary>
public sealed record RiskRequestWire(string PaymentId, string DebtorAccountId, string CreditorAccountId, long AmountMinor, string Currency)
{
    /// <summary>Null, with a reason, when a field is invalid.</summary>
    public RiskInput? ToInput(out string? problem)
    {
        problem = null;
        if (!AccountId.TryParse(DebtorAccountId, out var debtor, out problem) || !AccountId.TryParse(CreditorAccountId, out var creditor, out problem))
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
