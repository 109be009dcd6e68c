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

    /// <summary>A review's finding: two payouts of one hold, under different ids, beside its post in one batch both
    /// passed (each found the hold posted in the batch's writes), and in-transit paid the hold out twice. Refused in
    /// one batch; and from two callers at once (group commit may write their units as one transaction), one payout
    /// is applied, whichever way they were grouped.</summary>
    [Fact]
    public async Task TwoPayoutsOfOneHold_AreNeverBothApplied_InOneBatchOrFromTwoCallers()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var (debtor, creditor, run) = await OpenFundedPairAsync(ledger, timeout.Token);
        var hold = await HoldAsync(ledger, $"{run}-d", debtor, 100, timeout.Token);
        var second = new TransferRequest.Single(TransferId.Parse($"{run}-d-twice"), InTransit, creditor, new Money(100, Currency.Usd)) { FundedByHold = hold };
        await AssertUnfundedAsync(ledger, [Post($"{run}-d", hold), Payout($"{run}-d", creditor, 100, hold), second], timeout.Token);
        Assert.Equal((1_000L, 100L, 0L), await StateAsync(ledger, debtor, creditor, timeout.Token));

        const int Rounds = 8;
        for (var round = 0; round < Rounds; round++)
        {
            var each = await HoldAsync(ledger, $"{run}-r{round}", debtor, 10, timeout.Token);
            var other = new TransferRequest.Single(TransferId.Parse($"{run}-r{round}-other"), InTransit, creditor, new Money(10, Currency.Usd)) { FundedByHold = each };
            var outcomes = await Task.WhenAll(
                ledger.ApplyBatchAsync([Post($"{run}-r{round}", each), Payout($"{run}-r{round}", creditor, 10, each)], timeout.Token),
                ledger.ApplyBatchAsync([other], timeout.Token));
            Assert.True(outcomes[0].Succeeded, $"round {round}: the post and its payout: {outcomes[0].Error}");
            Assert.Equal(LedgerError.UnfundedPayout, outcomes[1].Error?.Code);
        }

        Assert.Equal((1_000L - Rounds * 10, 100L, Rounds * 10L), await StateAsync(ledger, debtor, creditor, timeout.Token));
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }

    /// <summary>A review's finding: the payout used the in-transit shard of its own id while the hold and its post used
    /// the hold's, so each payment left +amount in one shard and -amount in another; the shards drifted without bound (a
    /// merchant choosing its keys could push one to its limit, and every payment whose hold fell there was refused). A
    /// payment now nets to zero in the one shard its hold chose — on the copy the standby makes of the journal too.</summary>
    [Fact]
    public async Task EveryPayment_NetsToZero_InItsHoldsShardOfInTransit_AndTheCopyUsesTheSameShards()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var (debtor, creditor, run) = await OpenFundedPairAsync(ledger, timeout.Token);
        const int Payments = 12; // with the payout's own shard, all 12 meeting their hold's (1 in 16 each) never happens
        for (var payment = 0; payment < Payments; payment++)
        {
            var hold = await HoldAsync(ledger, $"{run}-{payment}", debtor, 10 + payment, timeout.Token);
            Assert.True((await ledger.ApplyBatchAsync([Payout($"{run}-{payment}", creditor, 10 + payment, hold), Post($"{run}-{payment}", hold)], timeout.Token)).Succeeded);
        }

        var shards = await InTransitShardsAsync(ledger, timeout.Token);
        Assert.NotEmpty(shards);
        Assert.All(shards, shard => Assert.Equal((0L, 0L, 0L), shard.Value));

        var replica = etcd.NewLedger();
        var applier = new JournalApplier(replica);
        var after = 0L;
        while (await new JournalReader(ledger).ReadAsync(after, 128, timeout.Token) is { Count: > 0 } page)
        {
            await applier.ApplyAsync(page, timeout.Token);
            after = page[^1].Sequence;
        }

        Assert.Equal(shards, await InTransitShardsAsync(replica, timeout.Token));
        await LedgerAssert.InvariantsHoldAsync(replica, timeout.Token);
    }

    /// <summary>In-transit's shards (by their number) with balance, pending debit and pending credit.</summary>
    private static async Task<SortedDictionary<string, (long, long, long)>> InTransitShardsAsync(EtcdLedger ledger, CancellationToken cancellationToken)
    {
        var prefix = ledger.Keys.SystemShardsPrefix(InTransit);
        var range = await ledger.Store.RangeAsync(
            new Etcdserverpb.RangeRequest { Key = Payments.Etcd.EtcdBytes.Key(prefix), RangeEnd = Payments.Etcd.EtcdBytes.PrefixEnd(prefix) }, cancellationToken);
        return new SortedDictionary<string, (long, long, long)>(range.Kvs.ToDictionary(
            kv => kv.Key.ToStringUtf8()[prefix.Length..],
            kv => Payments.Ledger.Core.Storage.LedgerJson.DecodeAccount(kv.Value) is var shard ? (shard.BalanceMinor, shard.PendingDebitMinor, shard.PendingCreditMinor) : default), StringComparer.Ordinal);
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
