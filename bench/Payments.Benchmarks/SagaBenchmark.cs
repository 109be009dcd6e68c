using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using HdrHistogram;
using Payments.Local.Hosting;
using Payments.Merchants;

namespace Payments.Benchmarks;

/// <summary>Drives the public API of the local system at a fixed concurrency: each client submits a payment and
/// polls it to a terminal state, then submits the next. Reports payments/s and submit-to-terminal latency.</summary>
public static class SagaBenchmark
{
    public const int AccountsPerClient = 4;
    public const long FundsMinor = 1_000_000_000;
    public const long MaxPaymentsPerClient = 1_000_000;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan TerminalTimeout = TimeSpan.FromMinutes(2);

    public static async Task RunAsync(TimeSpan duration, int clients, CancellationToken cancellationToken)
    {
        await using var system = await LocalSystem.StartAsync(0, Console.WriteLine, cancellationToken);
        var store = new MerchantStore(system.Etcd, LocalSystem.KeyPrefix + "api/");
        Console.WriteLine($"Opening {clients * AccountsPerClient} accounts for {clients} merchants (one API key per client)…");
        var http = await Task.WhenAll(Enumerable.Range(0, clients).Select(client => ClientAsync(system, store, client, cancellationToken)));

        var histograms = Enumerable.Range(0, clients).Select(_ => new LongHistogram(TimeStamp.Minutes(5), 3)).ToArray();
        var completed = new long[clients];
        var notCompleted = 0L;
        var clock = Stopwatch.StartNew();
        var workers = Task.WhenAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            for (long sequence = 0; sequence < MaxPaymentsPerClient && clock.Elapsed < duration; sequence++)
            {
                var start = Stopwatch.GetTimestamp();
                if (await PayAsync(http[client], client, sequence, cancellationToken) != "completed")
                {
                    Interlocked.Increment(ref notCompleted);
                }

                histograms[client].RecordValue(Stopwatch.GetTimestamp() - start);
                Interlocked.Increment(ref completed[client]);
            }
        }, cancellationToken)));
        while (!workers.IsCompleted)
        {
            await Task.WhenAny(workers, Task.Delay(TimeSpan.FromSeconds(1), cancellationToken));
            var done = completed.Sum();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  saga: {clock.Elapsed.TotalSeconds,5:F1} s  {done,7:N0} payments terminal  {done / clock.Elapsed.TotalSeconds,7:N1} /s"));
        }

        await workers;
        var elapsed = clock.Elapsed;
        var merged = new LongHistogram(TimeStamp.Minutes(5), 3);
        foreach (var histogram in histograms)
        {
            merged.Add(histogram);
        }

        var payments = completed.Sum();
        var perSecond = payments / elapsed.TotalSeconds;
        var p50 = merged.GetValueAtPercentile(50) * 1000.0 / Stopwatch.Frequency;
        var p99 = merged.GetValueAtPercentile(99) * 1000.0 / Stopwatch.Frequency;
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{payments:N0} payments in {elapsed.TotalSeconds:F1} s at concurrency {clients}: {perSecond:F1} payments/s, submit-to-terminal p50 {p50:F1} ms, p99 {p99:F1} ms, not completed {notCompleted}"));
        var result = new Dictionary<string, object>
        {
            ["paymentsPerSec"] = Math.Round(perSecond, 1),
            ["terminalP50Ms"] = Math.Round(p50, 1),
            ["terminalP99Ms"] = Math.Round(p99, 1),
            ["payments"] = payments,
            ["notCompleted"] = notCompleted,
            ["clients"] = clients,
        };
        Console.WriteLine("RESULT " + JsonSerializer.Serialize(result));
        foreach (var client in http)
        {
            client.Dispose();
        }
    }

    private static async Task<HttpClient> ClientAsync(LocalSystem system, MerchantStore store, int client, CancellationToken cancellationToken)
    {
        var http = new HttpClient { BaseAddress = system.ApiBaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await store.IssueApiKeyAsync($"bench-{client}", cancellationToken));
        for (var index = 0; index < AccountsPerClient; index++)
        {
            var id = $"bench-{client}-{index}";
            (await http.PostAsJsonAsync("/v1/accounts", new { accountId = id, currency = "USD" }, cancellationToken)).EnsureSuccessStatusCode();
            using var deposit = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{id}/deposits") { Content = JsonContent.Create(new { amountMinor = FundsMinor, currency = "USD" }) };
            deposit.Headers.Add("Idempotency-Key", "fund-" + id);
            (await http.SendAsync(deposit, cancellationToken)).EnsureSuccessStatusCode();
        }

        return http;
    }

    private static async Task<string> PayAsync(HttpClient http, int client, long sequence, CancellationToken cancellationToken)
    {
        var debtor = $"bench-{client}-{sequence % AccountsPerClient}";
        var creditor = $"bench-{client}-{(sequence + 1) % AccountsPerClient}";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
        {
            Content = JsonContent.Create(new { debtorAccountId = debtor, creditorAccountId = creditor, amountMinor = 100, currency = "USD" }),
        };
        request.Headers.Add("Idempotency-Key", $"bench-{client}-{sequence}");
        var accepted = await http.SendAsync(request, cancellationToken);
        if (accepted.StatusCode != HttpStatusCode.Accepted)
        {
            return $"http-{(int)accepted.StatusCode}";
        }

        var paymentId = (await accepted.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("paymentId").GetString()!;
        var (status, _) = await PaymentPolling.WaitForTerminalAsync(http, paymentId, TerminalTimeout, PollInterval, null, cancellationToken);
        return status;
    }
}
