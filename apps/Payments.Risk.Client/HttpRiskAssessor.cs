using System.Net.Http.Json;
using Payments.Risk.Contracts;

namespace Payments.Risk.Client;

/// <summary>The risk service over HTTP (Dapr service invocation on Kubernetes, the risk process locally).
/// A fault throws, and the saga's activity is retried by the workflow runtime; assessing a payment again is safe
/// (the engine counts a payment id once).</summary>
public sealed class HttpRiskAssessor(HttpClient http) : IRiskAssessor
{
    public async Task<RiskAssessment> AssessAsync(RiskInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var wire = new RiskRequestWire(input.PaymentId, input.Debtor.Value, input.Creditor.Value, input.Amount.AmountMinor, input.Amount.Currency.Code,
            input.CreatedAt?.ToUnixTimeMilliseconds());
        using var response = await http.PostAsJsonAsync(RiskRoutes.Assess, wire, cancellationToken);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<RiskAssessment>(cancellationToken)
            ?? throw new InvalidDataException("The risk service answered with no assessment.");
    }
}
