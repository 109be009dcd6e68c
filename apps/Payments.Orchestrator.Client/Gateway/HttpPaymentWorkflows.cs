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
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<PaymentWorkflowState>(cancellationToken);
    }

    public async Task RaiseApprovalAsync(string paymentId, ApprovalDecision decision, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync($"{Route}/{Uri.EscapeDataString(paymentId)}/approval", decision, cancellationToken);
        response.EnsureSuccessStatusCode();
    }
}
