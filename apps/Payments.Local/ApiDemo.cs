using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Domain;
using Payments.Local.Hosting;
using Payments.Merchants;
using Spectre.Console;

namespace Payments.Local;

/// <summary>The main job's demo: a merchant with accounts, a batch of payments through the public API (some rejected
/// by risk, some sent to review and approved or rejected, some short of funds), then the summary and the ledger's
/// invariant checks.</summary>
public static class ApiDemo
{
    public const long FundsMinor = 500_000;
    public const long LowFundsMinor = 1_000;
    public static readonly TimeSpan TerminalTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly Currency[] Currencies = [Currency.Usd, Currency.Eur];

    public static async Task<bool> RunAsync(LocalSystem system, DemoOptions options, CancellationToken cancellationToken)
    {
        // The merchant's integration key, and a reviewer's key: a payment held for review is decided by another key
        // than the one that created it (four eyes).
        using var http = await MerchantClients.CreateAsync(system, "demo-merchant", TimeSpan.FromSeconds(30), cancellationToken);
        using var reviewer = await MerchantClients.CreateAsync(
            system, "demo-merchant", TimeSpan.FromSeconds(30), cancellationToken, ApiScopes.PaymentsRead, ApiScopes.PaymentsApprove);
        var accounts = await OpenAccountsAsync(http, options.AccountsPerCurrency, cancellationToken);
        var plan = DemoPayment.Plan(options.Payments, accounts, seed: 2026);
        var results = new ConcurrentBag<DemoResult>();
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                var progress = context.AddTask($"{plan.Count} payments through the API, {options.Workers} clients", maxValue: plan.Count);
                await Parallel.ForEachAsync(plan, new ParallelOptions { MaxDegreeOfParallelism = options.Workers, CancellationToken = cancellationToken },
                    async (payment, token) =>
                    {
                        results.Add(await ExecuteAsync(http, reviewer, payment, token));
                        progress.Increment(1);
                    });
            });

        Summarise(results);
        var invariantsHold = await LedgerReport.PrintAsync(system, cancellationToken);
        return invariantsHold && results.All(result => PaymentStatus.IsTerminal(result.FinalStatus));
    }

    private static async Task<IReadOnlyList<(string Id, Currency Currency, bool Low)>> OpenAccountsAsync(HttpClient http, int perCurrency, CancellationToken cancellationToken)
    {
        var accounts = new List<(string, Currency, bool)>();
        foreach (var currency in Currencies)
        {
            for (var index = 0; index <= perCurrency; index++)
            {
                // The last account of each currency is nearly empty: payments from it run short of funds.
                var low = index == perCurrency;
                var id = low ? $"low-balance-{currency.Code.ToLowerInvariant()}" : $"customer-{currency.Code.ToLowerInvariant()}-{index:D3}";
                (await http.PostAsJsonAsync("/v1/accounts", new { accountId = id, currency = currency.Code }, cancellationToken)).EnsureSuccessStatusCode();
                using var deposit = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{id}/deposits")
                {
                    Content = JsonContent.Create(new { amountMinor = low ? LowFundsMinor : FundsMinor, currency = currency.Code }),
                };
                deposit.Headers.Add("Idempotency-Key", $"opening-deposit-{id}");
                (await http.SendAsync(deposit, cancellationToken)).EnsureSuccessStatusCode();
                accounts.Add((id, currency, low));
            }
        }

        AnsiConsole.MarkupLineInterpolated($"Opened and funded {accounts.Count} accounts through the API.");
        return accounts;
    }

    private static async Task<DemoResult> ExecuteAsync(HttpClient http, HttpClient reviewer, DemoPayment payment, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
        {
            Content = JsonContent.Create(new { debtorAccountId = payment.Debtor, creditorAccountId = payment.Creditor, amountMinor = payment.AmountMinor, currency = payment.Currency.Code }),
        };
        request.Headers.Add("Idempotency-Key", payment.IdempotencyKey);
        var accepted = await http.SendAsync(request, cancellationToken);
        if (accepted.StatusCode != HttpStatusCode.Accepted)
        {
            return new DemoResult(payment, $"http-{(int)accepted.StatusCode}", null, clock.Elapsed);
        }

        var answer = await accepted.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        var paymentId = answer.GetProperty("paymentId").GetString()!;
        var (status, reason) = await PaymentPolling.WaitForTerminalAsync(http, paymentId, TerminalTimeout, PollInterval, async () =>
        {
            // The reviewer's answer: the plan says which.
            using var content = JsonContent.Create(new { });
            var decision = payment.Kind == DemoKind.ReviewApproved ? "approve" : "reject";
            await reviewer.PostAsync($"/v1/payments/{paymentId}/{decision}", content, cancellationToken);
        }, cancellationToken, knownStatus: answer.GetProperty("status").GetString()); // waits from the 202's status, as clients should
        return new DemoResult(payment, status, reason, clock.Elapsed);
    }

    private static void Summarise(ConcurrentBag<DemoResult> results)
    {
        var table = new Table().Title("Payments").AddColumns("kind", "final status", "reason", "count", "p50 ms", "p99 ms");
        foreach (var group in results.GroupBy(result => (result.Payment.Kind, result.FinalStatus, result.Reason)).OrderBy(group => group.Key.Kind))
        {
            var latencies = group.Select(result => result.Elapsed.TotalMilliseconds).Order().ToArray();
            table.AddRow(group.Key.Kind.ToString(), group.Key.FinalStatus, group.Key.Reason ?? "", group.Count().ToString("N0"), Percentile(latencies, 0.5), Percentile(latencies, 0.99));
        }

        var all = results.Select(result => result.Elapsed.TotalMilliseconds).Order().ToArray();
        table.AddRow("[bold]all[/]", "", "", all.Length.ToString("N0"), Percentile(all, 0.5), Percentile(all, 0.99));
        AnsiConsole.Write(table);
        var money = new Table().Title("Money moved (completed payments)").AddColumns("currency", "payments", "amount");
        foreach (var group in results.Where(result => result.FinalStatus == PaymentStatus.Completed).GroupBy(result => result.Payment.Currency))
        {
            money.AddRow(group.Key.Code, group.Count().ToString("N0"), group.Key.Format(group.Sum(result => result.Payment.AmountMinor)));
        }

        AnsiConsole.Write(money);
    }

    private static string Percentile(double[] sorted, double quantile) =>
        sorted.Length == 0 ? "-" : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)].ToString("F0");

    private sealed record DemoResult(DemoPayment Payment, string FinalStatus, string? Reason, TimeSpan Elapsed);
}

