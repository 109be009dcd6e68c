using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Xunit.Abstractions;

namespace Payments.Containers.Tests;

/// <summary>Each scenario runs a batch of payments through the edge load balancer while one part of the system
/// fails, heals the fault, and ends with <see cref="PaymentBatch.AssertExactlyOnceAsync"/>: every payment terminal (API
/// and etcd), conservation, and no payment or transfer applied twice. The scenarios share one running system (its
/// start is the expensive part); each leaves it healthy for the next and uses accounts of its own.</summary>
[Collection("containers")]
public sealed class ContainerScenarioTests(ContainerSystem system, ITestOutputHelper output)
{
    public const int Payments = 60;
    public const int Clients = 8;
    public const int AccountsPerScenario = 8;
    public const long FundsMinor = 1_000_000;
    /// <summary>The fault is injected once this many payments are accepted: the batch is under way, most of it is not.</summary>
    public const int InjectAfterAccepted = 12;
    /// <summary>How long a network cut or a frozen member lasts: the length of the fault, not a wait for state.</summary>
    public static readonly TimeSpan FaultDuration = TimeSpan.FromSeconds(4);
    public static readonly TimeSpan UnderWayTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task HappyPathAndCompensatedPath_AcrossContainers()
    {
        var clock = Stopwatch.StartNew();
        await system.WaitUntilReadyAsync();
        var batch = new PaymentBatch(system.Client, "happy", AccountsPerScenario, FundsMinor);
        await batch.OpenAccountsAsync();
        var results = await batch.RunAsync(batch.Plan(Payments / 2, seed: 1), Clients);
        await batch.AssertExactlyOnceAsync(system, results, _ => "completed");

        // Compensation across containers: a payment waits for a reviewer, its creditor is closed meanwhile (an
        // operator's action straight on the ledger), the reviewer approves; the hold is taken, settling is refused and
        // the saga voids the hold — the debtor keeps every cent.
        var compensation = new PaymentBatch(system.Client, "compensated", accounts: 1, FundsMinor);
        await compensation.OpenAccountsAsync();
        var (debtor, creditor) = (compensation.AccountIds[0], "compensated-creditor"); // empty, so it can be closed
        using (var open = await compensation.SendAsync(HttpMethod.Post, "/v1/accounts", new { accountId = creditor, currency = PaymentBatch.Currency }, idempotencyKey: null))
        {
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        }

        var payment = new PlannedPayment("compensated-payment", debtor, creditor, ContainerSystem.ReviewThresholdMinor + 1);
        var (paymentId, _) = await compensation.CreateAsync(payment);
        await compensation.WaitForTerminalAsync(paymentId, until: "awaiting_approval");
        Assert.IsType<CloseAccountOutcome.Closed>(await system.LedgerStore.CloseAccountAsync(AccountId.Parse(creditor), CancellationToken.None));
        using (var approve = await system.ReviewerClient.PostAsJsonAsync($"/v1/payments/{paymentId}/approve", new { }))
        {
            Assert.Equal(HttpStatusCode.Accepted, approve.StatusCode);
        }

        var (status, reason) = await compensation.WaitForTerminalAsync(paymentId);
        Assert.Equal(("compensated", "account-closed"), (status, reason));
        var debtorAccount = (await system.LedgerStore.GetAccountAsync(AccountId.Parse(debtor), CancellationToken.None))!;
        Assert.Equal((FundsMinor, 0L), (debtorAccount.BalanceMinor, debtorAccount.PendingDebitMinor));
        Report(clock, results);
    }

    [Fact]
    public async Task OrchestratorContainerKilledMidBatch_AFreshOneCompletesTheBatch()
    {
        await RunWithFaultAsync("orchestrator-kill", async () =>
        {
            await DockerCli.KillAsync(system.Orchestrator.Name);
            await system.StartFreshOrchestratorAsync();
        });
    }

