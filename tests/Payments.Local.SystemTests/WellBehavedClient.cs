using System.Net;
using Payments.Domain;

namespace Payments.Local.SystemTests;

/// <summary>Requests as the docs tell clients to send them: a 503 is retried with the same Idempotency-Key.</summary>
internal static class WellBehavedClient
{
    /// <summary>As a well-behaved client sends: on 503 (a dependency down or slow, the orchestrator killed) and on 409
    /// idempotency-key-in-use (its earlier attempt is still being worked on, or its claim outlives that attempt) it
    /// retries the same request, same key, after Retry-After or half a second — at most <see cref="OrchestratorCrashTests.MaxSubmitAttempts"/> times.</summary>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient http, Func<HttpRequestMessage> request, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var message = request();
            var response = await http.SendAsync(message, cancellationToken);
            var retry = response.StatusCode == HttpStatusCode.ServiceUnavailable
                || (response.StatusCode == HttpStatusCode.Conflict
                    && (await response.Content.ReadAsStringAsync(cancellationToken)).Contains(ProblemTypes.IdempotencyKeyInUse, StringComparison.Ordinal));
            if (!retry || attempt >= OrchestratorCrashTests.MaxSubmitAttempts)
            {
                return response;
            }

            await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromMilliseconds(500), cancellationToken);
            response.Dispose();
        }
    }
}
