using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;

namespace Payments.Local.Hosting;

/// <summary>How a client follows a payment over the public API until it is terminal: by default it asks
/// <c>GET /v1/payments/{id}?wait=</c> from the status it saw last, so the API answers when the status changes (one
/// request per change, not a poll); backing off as a 429 or 503 says, within a bound. Shared by the demo, the saga
/// benchmark and the system tests.</summary>
public static class PaymentPolling
{
    /// <summary>The server-side wait asked per request: under the 30 s timeouts clients commonly have, and short enough
    /// that a request held by a frozen replica is given up and asked again (of another replica) soon.</summary>
    public static readonly TimeSpan ServerWait = TimeSpan.FromSeconds(10);

    /// <summary>The terminal status and reason, or ("timed-out", null) when <paramref name="timeout"/> passed first.
    /// <paramref name="onAwaitingApproval"/> runs (once) when the payment waits for a reviewer.
    /// <paramref name="pollInterval"/> is the pause after an answer other than a changed status. <paramref name="knownStatus"/>:
    /// see <see cref="FollowAsync"/>.</summary>
    public static Task<(string Status, string? Reason)> WaitForTerminalAsync(
        HttpClient http, string paymentId, TimeSpan timeout, TimeSpan pollInterval, Func<Task>? onAwaitingApproval, CancellationToken cancellationToken,
        string? knownStatus = null) =>
        FollowAsync(http, paymentId, timeout, pollInterval, ServerWait, onAwaitingApproval, cancellationToken, knownStatus);

    /// <summary>Like <see cref="WaitForTerminalAsync"/>; with <paramref name="serverWait"/> zero it polls plainly,
    /// every <paramref name="pollInterval"/> (how clients without the wait follow a payment, for the benchmark).
    /// <paramref name="knownStatus"/> is the status the client has already (the 202's <c>pending</c>): the first
    /// wait starts from it, so a replica whose watch has shown the payment in it answers without reading etcd.</summary>
    public static async Task<(string Status, string? Reason)> FollowAsync(
        HttpClient http, string paymentId, TimeSpan timeout, TimeSpan pollInterval, TimeSpan serverWait, Func<Task>? onAwaitingApproval,
        CancellationToken cancellationToken, string? knownStatus = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        var waited = Stopwatch.StartNew();
        var approvalHandled = false;
        var seen = knownStatus;
        while (waited.Elapsed < timeout)
        {
            var changed = false;
            TimeSpan? retryAfter = null;
            try
            {
                using var response = await http.GetAsync(PathOf(paymentId, serverWait, seen), cancellationToken);
                retryAfter = response.Headers.RetryAfter?.Delta;
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
                    var status = body.GetProperty("status").GetString()!;
                    if (PaymentStatus.IsTerminal(status))
                    {
                        return (status, body.TryGetProperty("reason", out var reason) ? reason.GetString() : null);
                    }

                    if (status == PaymentStatus.AwaitingApproval && !approvalHandled && onAwaitingApproval is not null)
                    {
                        await onAwaitingApproval();
                        approvalHandled = true;
                    }

                    changed = serverWait > TimeSpan.Zero && status != seen;
                    seen = status;
                }
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The client's own timeout (a replica frozen mid-request): ask again, within the bound.
            }

            if (!changed)
            {
                await Task.Delay(retryAfter ?? pollInterval, cancellationToken);
            }
        }

        return ("timed-out", null);
    }

    private static string PathOf(string paymentId, TimeSpan serverWait, string? seen) =>
        serverWait <= TimeSpan.Zero
            ? $"/v1/payments/{paymentId}"
            : string.Create(CultureInfo.InvariantCulture, $"/v1/payments/{paymentId}?wait={(int)serverWait.TotalSeconds}")
              + (seen is null ? string.Empty : "&status=" + seen);
}
