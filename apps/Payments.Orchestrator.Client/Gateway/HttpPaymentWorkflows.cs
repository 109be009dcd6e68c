using System.Net;
using System.Net.Http.Json;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Client.Gateway;

/// <summary>The saga through the orchestrator's internal endpoints: Dapr service invocation on Kubernetes
/// (<c>http://localhost:3500/v1.0/invoke/orchestrator/method/</c>), the orchestrator's port locally.</summary>
public sealed class HttpPaymentWorkflows(HttpClient http) : IPaymentWorkflows
{
    public const string Route = "orchestrator/v1/payments";

    public async Task StartAsync(PaymentInput input, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync(Route, input, cancellationToken);
        response.EnsureSuccessStatusCode();
    }

    public async Task ResumeAsync(PaymentInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var response = await http.PostAsJsonAsync($"{Route}/{Uri.EscapeDataString(input.PaymentId)}/resume", input, cancellationToken);
        response.EnsureSuccessStatusCode();
    }

    public async Task<PaymentWorkflowState?> GetAsync(string paymentId, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync($"{Route}/{Uri.EscapeDataString(paymentId)}", cancellationToken);
        if (await IsNoSagaAsync(response, cancellationToken))
        {
            return null;
        }

        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<PaymentWorkflowState>(cancellationToken);
    }

    public async Task RaiseApprovalAsync(string paymentId, ApprovalDecision decision, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync($"{Route}/{Uri.EscapeDataString(paymentId)}/approval", decision, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Conflict || await IsNoSagaAsync(response, cancellationToken))
        {
            // No saga to tell (lost in a takeover, or purged), or one that ended meanwhile: the decision the caller
            // recorded on the payment first is what a resumed run follows, and an ended one decided already.
            return;
        }

        response.EnsureSuccessStatusCode();
    }

    /// <summary>Whether the orchestrator said it has no saga for the payment: its own 404 (payment-not-found). A bare
    /// 404 — a route or sidecar that is not the orchestrator's — is no answer, and fails as any other fault.</summary>
    private static async Task<bool> IsNoSagaAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.StatusCode != HttpStatusCode.NotFound || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
        {
            return false;
        }

        try
        {
            var problem = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(cancellationToken);
            return problem.ValueKind == System.Text.Json.JsonValueKind.Object && problem.TryGetProperty("type", out var type)
                && type.ValueKind == System.Text.Json.JsonValueKind.String && type.GetString() == Payments.Domain.ProblemTypes.PaymentNotFound;
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }
}
