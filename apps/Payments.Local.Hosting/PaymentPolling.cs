using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;

namespace Payments.Local.Hosting;

/// <summary>How a client follows a payment over the public API: poll <c>GET /v1/payments/{id}</c> until it is terminal,
/// backing off as a 429 or 503 says, within a bound. Shared by the demo, the saga benchmark and the system tests.</summary>
public static class PaymentPolling
{
    /// <summary>The terminal status and reason, or ("timed-out", null) when <paramref name="timeout"/> passed first.
    /// <paramref name="onAwaitingApproval"/> runs (once) when the payment waits for a reviewer.</summary>
    public static async Task<(string Status, string? Reason)> WaitForTerminalAsync(
        HttpClient http, string paymentId, TimeSpan timeout, TimeSpan pollInterval, Func<Task>? onAwaitingApproval, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(http);
        var waited = Stopwatch.StartNew();
        var approvalHandled = false;
        while (waited.Elapsed < timeout)
        {
            using var response = await http.GetAsync($"/v1/payments/{paymentId}", cancellationToken);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
                var status = body.GetProperty("status").GetString()!;
                if (PaymentStatus.IsTerminal(status))
                {
                    return (status, body.TryGetProperty("reason", out var reason) ? reason.GetString() : null);
                }

                if (status == "awaiting_approval" && !approvalHandled && onAwaitingApproval is not null)
                {
                    await onAwaitingApproval();
                    approvalHandled = true;
                }
            }

            await Task.Delay(response.Headers.RetryAfter?.Delta ?? pollInterval, cancellationToken);
        }

        return ("timed-out", null);
    }
}
