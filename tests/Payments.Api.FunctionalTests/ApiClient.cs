using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Payments.Api.FunctionalTests;

/// <summary>Small helpers over HttpClient for the v1 API; every call is real HTTP to the API on Kestrel.</summary>
public static class ApiClient
{
    public static readonly TimeSpan TerminalTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly string[] TerminalStatuses = ["completed", "failed", "compensated"];

    public static async Task OpenAccountAsync(this HttpClient client, string accountId, string currency = "USD", long fundsMinor = 0)
    {
        var response = await client.PostAsJsonAsync("/v1/accounts", new { accountId, currency });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        if (fundsMinor > 0)
        {
            var deposit = await client.SendJsonAsync("/v1/accounts/" + accountId + "/deposits", $"{{\"amountMinor\":{fundsMinor},\"currency\":\"{currency}\"}}", Guid.NewGuid().ToString());
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        }
    }

    public static async Task<HttpResponseMessage> SendJsonAsync(this HttpClient client, string path, string json, string? idempotencyKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return await client.SendAsync(request);
    }

    public static Task<HttpResponseMessage> PayAsync(this HttpClient client, string debtor, string creditor, long amountMinor, string? key = null, string currency = "USD") =>
        client.SendJsonAsync("/v1/payments",
            $"{{\"debtorAccountId\":\"{debtor}\",\"creditorAccountId\":\"{creditor}\",\"amountMinor\":{amountMinor},\"currency\":\"{currency}\"}}",
            key ?? Guid.NewGuid().ToString());

    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    public static async Task<long> BalanceAsync(this HttpClient client, string accountId) =>
        (await (await client.GetAsync("/v1/accounts/" + accountId)).JsonAsync()).GetProperty("balanceMinor").GetInt64();

    /// <summary>Polls the payment (bounded) until it reaches a terminal status, or until <paramref name="status"/>.</summary>
    public static async Task<JsonElement> WaitForStatusAsync(this HttpClient client, string paymentId, string? status = null)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var response = await client.GetAsync("/v1/payments/" + paymentId);
            if (response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable)
            {
                // What a well-behaved client does: back off as told, then ask again (still bounded by the timeout).
                Assert.True(waited.Elapsed < TerminalTimeout, $"Payment {paymentId}: still {response.StatusCode} after {TerminalTimeout}.");
                await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
                continue;
            }

            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET payment {paymentId}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var payment = await response.JsonAsync();
            var current = payment.GetProperty("status").GetString()!;
            if (status is null ? TerminalStatuses.Contains(current) : current == status)
            {
                return payment;
            }

            Assert.True(waited.Elapsed < TerminalTimeout, $"Payment {paymentId} still {current} after {TerminalTimeout}.");
            await Task.Delay(PollInterval);
        }
    }
}