public enum DemoKind
{
    Normal,
    InsufficientFunds,
    RiskRejected,
    ReviewApproved,
    ReviewRejected,
}

/// <summary>One planned payment. The same seed gives the same plan, so runs can be compared.</summary>
public sealed record DemoPayment(DemoKind Kind, string Debtor, string Creditor, long AmountMinor, Currency Currency, string IdempotencyKey)
{
    public static IReadOnlyList<DemoPayment> Plan(int count, IReadOnlyList<(string Id, Currency Currency, bool Low)> accounts, int seed)
    {
        var random = new Random(seed);
        var run = Guid.NewGuid().ToString("N")[..8];
        return Enumerable.Range(0, count).Select(index =>
        {
            var roll = random.Next(100);
            var kind = roll switch
            {
                < 78 => DemoKind.Normal,
                < 86 => DemoKind.InsufficientFunds,
                < 90 => DemoKind.RiskRejected,
                < 95 => DemoKind.ReviewApproved,
                _ => DemoKind.ReviewRejected,
            };
            var currency = random.Next(2) == 0 ? Currency.Usd : Currency.Eur;
            var regular = accounts.Where(account => account.Currency == currency && !account.Low).ToArray();
            var debtor = kind == DemoKind.InsufficientFunds
                ? accounts.First(account => account.Currency == currency && account.Low).Id
                : regular[random.Next(regular.Length)].Id;
            var creditors = regular.Where(account => account.Id != debtor).ToArray();
            var amount = kind switch
            {
                DemoKind.InsufficientFunds => ApiDemo.LowFundsMinor + random.Next(1, 50_000),
                DemoKind.RiskRejected => 2 * LocalSystem.RejectAboveMinor + random.Next(1, 1_000),
                DemoKind.ReviewApproved or DemoKind.ReviewRejected => LocalSystem.ReviewThresholdMinor + random.Next(1, 50_000),
                _ => random.Next(100, 5_000),
            };
            return new DemoPayment(kind, debtor, creditors[random.Next(creditors.Length)].Id, amount, currency, $"demo-{run}-{index:D6}");
        }).ToArray();
    }
}
