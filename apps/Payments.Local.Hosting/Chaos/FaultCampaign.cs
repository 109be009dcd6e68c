using System.Diagnostics;
using Etcdserverpb;
using Payments.Domain;
using Payments.Merchants;

namespace Payments.Local.Hosting.Chaos;

/// <summary>What a campaign found.</summary>
/// <param name="PaymentSuccess">completed ÷ (completed + failed by platform faults); business refusals do not count.</param>
/// <param name="AnsweredWithinBudget">Client requests answered without a 5xx or timeout within the 30 s retry budget.</param>
public sealed record CampaignResult(
    int Payments, int Faults, double PaymentSuccess, double AnsweredWithinBudget, int Stuck, int StatusMismatches,
    int BalanceMismatches, int IdempotencyViolations, int InvariantViolations, double EtcdDbSizeMb, int Restarts, IReadOnlyList<string> Problems,
    int WebhooksMissing = 0)
{
    public bool Clean => Stuck == 0 && StatusMismatches == 0 && BalanceMismatches == 0 && IdempotencyViolations == 0 && InvariantViolations == 0
                         && WebhooksMissing == 0;
}

/// <summary>The fault campaign (issue 10): the local system, supervised as Kubernetes would, under steady payments from
/// several clients with Idempotency-Keys, while a fault hits a random process every few seconds (<see cref="FaultInjector"/>).
/// Afterwards every payment must be terminal, every status true to the ledger, every balance what the completed payments
/// imply, every key resubmitted name the same payment, and the ledger's invariants hold.</summary>
public static class FaultCampaign
{
    public const long FundsMinor = 1_000_000_000;
    /// <summary>Debtors per client: enough that the risk engine's velocity rule (50 payments per debtor in 10 minutes)
    /// does not turn a long campaign into a review queue; reviews still come from the payments above the threshold.</summary>
    public const int AccountsPerClient = 32;

    /// <summary>After the faults stop: how long the payments still open may take to end (the sweeper's cycles included).</summary>
    public static readonly TimeSpan SettleBound = TimeSpan.FromMinutes(6);

    /// <summary>Reasons that are the platform's fault, not the payment's (they count against <see cref="CampaignResult.PaymentSuccess"/>).</summary>
    private static readonly HashSet<string> PlatformReasons = ["ledger-unavailable", "risk-unavailable", "compensation-failed", "workflow-failed"];

    public static async Task<CampaignResult> RunAsync(
        TimeSpan duration, int clients, TimeSpan faultInterval, int seed, Action<string> progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(progress);
        var random = new Random(seed);
        await using var system = await LocalSystem.StartAsync(0, progress, cancellationToken, supervise: true);
        await using var witness = await WebhookWitness.StartAsync();
        var actors = new List<(CampaignClient Client, HttpClient Http, HttpClient Reviewer)>();
        for (var client = 0; client < clients; client++)
        {
            var http = await MerchantClients.CreateAsync(system, $"chaos-merchant-{client}", TimeSpan.FromSeconds(10), cancellationToken);
            await witness.RegisterAsync(http, $"chaos-merchant-{client}", cancellationToken);
            var reviewer = await MerchantClients.CreateAsync(
                system, $"chaos-merchant-{client}", TimeSpan.FromSeconds(10), cancellationToken, ApiScopes.PaymentsRead, ApiScopes.PaymentsApprove);
            var accounts = await MerchantClients.OpenFundedAccountsAsync(
                http, Enumerable.Range(0, AccountsPerClient).Select(index => $"chaos-{client}-{index}"), "EUR", FundsMinor, cancellationToken);
            actors.Add((new CampaignClient(http, reviewer, client, accounts, new Random(random.Next())), http, reviewer));
        }

        var injector = new FaultInjector(system, new Random(random.Next()), progress);
        await DriveAsync(system, actors.Select(actor => actor.Client).ToArray(), injector, duration, faultInterval, progress, cancellationToken);
        var result = await CheckAsync(system, actors.Select(actor => actor.Client).ToArray(), injector, witness, progress, cancellationToken);
        foreach (var (_, http, reviewer) in actors)
        {
            http.Dispose();
            reviewer.Dispose();
        }

        return result;
    }

    private static async Task DriveAsync(
        LocalSystem system, CampaignClient[] clients, FaultInjector injector, TimeSpan duration, TimeSpan faultInterval, Action<string> progress,
        CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var load = Task.WhenAll(clients.Select(client => Task.Run(() => client.RunAsync(clock, duration, cancellationToken), cancellationToken)));
        var nextFault = faultInterval;
        while (!load.IsCompleted)
        {
            await Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(1), cancellationToken));
            if (clock.Elapsed >= nextFault && clock.Elapsed < duration)
            {
                await injector.InjectAsync(cancellationToken);
                nextFault = clock.Elapsed + faultInterval; // from now: a late tick must not fire a burst of faults
            }

