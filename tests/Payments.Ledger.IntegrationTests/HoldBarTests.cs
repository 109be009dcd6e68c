using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Expiry;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>The saga voids a hold whose step gave up with its outcome unknown; that hold (and, in the same linked
/// batch, the settlement) may still be on its way — in a frozen ledger process, behind a slow member — and must not
/// be applied after the void answered: a payment compensated with its money moved.</summary>
[Collection(EtcdCollection.Name)]
public sealed class HoldBarTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan HoldTimeout = TimeSpan.FromMinutes(15);

    [Fact]
    public async Task AVoidThatFoundNoHold_BarsItsId_SoTheHoldAndItsSettlementArrivingLate_AreRefused()
    {
        var ledger = etcd.NewLedger();
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        var issued = DateTimeOffset.UtcNow;
        var holdId = TransferId.Parse("pay-1.hold");

        var voided = await ledger.TransferAsync(new TransferRequest.VoidPending(TransferId.Parse("pay-1.void"), holdId) { IssuedAt = issued }, CancellationToken.None);
        Assert.Equal(LedgerError.PendingTransferNotFound, Assert.IsType<TransferOutcome.Failed>(voided).Error.Code);

        var late = await ledger.ApplyBatchAsync(
            [Hold(holdId, debtor, creditor, issued), new TransferRequest.PostPending(TransferId.Parse("pay-1.post"), holdId) { IssuedAt = issued }],
            CancellationToken.None);
        Assert.False(late.Succeeded);
        Assert.Equal(LedgerError.PendingTransferAlreadyVoided, Assert.IsType<TransferOutcome.Failed>(late.Transfers[0]).Error.Code);
        var lateHold = await ledger.TransferAsync(Hold(holdId, debtor, creditor, issued), CancellationToken.None);
        Assert.Equal(LedgerError.PendingTransferAlreadyVoided, Assert.IsType<TransferOutcome.Failed>(lateHold).Error.Code);

        // The void again (a retried activity) answers as the first did, and nothing moved.
        var again = await ledger.TransferAsync(new TransferRequest.VoidPending(TransferId.Parse("pay-1.void"), holdId) { IssuedAt = issued }, CancellationToken.None);
        Assert.Equal(LedgerError.PendingTransferNotFound, Assert.IsType<TransferOutcome.Failed>(again).Error.Code);
        var account = await ledger.GetAccountAsync(debtor, CancellationToken.None);
        Assert.Equal((1_000, 0), (account!.BalanceMinor, account.PendingDebitMinor));
        Assert.Equal(0, (await ledger.GetAccountAsync(creditor, CancellationToken.None))!.BalanceMinor);
        var report = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
        Assert.DoesNotContain(report.Journal, entry => entry.TransferId == holdId);
    }

    [Fact]
    public async Task AVoidRacingItsHold_EitherVoidsItOrBarsIt_NeverLeavesItPlaced()
    {
        const int Pairs = 40;
        var ledger = etcd.NewLedger();
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 100_000);
        var issued = DateTimeOffset.UtcNow;
        var outcomes = await Task.WhenAll(Enumerable.Range(0, Pairs).Select(async index =>
        {
            var holdId = TransferId.Parse($"race-{index}.hold");
            Func<Task<TransferOutcome>> hold = () => ledger.TransferAsync(Hold(holdId, debtor, creditor, issued), CancellationToken.None);
            Func<Task<TransferOutcome>> cancel = () => ledger.TransferAsync(
                new TransferRequest.VoidPending(TransferId.Parse($"race-{index}.void"), holdId) { IssuedAt = issued }, CancellationToken.None);
            // Either may reach the ledger first; in half the pairs the void is sent first.
            var (first, second) = index % 2 == 0 ? (hold, cancel) : (cancel, hold);
            var sent = await Task.WhenAll(Task.Run(first), Task.Run(second));
            return index % 2 == 0 ? (Hold: sent[0], Void: sent[1]) : (Hold: sent[1], Void: sent[0]);
        }));

        foreach (var (hold, cancel) in outcomes)
        {
            if (hold is TransferOutcome.Applied)
            {
                Assert.IsType<TransferOutcome.Applied>(cancel); // placed, so voided
            }
            else
            {
                Assert.Equal(LedgerError.PendingTransferAlreadyVoided, Assert.IsType<TransferOutcome.Failed>(hold).Error.Code);
                Assert.Equal(LedgerError.PendingTransferNotFound, Assert.IsType<TransferOutcome.Failed>(cancel).Error.Code);
            }
        }

        var account = await ledger.GetAccountAsync(debtor, CancellationToken.None);
        Assert.Equal((100_000, 0), (account!.BalanceMinor, account.PendingDebitMinor));
        await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
    }

    [Fact]
    public async Task ABar_IsRemovedByTheExpirySweep_OnlyOnceALateHoldWouldBeRefusedAsTooOld()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time);
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        var issued = time.GetUtcNow();
        var holdId = TransferId.Parse("pay-2.hold");
        await ledger.TransferAsync(new TransferRequest.VoidPending(TransferId.Parse("pay-2.void"), holdId) { IssuedAt = issued }, CancellationToken.None);
        var sweeper = new HoldExpirySweeper(ledger, "sweeper", NullLogger<HoldExpirySweeper>.Instance);
        var barredFor = ledger.Retention.ReplayWindow + ledger.Retention.MaxIssuedAhead;

        time.Advance(ledger.Retention.ReplayWindow - TimeSpan.FromSeconds(1));
        await sweeper.SweepOnceAsync(CancellationToken.None);
        // The bar, its index entry and its copy for the other region stay while a late hold could pass.
        Assert.Equal(3, await CountAsync(ledger, holdId));
        var stillBarred = await ledger.TransferAsync(Hold(holdId, debtor, creditor, issued), CancellationToken.None);
        Assert.Equal(LedgerError.PendingTransferAlreadyVoided, Assert.IsType<TransferOutcome.Failed>(stillBarred).Error.Code);

        time.Advance(barredFor - ledger.Retention.ReplayWindow + TimeSpan.FromSeconds(2));
        await sweeper.SweepOnceAsync(CancellationToken.None);
        Assert.Equal(0, await CountAsync(ledger, holdId));
        var tooOld = await ledger.TransferAsync(Hold(holdId, debtor, creditor, issued), CancellationToken.None);
        Assert.Equal(LedgerError.TransferTooOld, Assert.IsType<TransferOutcome.Failed>(tooOld).Error.Code);
        Assert.Equal(0, (await ledger.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
    }

    /// <summary>An expiry index entry that expires nothing — its hold voided already, or no hold at all — is removed by
    /// the sweep: left, it came back first in every pass, and 256 of them stopped every expiry for good.</summary>
    [Fact]
    public async Task IndexEntriesThatExpireNothing_AreRemoved_AndAPendingHoldsOwnEntryStays()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time);
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        var issued = time.GetUtcNow();
        var (resolved, open) = (TransferId.Parse("pay-3.hold"), TransferId.Parse("pay-4.hold"));
        await ledger.TransferAsync(Hold(resolved, debtor, creditor, issued), CancellationToken.None);
        await ledger.TransferAsync(new TransferRequest.VoidPending(TransferId.Parse("pay-3.void"), resolved) { IssuedAt = issued }, CancellationToken.None);
        await ledger.TransferAsync(Hold(open, debtor, creditor, issued) with { Timeout = TimeSpan.FromDays(2) }, CancellationToken.None);
        var stray = TransferId.Parse("nothing-here");
        foreach (var id in new[] { resolved, stray, open })
        {
            await etcd.Connection.Kv.PutAsync(new Etcdserverpb.PutRequest { Key = EtcdBytes.Key(ledger.Keys.Expiry(1, id)) });
        }

        time.Advance(HoldTimeout + TimeSpan.FromMinutes(1));
        await new HoldExpirySweeper(ledger, "sweeper", NullLogger<HoldExpirySweeper>.Instance).SweepOnceAsync(CancellationToken.None);

        Assert.Equal(0, await CountAsync(ledger, stray));
        Assert.Equal(1, await CountAsync(ledger, resolved)); // its voided hold record; no index entry
        Assert.Equal(2, await CountAsync(ledger, open)); // the pending hold and its own entry, not due for two days
        Assert.Equal(250, (await ledger.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
    }

    private static TransferRequest.Pending Hold(TransferId id, AccountId debtor, AccountId creditor, DateTimeOffset issued) =>
        new(id, debtor, creditor, new Money(250, Currency.Usd), HoldTimeout) { IssuedAt = issued };

    /// <summary>The hold record, expiry index entries and bar copies under the ledger's prefix that name <paramref name="holdId"/>.</summary>
    private async Task<int> CountAsync(EtcdLedger ledger, TransferId holdId)
    {
        var keys = ledger.Keys;
        var count = 0;
        foreach (var prefix in new[] { keys.HoldsPrefix, keys.ExpiryPrefix, keys.Prefix + Payments.Ledger.Core.Storage.LedgerKeys.BarsFamily })
        {
            var range = await etcd.Connection.Kv.RangeAsync(new Etcdserverpb.RangeRequest
            {
                Key = EtcdBytes.Key(prefix),
                RangeEnd = EtcdBytes.PrefixEnd(prefix),
                KeysOnly = true,
            });
            count += range.Kvs.Count(kv => kv.Key.ToStringUtf8().EndsWith("/" + holdId.Value, StringComparison.Ordinal));
        }

        return count;
    }
}
