using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>The saga's money step is one linked batch: hold the debtor's funds, credit the creditor from in-transit,
/// post the hold. Its hold record is new like its transfers, so once the accounts are known the batch is one etcd
/// transaction — no read of a hold that the same batch creates.</summary>
[Collection(EtcdCollection.Name)]
public sealed class LinkedHoldAndPostTests(EtcdClusterFixture etcd)
{
    private const int WarmUpBatches = 40;
    private const int MeasuredBatches = 20;
    private const long AmountMinor = 25;
    private static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(2);
    private static readonly string[] Txns = ["grpc_method=\"Txn\"", "grpc_service=\"etcdserverpb.KV\""];

    [Fact]
    public async Task AHoldAndItsPost_InOneBatch_AreOneEtcdTransaction_OnceTheAccountsAreKnown()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var run = Guid.NewGuid().ToString("N")[..8];
        var (debtor, creditor) = (AccountId.Parse($"lh-{run}-debtor"), AccountId.Parse($"lh-{run}-creditor"));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(debtor, Currency.Usd, 0, timeout.Token));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(creditor, Currency.Usd, 0, timeout.Token));
        const long funds = (WarmUpBatches + MeasuredBatches) * AmountMinor;
        Assert.True((await ledger.TransferAsync(new TransferRequest.Single(
            TransferId.Parse($"lh-{run}-fund"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(funds, Currency.Usd)), timeout.Token)).IsApplied);

        // Warm-up: the accounts and most in-transit shards (16, chosen by transfer id) get into the ledger's cache.
        for (var index = 0; index < WarmUpBatches; index++)
        {
            Assert.True((await ledger.ApplyBatchAsync(HoldAndSettle.Batch($"lh-{run}-{index}", debtor, creditor, AmountMinor), timeout.Token)).Succeeded);
        }

        var before = await etcd.Cluster.SumMetricAsync("grpc_server_handled_total", Txns, timeout.Token);
        for (var index = WarmUpBatches; index < WarmUpBatches + MeasuredBatches; index++)
        {
            Assert.True((await ledger.ApplyBatchAsync(HoldAndSettle.Batch($"lh-{run}-{index}", debtor, creditor, AmountMinor), timeout.Token)).Succeeded);
        }

        var txns = await etcd.Cluster.SumMetricAsync("grpc_server_handled_total", Txns, timeout.Token) - before;

        // One write each; a read of the hold first would make it two. A few shards not seen in the warm-up are read once.
        Assert.True(txns <= MeasuredBatches * 5 / 4, $"{txns} etcd transactions for {MeasuredBatches} linked hold-and-post batches");
        Assert.Equal((0L, funds), (await LedgerAssert.BalanceAsync(ledger, debtor), await LedgerAssert.BalanceAsync(ledger, creditor)));
        Assert.Equal(0, (await ledger.GetAccountAsync(debtor, timeout.Token))!.PendingDebitMinor);
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }
}