            var payments = clients.Sum(client => client.Payments.Count);
            progress($"chaos: {clock.Elapsed.TotalSeconds,5:F0} s  {payments,6} payments  {injector.Injected.Count,4} faults  {system.Supervisor?.Restarts ?? 0,4} restarts");
        }

        await load;
        await injector.SettleAsync(cancellationToken);
    }

    private static async Task<CampaignResult> CheckAsync(
        LocalSystem system, CampaignClient[] clients, FaultInjector injector, WebhookWitness witness, Action<string> progress, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var payments = clients.SelectMany(client => client.Payments.Select(payment => (client, payment))).ToArray();
        progress($"chaos: faults over; {payments.Count(pair => !PaymentStatus.IsTerminal(pair.payment.Status))} of {payments.Length} payments still open, asking again");
        await AskAgainAsync(payments, cancellationToken);
        var stuck = payments.Where(pair => !PaymentStatus.IsTerminal(pair.payment.Status)).Select(pair => pair.payment).ToArray();
        problems.AddRange(stuck.Take(10).Select(payment => $"stuck: {payment.Key} {payment.PaymentId} {payment.Status}"));
        var idempotency = await IdempotencyViolationsAsync(payments, problems, cancellationToken);
        var balances = await BalanceMismatchesAsync(system, payments.Select(pair => pair.payment).ToArray(), problems, cancellationToken);
        var (checks, statusMismatches) = await SystemChecks.RunAsync(system, cancellationToken);
        problems.AddRange(checks.Where(check => !check.Holds).Select(check => $"{check.Name}: {check.Detail}"));
        var completed = payments.Count(pair => pair.payment.Status == PaymentStatus.Completed);
        var platformFailed = payments.Count(pair => pair.payment.Reason is { } reason && PlatformReasons.Contains(reason));
        var requests = clients.Sum(client => client.Requests);
        var finished = payments.Where(pair => pair.payment.PaymentId is not null && PaymentStatus.IsTerminal(pair.payment.Status))
            .Select(pair => (pair.payment.PaymentId!, pair.payment.Status)).ToArray();
        progress($"chaos: waiting for the final events of {finished.Length} payments at the merchants' webhook endpoints");
        var missing = await witness.MissingAsync(finished, cancellationToken);
        problems.AddRange(missing.Take(10).Select(id => $"webhook: event {id} never accepted"));
        if (witness.BadSignatures > 0)
        {
            problems.Add($"webhook: {witness.BadSignatures} deliveries with a bad signature");
        }

        return new CampaignResult(
            payments.Length, injector.Injected.Count, Ratio(completed, completed + platformFailed),
            Ratio(clients.Sum(client => client.Answered), requests), stuck.Length,
            statusMismatches, balances, idempotency, checks.Count(check => !check.Holds && check.Name != SystemChecks.StatusCheckName),
            Math.Round(await LargestDbSizeAsync(system, cancellationToken) / (1024.0 * 1024.0), 1), system.Supervisor?.Restarts ?? 0, problems,
            missing.Count + (int)witness.BadSignatures);
    }

    /// <summary>Every payment not yet terminal is followed again (in parallel, bounded by <see cref="SettleBound"/>).</summary>
    private static async Task AskAgainAsync((CampaignClient Client, CampaignPayment Payment)[] payments, CancellationToken cancellationToken)
    {
        var open = payments.Where(pair => !PaymentStatus.IsTerminal(pair.Payment.Status)).ToArray();
        await Parallel.ForEachAsync(open, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = cancellationToken }, async (pair, token) =>
        {
            var asking = Stopwatch.StartNew();
            while (pair.Payment.PaymentId is null && asking.Elapsed < SettleBound)
            {
                pair.Payment.PaymentId = await pair.Client.SubmitAsync(pair.Payment, token); // never answered: ask with the same key
            }

            if (pair.Payment.PaymentId is not null)
            {
                await pair.Client.FollowAsync(pair.Payment, SettleBound, token);
            }
        });
    }

    /// <summary>Each key submitted again with the same body must name the same payment.</summary>
    private static async Task<int> IdempotencyViolationsAsync(
        (CampaignClient Client, CampaignPayment Payment)[] payments, List<string> problems, CancellationToken cancellationToken)
    {
        var violations = 0;
        await Parallel.ForEachAsync(payments, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = cancellationToken }, async (pair, token) =>
        {
            var again = await pair.Client.SubmitAsync(pair.Payment, token);
            if (again is null || again != pair.Payment.PaymentId)
            {
                Interlocked.Increment(ref violations);
                lock (problems)
                {
                    problems.Add($"idempotency: {pair.Payment.Key} named {pair.Payment.PaymentId}, now {again ?? "no answer"}");
                }
            }
        });
        return violations;
    }

    /// <summary>Every account's balance equals its funding plus the completed payments into it, less those out of it.</summary>
    private static async Task<int> BalanceMismatchesAsync(LocalSystem system, CampaignPayment[] payments, List<string> problems, CancellationToken cancellationToken)
    {
        var completed = payments.Where(payment => payment.Status == PaymentStatus.Completed).ToArray();
        var mismatches = 0;
        foreach (var account in payments.SelectMany(payment => new[] { payment.Debtor, payment.Creditor }).Distinct(StringComparer.Ordinal))
        {
            var expected = FundsMinor + completed.Where(payment => payment.Creditor == account).Sum(payment => payment.AmountMinor)
                - completed.Where(payment => payment.Debtor == account).Sum(payment => payment.AmountMinor);
            var actual = (await system.Ledger.GetAccountAsync(AccountId.Parse(account), cancellationToken))?.BalanceMinor;
            if (actual != expected)
            {
                mismatches++;
                problems.Add($"balance: {account} holds {actual}, the completed payments imply {expected}");
            }
        }

        return mismatches;
    }

    /// <summary>The largest member database file among the members that answer (one may still be restarting).</summary>
    private static async Task<long> LargestDbSizeAsync(LocalSystem system, CancellationToken cancellationToken)
    {
        var largest = 0L;
        for (var member = 0; member < system.Etcd.MemberCount; member++)
        {
            try
            {
                var status = await system.Etcd.MemberMaintenance(member).StatusAsync(
                    new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken);
                largest = Math.Max(largest, status.DbSize);
            }
            catch (Grpc.Core.RpcException)
            {
                // down or restarting: the others tell the size (they hold the same data)
            }
        }

        return largest;
    }

    private static double Ratio(long part, long whole) => whole == 0 ? 1 : Math.Round(part / (double)whole, 4);
}
