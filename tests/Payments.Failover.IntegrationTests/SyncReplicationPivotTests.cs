using System.Globalization;
using Dapr.Workflow;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Payments.Domain;
using Payments.Etcd.Regions;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Workflows;
using Payments.Testing;

namespace Payments.Failover.IntegrationTests;

/// <summary>Sync replication with Cosmos DB unreachable for 90 s right after the settlement committed: the ledger
/// answers "committed, not yet replicated" again and again; the saga waits it out at its pivot and the payment ends
/// completed — never compensated (before, it ended failed: compensation-failed although its money had moved).</summary>
[Collection(FailoverCollection.Name)]
public sealed class SyncReplicationPivotTests(FailoverFixture fixture)
{
    public static readonly TimeSpan CosmosOutage = TimeSpan.FromSeconds(90);
    public static readonly TimeSpan SagaBound = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task CosmosUnreachableFor90s_AfterTheSettlementCommitted_ThePaymentCompletes_NeverCompensated()
    {
        using var deadline = new CancellationTokenSource(SagaBound);
        var timeout = deadline.Token;
        var prefix = EtcdClusterFixture.NewPrefix();
        Assert.True(await new RegionEpochMirror(fixture.Connection, prefix).HoldAsync(1, TimeSpan.FromMinutes(10), timeout)); // region-a active
        await using var proxy = new TcpProxy(fixture.Cosmos.Port);
        var settlementsRefused = 0;
        Task? restore = null;
        await using var ledgerService = await InProcessApp.StartLedgerServiceAsync(fixture.Cluster, prefix, RegionSettings(proxy), async (context, next) =>
        {
            if (context.Request.Path.Value!.EndsWith("/batches", StringComparison.Ordinal) && restore is null)
            {
                // The settlement's first request: Cosmos DB goes away now, and comes back after the outage.
                proxy.Cut();
                restore = Task.Delay(CosmosOutage, CancellationToken.None).ContinueWith(_ => proxy.Restore(), TaskScheduler.Default);
            }

            await next();
            // The saga sends hold and settlement as one batch; when its answer is "not yet replicated" it takes the steps
            // one by one (the hold's replay first), so the outage is met by either kind of request.
            if (restore is not null && context.Response.StatusCode == StatusCodes.Status503ServiceUnavailable
                && (context.Request.Path.Value!.EndsWith("/batches", StringComparison.Ordinal) || context.Request.Path.Value!.EndsWith("/transfers", StringComparison.Ordinal)))
            {
                Interlocked.Increment(ref settlementsRefused);
            }
        });
        var sidecar = new SidecarProcess();
        try
        {
            await sidecar.InitializeAsync();
            await using var worker = await SagaWorker.StartAsync(
                sidecar, fixture.Cluster, prefix, InProcessApp.BaseUrl(ledgerService), reviewThresholdMinor: 1_000_000);
            await PayThroughTheOutageAsync(worker, prefix, () => settlementsRefused, timeout);
            await restore!;
        }
        finally
        {
            await sidecar.DisposeAsync();
        }
    }

    private async Task PayThroughTheOutageAsync(WebApplication worker, string prefix, Func<int> settlementsRefused, CancellationToken timeout)
    {
        var ledger = new EtcdLedger(fixture.Connection, prefix + "ledger/", TimeProvider.System, NullLogger<EtcdLedger>.Instance, () => new RegionEpochFence(prefix, 1));
        var payment = await FundedPaymentAsync(ledger, timeout);

        var workflows = worker.Services.GetRequiredService<DaprWorkflowClient>();
        await workflows.ScheduleBoundedAsync(nameof(PaymentWorkflowV2), payment.PaymentId, payment);
        var state = await workflows.WaitForWorkflowCompletionAsync(payment.PaymentId, getInputsAndOutputs: true, timeout);

        Assert.Equal(PaymentOutcome.Completed(), state.ReadOutputAs<PaymentOutcome>());
        Assert.True(settlementsRefused() >= 3, $"the outage hit the settled payment's requests only {settlementsRefused()} times");
        var journal = await new JournalReader(ledger).ReadAllAsync(10_000, timeout);
        Assert.Single(journal, entry => entry.TransferId == PaymentTransfers.Credit(payment));
        Assert.DoesNotContain(journal, entry => entry.TransferId == PaymentTransfers.Void(payment));
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout);
    }

    private Dictionary<string, string> RegionSettings(TcpProxy proxy) => new()
    {
        ["Region:Name"] = "region-a",
        ["Replication:Mode"] = "Sync",
        ["Replication:SyncTimeout"] = "00:00:02",
        ["Cosmos:Endpoint"] = $"https://127.0.0.1:{proxy.Port.ToString(CultureInfo.InvariantCulture)}/",
        ["Cosmos:Key"] = Payments.LocalCluster.LocalCosmosServer.Key,
        ["Cosmos:LimitToEndpoint"] = "true",
        ["Cosmos:AcceptAnyServerCertificate"] = "true", // the local server's self-signed certificate; tests only
        ["Cosmos:Database"] = "daprpayments-tests",
        ["Cosmos:JournalContainer"] = $"journal-{Guid.NewGuid():N}",
    };

    private static async Task<PaymentInput> FundedPaymentAsync(EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var (debtor, creditor) = (AccountId.Parse($"d-{Guid.NewGuid():N}"), AccountId.Parse($"c-{Guid.NewGuid():N}"));
        await ledger.OpenAccountAsync(debtor, Currency.Eur, 0, cancellationToken);
        await ledger.OpenAccountAsync(creditor, Currency.Eur, 0, cancellationToken);
        var funding = new TransferRequest.Single(TransferId.Parse($"fund-{debtor}"), AccountId.ExternalFunding(Currency.Eur), debtor, new Money(10_000, Currency.Eur))
        {
            IssuedAt = DateTimeOffset.UtcNow,
        };
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(funding, cancellationToken));
        return new PaymentInput(new PaymentOrder($"pay-{Guid.NewGuid():N}", "merchant-a", debtor.Value, creditor.Value, 2_500, "EUR", null), TimeSpan.FromMinutes(5));
    }
}
