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
        const long funds = (WarmUpBatches + MeasuredBatches) * AmountMinor;
        var (run, debtor, creditor) = await OpenFundedPairAsync(ledger, "lh", funds, timeout.Token);

        // Warm-up: the accounts and most in-transit shards (16, chosen by transfer id) get into the ledger's cache.
        for (var index = 0; index < WarmUpBatches; index++)
        {
            Assert.True((await ledger.ApplyBatchAsync(HoldAndSettle.Batch($"{run}-{index}", debtor, creditor, AmountMinor), timeout.Token)).Succeeded);
        }

        var before = await etcd.Cluster.SumMetricAsync("grpc_server_handled_total", Txns, timeout.Token);
        for (var index = WarmUpBatches; index < WarmUpBatches + MeasuredBatches; index++)
        {
            Assert.True((await ledger.ApplyBatchAsync(HoldAndSettle.Batch($"{run}-{index}", debtor, creditor, AmountMinor), timeout.Token)).Succeeded);
        }

        var txns = await etcd.Cluster.SumMetricAsync("grpc_server_handled_total", Txns, timeout.Token) - before;

        // One write each; a read of the hold first would make it two. A few shards not seen in the warm-up are read once.
        Assert.True(txns <= MeasuredBatches * 5 / 4, $"{txns} etcd transactions for {MeasuredBatches} linked hold-and-post batches");
        Assert.Equal((0L, funds), (await LedgerAssert.BalanceAsync(ledger, debtor), await LedgerAssert.BalanceAsync(ledger, creditor)));
        Assert.Equal(0, (await ledger.GetAccountAsync(debtor, timeout.Token))!.PendingDebitMinor);
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }

    /// <summary>A review's finding: the saga's batch retried after its hold was applied alone (the one-by-one path),
    /// and refused at the credit (the creditor closed meanwhile), answered "Not applied" of the hold that is in the
    /// ledger. A transfer applied earlier is reported applied, replayed, with its original entry (ILedger's contract);
    /// the refusal is the credit's, and the post is linked to it.</summary>
    [Fact]
    public async Task ARefusedBatch_ReportsATransferAppliedEarlierAsApplied_NotAsNotApplied()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var (run, debtor, creditor) = await OpenFundedPairAsync(ledger, "lr", 100, timeout.Token);
        var batch = HoldAndSettle.Batch(run, debtor, creditor, AmountMinor);
        var held = Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(batch[0], timeout.Token));
        Assert.IsType<CloseAccountOutcome.Closed>(await ledger.CloseAccountAsync(creditor, timeout.Token));

        var outcome = await ledger.ApplyBatchAsync(batch, timeout.Token);

        Assert.False(outcome.Succeeded);
        Assert.Equal(LedgerError.AccountClosed, outcome.Error!.Code);
        var hold = Assert.IsType<TransferOutcome.Applied>(outcome.Transfers[0]);
        Assert.True(hold.Replayed);
        Assert.Equal((held.Entry.Sequence, held.Entry.TransferId), (hold.Entry.Sequence, hold.Entry.TransferId));
        Assert.Equal(LedgerError.AccountClosed, Assert.IsType<TransferOutcome.Failed>(outcome.Transfers[1]).Error.Code);
        Assert.Equal(LedgerError.LinkedTransferFailed, Assert.IsType<TransferOutcome.Failed>(outcome.Transfers[2]).Error.Code);
        Assert.Equal(AmountMinor, (await ledger.GetAccountAsync(debtor, timeout.Token))!.PendingDebitMinor); // held, nothing more
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }

    /// <summary>A debtor funded with <paramref name="funds"/> and a creditor, both USD, under a new run id.</summary>
    private static async Task<(string Run, AccountId Debtor, AccountId Creditor)> OpenFundedPairAsync(
        Payments.Ledger.Core.EtcdLedger ledger, string prefix, long funds, CancellationToken cancellationToken)
    {
        var run = $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";
        var (debtor, creditor) = (AccountId.Parse($"{run}-debtor"), AccountId.Parse($"{run}-creditor"));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(debtor, Currency.Usd, 0, cancellationToken));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(creditor, Currency.Usd, 0, cancellationToken));
        Assert.True((await ledger.TransferAsync(new TransferRequest.Single(
            TransferId.Parse($"{run}-fund"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(funds, Currency.Usd)), cancellationToken)).IsApplied);
        return (run, debtor, creditor);
    }
}