    [Fact]
    public async Task EtcdLeaderKilledMidBatch_AndBroughtBack()
    {
        // The hardest member to lose: etcd-0 is the one every app's connection pins first, so it is made the leader
        // before the batch; it stays dead until the batch is done, which must finish on the other two.
        await system.WaitUntilReadyAsync();
        await system.MakeEtcdLeaderAsync(0);
        var leader = -1;
        try
        {
            await RunWithFaultAsync("etcd-leader-kill", async () =>
            {
                leader = await system.WaitForEtcdLeaderAsync();
                await DockerCli.KillAsync(system.EtcdContainers[leader].Name);
                output.WriteLine($"killed etcd-{leader} (the leader)");
                await system.WaitForEtcdLeaderAsync(); // the other two elect a leader and serve on
            }, payments: 2 * Payments, clients: 3 * Clients); // more writes in flight when the leader dies
        }
        finally
        {
            // Brought back after the batch, whatever became of it: the scenarios after this one share the system.
            if (leader >= 0)
            {
                await DockerCli.StartAsync(system.EtcdContainers[leader].Name);
            }
        }

        await system.WaitForEtcdLeaderAsync(everyMember: true); // it rejoined
        await system.WaitUntilReadyAsync();
    }

    [Fact]
    public async Task LedgerContainerDisconnectedFromTheNetwork_ThenReconnected()
    {
        await RunWithFaultAsync("ledger-disconnect", async () =>
        {
            await DockerCli.DisconnectAsync(system.NetworkName, system.Ledger.Name);
            await Task.Delay(FaultDuration);
            await DockerCli.ConnectAsync(system.NetworkName, system.Ledger.Name, "ledger");
        });
    }

    [Fact]
    public async Task EtcdMemberPaused_DuringLoad_ThenUnpaused()
    {
        // etcd-0 is the member every app's connection pins first: frozen (sockets open, no answers) for the rest of
        // the batch, which must finish on the other two — the case a plain round-robin client handles worst.
        var paused = false;
        try
        {
            await RunWithFaultAsync("etcd-pause", async () =>
            {
                await system.EtcdContainers[0].PauseAsync();
                paused = true;
            });
        }
        finally
        {
            if (paused)
            {
                await system.EtcdContainers[0].UnpauseAsync(); // whatever became of the batch: later scenarios share it
            }
        }

        await system.WaitForEtcdLeaderAsync(everyMember: true);
        await system.WaitUntilReadyAsync();
    }

    [Fact]
    public async Task ApiReplicaKilledBehindTheLoadBalancer_ClientsRetryingWithTheirKeysSeeEachPaymentOnce()
    {
        var killed = false;
        try
        {
            await RunWithFaultAsync("api-replica-kill", async () =>
            {
                await DockerCli.KillAsync(system.Apis[0].Name);
                killed = true;
            });
        }
        finally
        {
            if (killed)
            {
                await system.StartFreshApiAsync(0); // for the scenarios after this one, whatever became of this one
            }
        }
    }

    private async Task RunWithFaultAsync(string scenario, Func<Task> fault, int payments = Payments, int clients = Clients)
    {
        var clock = Stopwatch.StartNew();
        await system.WaitUntilReadyAsync();
        var batch = new PaymentBatch(system.Client, scenario, AccountsPerScenario, FundsMinor);
        await batch.OpenAccountsAsync();
        var running = batch.RunAsync(batch.Plan(payments, seed: scenario.Length), clients);
        var underWay = Stopwatch.StartNew();
        while (batch.Accepted < InjectAfterAccepted && !running.IsCompleted)
        {
            Assert.True(underWay.Elapsed < UnderWayTimeout, $"{scenario}: only {batch.Accepted} payments accepted after {UnderWayTimeout}.");
            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }

        Assert.False(running.IsCompleted, $"{scenario}: the batch finished before the fault; it would test nothing.");
        var injectedAt = batch.Accepted;
        await fault();
        var results = await running;
        output.WriteLine($"{scenario}: fault injected after {injectedAt} of {payments} payments were accepted");
        foreach (var retry in batch.Retries)
        {
            output.WriteLine(retry);
        }

        await batch.AssertExactlyOnceAsync(system, results, _ => "completed");
        Report(clock, results);
    }

    private void Report(Stopwatch clock, IReadOnlyList<PaymentResult> results)
    {
        var slowest = results.MaxBy(result => result.Elapsed)!;
        output.WriteLine($"{results.Count} payments, {results.Count(result => result.Attempts > 1)} needed a retry of their POST; " +
            $"slowest {slowest.Plan.IdempotencyKey} {slowest.Elapsed.TotalSeconds:F1} s ({slowest.Attempts} attempts); " +
            $"scenario took {clock.Elapsed.TotalSeconds:F1} s (system start: {system.StartTime.TotalSeconds:F1} s)");
    }
}
