using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;
using Payments.Ledger.Core;
using Payments.Local.Hosting;
using Payments.Merchants;
using Payments.Testing;
using Xunit.Abstractions;

namespace Payments.Local.SystemTests;

/// <summary>The local system with every app as its own process; the orchestrator is SIGKILLed mid-batch.</summary>
[Collection(LocalSystemCollection.Name)]
public sealed class OrchestratorCrashTests(ITestOutputHelper output)
{
    public const int Payments = 60;
    public const int Accounts = 8;
    public const long FundsMinor = 100_000;
    /// <summary>With a 0.5–1 s pause each: up to about two minutes for the orchestrator to come back under load.</summary>
    public const int MaxSubmitAttempts = 240;
    public static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task KilledOrchestrator_MidBatch_EveryPaymentStillEndsTerminal_AndNothingAppliesTwice()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        await using var system = await LocalSystem.StartAsync(0, output.WriteLine, timeout.Token);
        var store = new MerchantStore(system.Etcd, LocalSystem.KeyPrefix + "api/");
        using var http = new HttpClient { BaseAddress = system.ApiBaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await store.IssueApiKeyAsync("crash-merchant", timeout.Token));
        var accounts = await OpenAccountsAsync(http, timeout.Token);

        var random = new Random(11);
        var accepted = 0;
        var acceptedIds = new ConcurrentQueue<string>();
        var submissions = Enumerable.Range(0, Payments).Select(async index =>
        {
            var debtor = accounts[random.Next(Accounts)];
            var creditor = accounts.First(account => account != debtor);
            using var response = await WellBehavedClient.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
            {
                Content = JsonContent.Create(new { debtorAccountId = debtor, creditorAccountId = creditor, amountMinor = 100 + index, currency = "USD" }),
                Headers = { { "Idempotency-Key", $"crash-{index}" } },
            }, timeout.Token);

            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var paymentId = (await response.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("paymentId").GetString()!;
            acceptedIds.Enqueue(paymentId);
            Interlocked.Increment(ref accepted);
            return paymentId;
        }).ToArray();

        // Kill the orchestrator while the batch is being worked on (a sixth of it accepted), then start a fresh one.
        var waited = Stopwatch.StartNew();
        while (Volatile.Read(ref accepted) < Payments / 6)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), "The API accepted too few payments.");
            await Task.Delay(TimeSpan.FromMilliseconds(10), timeout.Token);
        }

        output.WriteLine($"Killing orchestrator pid {system.Orchestrator.ProcessId}");
        var acceptedBeforeKill = acceptedIds.ToArray();
        await system.Orchestrator.KillAsync();
        // The kill must hit sagas under way, or the test shows nothing about a crash: with the orchestrator dead no
        // record changes, so a payment accepted before the kill and not terminal now was unfinished when it died.
        var statusesAtKill = await Task.WhenAll(acceptedBeforeKill.Select(id => StatusAsync(http, id, timeout.Token)));
        Assert.Contains(statusesAtKill, status => !PaymentStatus.IsTerminal(status));
        // At once, while submissions are still coming: those not yet accepted can be only by a new orchestrator
        // (waiting for all of them first passed only when every one had been accepted before the kill).
        await system.StartOrchestratorAsync(timeout.Token);
        output.WriteLine("Started a new orchestrator");
        var paymentIds = await Task.WhenAll(submissions);

        var statuses = await Task.WhenAll(paymentIds.Select(id => TerminalStatusAsync(http, id, timeout.Token)));

        // Every debtor has 100,000 and at most 60 payments of 100-159 leave it, under every risk limit: a crash is a fault,
        // and a fault fails no payment (any terminal status passed, a crash reported failed with money moved too).
        Assert.All(statuses, status => Assert.Equal(PaymentStatus.Completed, status));
        output.WriteLine(File.ReadLines(Path.Combine(system.LogDirectory, "workflow-sidecar.log")).FirstOrDefault(line => line.Contains("in-flight", StringComparison.Ordinal)) ?? "no disconnect logged");
        output.WriteLine(string.Join(", ", statuses.GroupBy(status => status).Select(group => $"{group.Key} {group.Count()}")));
        var report = await LedgerAssert.InvariantsHoldAsync(system.Ledger, timeout.Token); // includes: no transfer id twice
        Assert.Equal(0, report.Accounts.Where(account => account.Id == AccountId.InTransit(Currency.Usd)).Sum(account => account.BalanceMinor));
        Assert.All(report.Accounts.Where(account => !account.IsSystem), account => Assert.Equal(0, account.PendingDebitMinor));
    }

    private static async Task<List<string>> OpenAccountsAsync(HttpClient http, CancellationToken cancellationToken)
    {
        var accounts = new List<string>();
        for (var index = 0; index < Accounts; index++)
        {
            var id = $"crash-{index}";
            (await WellBehavedClient.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, "/v1/accounts") { Content = JsonContent.Create(new { accountId = id, currency = "USD" }) },
                cancellationToken)).EnsureSuccessStatusCode();
            (await WellBehavedClient.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{id}/deposits")
            {
                Content = JsonContent.Create(new { amountMinor = FundsMinor, currency = "USD" }),
                Headers = { { "Idempotency-Key", "fund-" + id } },
            }, cancellationToken)).EnsureSuccessStatusCode();
            accounts.Add(id);
        }

        return accounts;
    }

    private static async Task<string> StatusAsync(HttpClient http, string paymentId, CancellationToken cancellationToken)
    {
        using var response = await WellBehavedClient.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Get, $"/v1/payments/{paymentId}"), cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("status").GetString()!;
    }

    private static async Task<string> TerminalStatusAsync(HttpClient http, string paymentId, CancellationToken cancellationToken)
    {
        var (status, _) = await PaymentPolling.WaitForTerminalAsync(
            http, paymentId, TimeSpan.FromMinutes(2), TimeSpan.FromMilliseconds(200), null, cancellationToken);
        Assert.True(status != "timed-out", $"Payment {paymentId} did not reach a terminal state.");
        return status;
    }
}
