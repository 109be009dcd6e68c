using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;
using Payments.Ledger.Core.Model;
using Payments.LocalCluster;
using Spectre.Console;

namespace Payments.Local;

/// <summary>The local main job: a real 3-member etcd cluster, the ledger on it, a batch of payments in the saga's
/// ledger shape (hold on the debtor → credit the creditor from in-transit → post the hold), and the invariant checks.</summary>
public static class LedgerDemo
{
    public const string LedgerPrefix = "/daprpayments/ledger/";
    public const long InitialFundsMinor = 100_000;
    public static readonly TimeSpan HoldTimeout = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan AbandonedHoldTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan ExpiryWaitBound = TimeSpan.FromSeconds(60);
    private static readonly Currency[] Currencies = [Currency.Usd, Currency.Eur];

    public static async Task<bool> RunAsync(DemoOptions options, CancellationToken cancellationToken)
    {
        using var loggers = LoggerFactory.Create(builder => builder.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        await using var cluster = await LocalEtcdCluster.StartAsync(
            3, message => AnsiConsole.MarkupLineInterpolated($"[grey]{message}[/]"), cancellationToken);
        using var etcd = EtcdConnection.Create(cluster.ClientEndpoints);
        var ledger = new EtcdLedger(etcd, LedgerPrefix, TimeProvider.System, loggers.CreateLogger<EtcdLedger>());
        var sweeper = new HoldExpirySweeper(ledger, $"local-{Environment.ProcessId}", loggers.CreateLogger<HoldExpirySweeper>());
        using var stopSweeper = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sweeping = sweeper.RunAsync(TimeSpan.FromMilliseconds(500), stopSweeper.Token);

        var accounts = await OpenAndFundAsync(ledger, options.AccountsPerCurrency, cancellationToken);
        var plan = PaymentPlan.Create(options.Payments, accounts, seed: 2026);
        var results = await RunPaymentsAsync(ledger, plan, options.Workers, cancellationToken);
        var expired = await WaitForAbandonedHoldsAsync(ledger, plan, cancellationToken);
        await stopSweeper.CancelAsync();
        await sweeping;

        return await ReportAsync(ledger, results, expired, cancellationToken);
    }

    private static async Task<IReadOnlyList<(AccountId Id, Currency Currency)>> OpenAndFundAsync(
        EtcdLedger ledger, int perCurrency, CancellationToken cancellationToken)
    {
        var accounts = new List<(AccountId, Currency)>();
        foreach (var currency in Currencies)
        {
            for (var index = 0; index < perCurrency; index++)
            {
                var id = AccountId.Parse($"customer-{currency.Code.ToLowerInvariant()}-{index:D3}");
                var opened = await ledger.OpenAccountAsync(id, currency, overdraftLimitMinor: 0, cancellationToken);
                if (opened is OpenAccountOutcome.Failed failed)
                {
                    throw new InvalidOperationException($"Could not open {id}: {failed.Error}");
                }

                var deposit = new TransferRequest.Single(
                    TransferId.Parse($"deposit-{id}"), AccountId.ExternalFunding(currency), id, new Money(InitialFundsMinor, currency), "opening deposit");
                await ledger.TransferAsync(deposit, cancellationToken);
                accounts.Add((id, currency));
            }
        }

        AnsiConsole.MarkupLineInterpolated($"Opened and funded {accounts.Count} accounts with {Currency.Usd.Format(InitialFundsMinor)} / {Currency.Eur.Format(InitialFundsMinor)} each.");
        return accounts;
    }

    private static async Task<ConcurrentBag<PaymentResult>> RunPaymentsAsync(
        EtcdLedger ledger, IReadOnlyList<PlannedPayment> plan, int workers, CancellationToken cancellationToken)
    {
        var results = new ConcurrentBag<PaymentResult>();
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask($"{plan.Count} payments, {workers} concurrent clients", maxValue: plan.Count);
                await Parallel.ForEachAsync(
                    plan,
                    new ParallelOptions { MaxDegreeOfParallelism = workers, CancellationToken = cancellationToken },
                    async (payment, token) =>
                    {
                        var clock = Stopwatch.StartNew();
                        var status = await PaymentSteps.ExecuteAsync(ledger, payment, token);
                        results.Add(new PaymentResult(payment, status, clock.Elapsed));
                        task.Increment(1);
                    });
            });
        return results;
    }

    /// <summary>Polls, bounded, until the sweep has expired every abandoned hold.</summary>
    private static async Task<int> WaitForAbandonedHoldsAsync(EtcdLedger ledger, IReadOnlyList<PlannedPayment> plan, CancellationToken cancellationToken)
    {
        var abandoned = plan.Where(payment => payment.Kind == PaymentKind.AbandonedHold).Select(payment => payment.HoldId).ToHashSet();
        var waited = Stopwatch.StartNew();
        var reader = new JournalReader(ledger);
        await AnsiConsole.Status().StartAsync($"Waiting for the expiry sweep to release {abandoned.Count} abandoned holds…", async _ =>
        {
            while (waited.Elapsed < ExpiryWaitBound)
            {
                var journal = await reader.ReadAllAsync(LedgerReport.MaxJournalEntries, cancellationToken);
                if (journal.Count(entry => entry.Kind == TransferKind.ExpirePending && abandoned.Contains(entry.PendingId!)) == abandoned.Count)
                {
                    return;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
            }
        });
        return abandoned.Count;
    }

    private static async Task<bool> ReportAsync(
        EtcdLedger ledger, ConcurrentBag<PaymentResult> results, int abandonedHolds, CancellationToken cancellationToken)
    {
        var report = await LedgerReport.BuildAsync(ledger, cancellationToken);
        var table = new Table().Title("Payments").AddColumns("final status", "count", "p50 ms", "p99 ms");
        foreach (var group in results.GroupBy(result => result.Status).OrderBy(group => group.Key))
        {
            var latencies = group.Select(result => result.Elapsed.TotalMilliseconds).Order().ToArray();
            table.AddRow(group.Key.ToString(), group.Count().ToString("N0"), Percentile(latencies, 0.50), Percentile(latencies, 0.99));
        }

        var all = results.Select(result => result.Elapsed.TotalMilliseconds).Order().ToArray();
        table.AddRow("[bold]all[/]", all.Length.ToString("N0"), Percentile(all, 0.50), Percentile(all, 0.99));
        AnsiConsole.Write(table);

        var money = new Table().Title("Money moved (completed payments)").AddColumns("currency", "payments", "amount");
        foreach (var group in results.Where(result => result.Status == PaymentStatus.Completed).GroupBy(result => result.Payment.Amount.Currency))
        {
            money.AddRow(group.Key.Code, group.Count().ToString("N0"), group.Key.Format(group.Sum(result => result.Payment.Amount.AmountMinor)));
        }

        AnsiConsole.Write(money);
        AnsiConsole.MarkupLineInterpolated($"Abandoned holds released by the expiry sweep: {abandonedHolds}");
        return report.Print();
    }

    private static string Percentile(double[] sorted, double quantile) =>
        sorted.Length == 0 ? "-" : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)].ToString("F1");

    private sealed record PaymentResult(PlannedPayment Payment, PaymentStatus Status, TimeSpan Elapsed);
}
