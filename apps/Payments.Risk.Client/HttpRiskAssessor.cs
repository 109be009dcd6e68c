using System.Net.Http.Json;
using Payments.Domain;
using Payments.Risk.Contracts;

namespace Payments.Risk.Client;

/// <summary>The risk service over HTTP (Dapr service invocation on Kubernetes, the risk process locally).
/// A fault throws, and the saga's activity is retried by the workflow runtime; assessing a payment again is safe
/// (each risk replica counts a payment id once).</summary>
public sealed class HttpRiskAssessor(HttpClient http) : IRiskAssessor
{
    public async Task<RiskAssessment> AssessAsync(RiskInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var wire = new RiskRequestWire(input.PaymentId, input.Debtor.Value, input.Creditor.Value, input.Amount.AmountMinor, input.Amount.Currency.Code,
            input.CreatedAt?.ToUnixTimeMilliseconds(), AccountId.IsMerchantId(input.MerchantId) ? input.MerchantId : null);
        using var response = await http.PostAsJsonAsync(RiskRoutes.Assess, wire, cancellationToken);
        response.EnsureSuccessStatusCode();
        // Read with nothing defaulted: a body without its decision (a proxy's 200, another version's answer) read as
        // Approve, the enum's zero — a payment approved by no rule (a review). Anything else is a fault, retried.
        var answer = await response.Content.ReadFromJsonAsync<AssessmentWire>(cancellationToken);
        return answer is { Decision: { } decision, Reasons: { } reasons } && Enum.IsDefined(decision) && reasons.All(reason => reason is not null)
            ? new RiskAssessment(decision, [.. reasons.OfType<string>()])
            : throw new InvalidDataException("The risk service's answer holds no valid decision and reasons.");
    }

    /// <summary><see cref="RiskAssessment"/> as sent, each member nullable, so that one left out is seen.</summary>
    private sealed record AssessmentWire(RiskDecision? Decision, IReadOnlyList<string?>? Reasons);
}
