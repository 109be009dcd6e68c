using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;

namespace Payments.Local.Hosting.Chaos;

/// <summary>A payment as one campaign client saw it.</summary>
public sealed record CampaignPayment(string Key, string Debtor, string Creditor, long AmountMinor)
{
    public string? PaymentId { get; set; }

    public string Status { get; set; } = "unsubmitted";

    public string? Reason { get; set; }
}

/// <summary>A well-behaved merchant client under faults: every payment has an Idempotency-Key; a 5xx, 429 or timeout is
/// retried with the same key within <see cref="RetryBudget"/>; a payment sent to review is approved by the merchant's
/// reviewer, with another key than the one that created it (four eyes); a payment it stopped following is asked about again at the end. Counts how many of its requests got an
/// answer without a 5xx or timeout within the budget.</summary>
public sealed class CampaignClient(HttpClient http, HttpClient reviewer, int client, IReadOnlyList<string> accounts, Random random)
{
    /// <summary>How long one request is retried before the client counts it unanswered.</summary>
    public static readonly TimeSpan RetryBudget = TimeSpan.FromSeconds(30);

    /// <summary>How long the client follows a payment before it moves on (it asks again at the end).</summary>
    public static readonly TimeSpan FollowBound = TimeSpan.FromSeconds(45);

    /// <summary>Most payments per client in one campaign.</summary>
    public const int MaxPayments = 100_000;

    /// <summary>About one payment in this many is above the review threshold (a reviewer approves it).</summary>
    public const int ReviewEvery = 20;

    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    public ConcurrentBag<CampaignPayment> Payments { get; } = [];

    public long Requests => Interlocked.Read(ref requests);

    public long Answered => Interlocked.Read(ref answered);

    private long requests;
    private long answered;

    /// <summary>Pays until <paramref name="until"/> passes (or <see cref="MaxPayments"/>), one payment at a time.</summary>
    public async Task RunAsync(Stopwatch clock, TimeSpan until, CancellationToken cancellationToken)
    {
        for (var sequence = 0; sequence < MaxPayments && clock.Elapsed < until; sequence++)
        {
            var debtor = accounts[random.Next(accounts.Count)];
            var creditor = accounts.Where(account => account != debtor).ElementAt(random.Next(accounts.Count - 1));
            var amount = random.Next(ReviewEvery) == 0 ? LocalSystem.ReviewThresholdMinor + random.Next(1, 1_000) : random.Next(1, 5_000);
            var payment = new CampaignPayment($"chaos-{client}-{sequence}", debtor, creditor, amount);
            Payments.Add(payment);
            payment.PaymentId = await SubmitAsync(payment, cancellationToken);
            if (payment.PaymentId is not null)
            {
                await FollowAsync(payment, FollowBound, cancellationToken);
            }
        }
    }

    /// <summary>Submits (or resubmits: the same key and body name the same payment) and returns the payment id.</summary>
    public async Task<string?> SubmitAsync(CampaignPayment payment, CancellationToken cancellationToken)
    {
        var body = new { debtorAccountId = payment.Debtor, creditorAccountId = payment.Creditor, amountMinor = payment.AmountMinor, currency = "EUR" };
        var response = await WithinBudgetAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments") { Content = JsonContent.Create(body) };
            request.Headers.Add("Idempotency-Key", payment.Key);
            return request;
        }, cancellationToken);
        return response is { } answer ? answer.GetProperty("paymentId").GetString() : null;
    }

    /// <summary>Follows the payment to a terminal status (approving it if it waits for review) within <paramref name="bound"/>.</summary>
    public async Task FollowAsync(CampaignPayment payment, TimeSpan bound, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < bound)
        {
            if (await WithinBudgetAsync(() => new HttpRequestMessage(HttpMethod.Get, $"/v1/payments/{payment.PaymentId}"), cancellationToken) is { } state)
            {
                payment.Status = state.GetProperty("status").GetString()!;
                payment.Reason = state.TryGetProperty("reason", out var reason) ? reason.GetString() : null;
                if (PaymentStatus.IsTerminal(payment.Status))
                {
                    return;
                }

                if (payment.Status == PaymentStatus.AwaitingApproval)
                {
                    await WithinBudgetAsync(() => new HttpRequestMessage(HttpMethod.Post, $"/v1/payments/{payment.PaymentId}/approve"), cancellationToken, reviewer);
                }
            }

            await Task.Delay(PollInterval, cancellationToken);
        }
    }

    /// <summary>409 <c>idempotency-key-in-use</c>: the same key is still being processed (or its claim outlives an API
    /// replica that died with it): "retry later", as Stripe's clients do.</summary>
    private static async Task<bool> IsKeyInUseAsync(HttpResponseMessage response, CancellationToken cancellationToken) =>
        response.StatusCode == HttpStatusCode.Conflict
        && (await response.Content.ReadAsStringAsync(cancellationToken)).Contains(ProblemTypes.IdempotencyKeyInUse, StringComparison.Ordinal);

    /// <summary>One request, retried on 5xx, 429, 409 key-in-use, timeouts and refused connections within <see cref="RetryBudget"/>.
    /// Returns the body of a 2xx, or null (a 4xx other than 429 — e.g. a 409 for an approval that raced the
    /// saga — or the budget spent: counted unanswered).</summary>
    private async Task<JsonElement?> WithinBudgetAsync(Func<HttpRequestMessage> create, CancellationToken cancellationToken, HttpClient? via = null)
    {
        Interlocked.Increment(ref requests);
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < RetryBudget)
        {
            try
            {
                using var request = create();
                using var response = await (via ?? http).SendAsync(request, cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref answered);
                    return response.Content.Headers.ContentLength == 0 ? default(JsonElement) : await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
                }

                if ((int)response.StatusCode < 500 && response.StatusCode != HttpStatusCode.TooManyRequests && !await IsKeyInUseAsync(response, cancellationToken))
                {
                    Interlocked.Increment(ref answered);
                    return null;
                }
            }
            catch (Exception exception) when (exception is HttpRequestException || (exception is TaskCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // refused (a process restarting) or timed out (a frozen one): the same request again
            }

            await Task.Delay(RetryPause, cancellationToken);
        }

        return null;
    }
}
