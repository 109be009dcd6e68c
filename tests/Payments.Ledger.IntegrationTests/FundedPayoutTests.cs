using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>A payout out of in-transit that names its funding hold (the saga's credit, as the ledger service binds it)
/// is applied only for exactly what that hold brought in: in-transit has no limit, so without this a compromised
/// orchestrator could pay a customer more than its hold took from the debtor.</summary>
[Collection(EtcdCollection.Name)]
public sealed class FundedPayoutTests(EtcdClusterFixture etcd)
{
    private static readonly AccountId InTransit = AccountId.InTransit(Currency.Usd);
    private static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task APayout_IsApplied_OnlyForItsHoldsAmountCurrencyAndAccount_AndNothingMovesWhenRefused()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var (debtor, creditor, run) = await OpenFundedPairAsync(ledger, timeout.Token);
        var hold = await HoldAsync(ledger, $"{run}-a", debtor, 100, timeout.Token);

        // More than the hold, no such hold, less than the hold: each refused, with the whole batch.
        await AssertUnfundedAsync(ledger, [Payout($"{run}-a", creditor, 101, hold), Post($"{run}-a", hold)], timeout.Token);
        await AssertUnfundedAsync(ledger, [Payout($"{run}-a", creditor, 100, TransferId.Parse($"{run}-nohold"))], timeout.Token);
        await AssertUnfundedAsync(ledger, [Payout($"{run}-a", creditor, 100, hold) with { Amount = new Money(99, Currency.Usd) }], timeout.Token);
        // Its own amount, but without the post: the hold could still be voided, so in-transit would pay what it never got.
        await AssertUnfundedAsync(ledger, [Payout($"{run}-a", creditor, 100, hold)], timeout.Token);
        Assert.Equal((1_000L, 100L, 0L), await StateAsync(ledger, debtor, creditor, timeout.Token));

        // Its own amount, credit before the post (the saga's order): applied, and the payout is the hold's.
        Assert.True((await ledger.ApplyBatchAsync([Payout($"{run}-a", creditor, 100, hold), Post($"{run}-a", hold)], timeout.Token)).Succeeded);
        Assert.Equal((900L, 0L, 100L), await StateAsync(ledger, debtor, creditor, timeout.Token));

        // The post before the payout funds it too.
        var second = await HoldAsync(ledger, $"{run}-b", debtor, 30, timeout.Token);
        Assert.True((await ledger.ApplyBatchAsync([Post($"{run}-b", second), Payout($"{run}-b", creditor, 30, second)], timeout.Token)).Succeeded);
        Assert.Equal((870L, 0L, 130L), await StateAsync(ledger, debtor, creditor, timeout.Token));
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }

    [Fact]
    public async Task AVoidedHold_FundsNoPayout()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var (debtor, creditor, run) = await OpenFundedPairAsync(ledger, timeout.Token);
        var hold = await HoldAsync(ledger, $"{run}-v", debtor, 100, timeout.Token);
        Assert.True((await ledger.TransferAsync(new TransferRequest.VoidPending(TransferId.Parse($"{run}-v-void"), hold), timeout.Token)).IsApplied);

        // Alone (the ledger service never lets it come alone, but the core does not rely on that): refused with the
        // code its post gets, so the saga records the real reason.
        var outcome = await ledger.ApplyBatchAsync([Payout($"{run}-v", creditor, 100, hold)], timeout.Token);
        Assert.Equal(LedgerError.PendingTransferAlreadyVoided, outcome.Error!.Code);
        Assert.Equal((1_000L, 0L, 0L), await StateAsync(ledger, debtor, creditor, timeout.Token));
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }

    [Fact]
    public async Task AHoldPostedEarlier_FundsNoSecondPayout_EvenAlongsideItsPostsReplay()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var (debtor, creditor, run) = await OpenFundedPairAsync(ledger, timeout.Token);
        var hold = await HoldAsync(ledger, $"{run}-p", debtor, 100, timeout.Token);
        Assert.True((await ledger.ApplyBatchAsync([Payout($"{run}-p", creditor, 100, hold), Post($"{run}-p", hold)], timeout.Token)).Succeeded);

        // A payout under another id, with the post replayed (same id and fields: answered as applied): not posted by this batch.
        var second = new TransferRequest.Single(TransferId.Parse($"{run}-p-again"), InTransit, creditor, new Money(100, Currency.Usd)) { FundedByHold = hold };
        await AssertUnfundedAsync(ledger, [second, Post($"{run}-p", hold)], timeout.Token);
        // The first batch again, as a retry: every transfer replays, nothing moves twice.
        var retry = await ledger.ApplyBatchAsync([Payout($"{run}-p", creditor, 100, hold), Post($"{run}-p", hold)], timeout.Token);
        Assert.True(retry.Succeeded);
        Assert.All(retry.Transfers, transfer => Assert.True(Assert.IsType<TransferOutcome.Applied>(transfer).Replayed));
        Assert.Equal((900L, 0L, 100L), await StateAsync(ledger, debtor, creditor, timeout.Token));
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }

    private static async Task AssertUnfundedAsync(EtcdLedger ledger, TransferRequest[] batch, CancellationToken cancellationToken)
    {
        var outcome = await ledger.ApplyBatchAsync(batch, cancellationToken);
        Assert.False(outcome.Succeeded);
        Assert.Equal(LedgerError.UnfundedPayout, outcome.Error!.Code);
    }

    private static async Task<(AccountId Debtor, AccountId Creditor, string Run)> OpenFundedPairAsync(EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var run = "fp-" + Guid.NewGuid().ToString("N")[..8];
        var (debtor, creditor) = (AccountId.Parse($"{run}-debtor"), AccountId.Parse($"{run}-creditor"));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(debtor, Currency.Usd, 0, cancellationToken));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(creditor, Currency.Usd, 0, cancellationToken));
        Assert.True((await ledger.TransferAsync(new TransferRequest.Single(
            TransferId.Parse($"{run}-fund"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(1_000, Currency.Usd)), cancellationToken)).IsApplied);
        return (debtor, creditor, run);
    }

    private static async Task<TransferId> HoldAsync(EtcdLedger ledger, string payment, AccountId debtor, long amountMinor, CancellationToken cancellationToken)
    {
        var hold = TransferId.Parse($"{payment}-hold");
        Assert.True((await ledger.TransferAsync(
            new TransferRequest.Pending(hold, debtor, InTransit, new Money(amountMinor, Currency.Usd), TimeSpan.FromMinutes(15)), cancellationToken)).IsApplied);
        return hold;
    }

    private static TransferRequest.Single Payout(string payment, AccountId creditor, long amountMinor, TransferId hold) =>
        new(TransferId.Parse($"{payment}-credit"), InTransit, creditor, new Money(amountMinor, Currency.Usd)) { FundedByHold = hold };

    private static TransferRequest.PostPending Post(string payment, TransferId hold) => new(TransferId.Parse($"{payment}-post"), hold);

    /// <summary>The debtor's balance and pending debit, and the creditor's balance.</summary>
    private static async Task<(long, long, long)> StateAsync(EtcdLedger ledger, AccountId debtor, AccountId creditor, CancellationToken cancellationToken)
    {
        var debtorAccount = (await ledger.GetAccountAsync(debtor, cancellationToken))!;
        return (debtorAccount.BalanceMinor, debtorAccount.PendingDebitMinor, await LedgerAssert.BalanceAsync(ledger, creditor));
    }
}
