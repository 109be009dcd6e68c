using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.Domain;
using Payments.Etcd;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Expiry;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

[Collection(EtcdCollection.Name)]
public sealed class HoldExpiryTests(EtcdClusterFixture etcd)
{
    private static readonly TimeSpan HoldTimeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task PendingTransferPastItsTimeout_IsVoidedByTheSweepExactlyOnce_WithTwoSweepersRunning()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time);
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        var pendingId = TransferId.Parse("hold-expiring");
        var stays = TransferId.Parse("hold-not-due");
        await ledger.TransferAsync(new TransferRequest.Pending(pendingId, debtor, creditor, new Money(700, Currency.Usd), HoldTimeout), CancellationToken.None);
        await ledger.TransferAsync(new TransferRequest.Pending(stays, debtor, creditor, new Money(300, Currency.Usd), HoldTimeout * 2), CancellationToken.None);
        var first = new HoldExpirySweeper(ledger, "sweeper-1", NullLogger<HoldExpirySweeper>.Instance);
        var second = new HoldExpirySweeper(ledger, "sweeper-2", NullLogger<HoldExpirySweeper>.Instance);

        Assert.Equal(0, await first.SweepOnceAsync(CancellationToken.None)); // nothing due yet
        time.Advance(HoldTimeout + TimeSpan.FromSeconds(1));
        var passes = await Task.WhenAll(Enumerable.Range(0, 4).Select(index =>
            (index % 2 == 0 ? first : second).SweepOnceAsync(CancellationToken.None)));

        Assert.Equal(1, passes.Sum());
        var account = await ledger.GetAccountAsync(debtor, CancellationToken.None);
        Assert.Equal(1_000, account!.BalanceMinor);
        Assert.Equal(300, account.PendingDebitMinor);
        var report = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
        Assert.Single(report.Journal, entry => entry.Kind == TransferKind.ExpirePending && entry.PendingId == pendingId);
        var post = await ledger.TransferAsync(new TransferRequest.PostPending(TransferId.Parse("late-post"), pendingId), CancellationToken.None);
        Assert.Equal(LedgerError.PendingTransferExpired, Assert.IsType<TransferOutcome.Failed>(post).Error.Code);
    }

    /// <summary>A hold with an id of the longest length is expired like any other: its expiry's derived id used to
    /// pass the limit and throw, and that hold, sorting first among the due, stopped every pass (and the ledger service
    /// with it) — no hold ever expired again.</summary>
    [Fact]
    public async Task AHoldWithTheLongestId_IsExpired_AndDoesNotStopTheOthers()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time);
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        var longest = TransferId.Parse("a" + new string('0', TransferId.MaxLength - 1));
        var ordinary = TransferId.Parse("z-hold");
        foreach (var id in new[] { longest, ordinary })
        {
            await ledger.TransferAsync(new TransferRequest.Pending(id, debtor, creditor, new Money(100, Currency.Usd), HoldTimeout), CancellationToken.None);
        }

        // And an index entry, due first, that names no transfer at all (written by hand, or by a bug): skipped, not
        // the end of every pass.
        await etcd.Connection.Kv.PutAsync(new Etcdserverpb.PutRequest
        {
            Key = EtcdBytes.Key($"{ledger.Keys.ExpiryPrefix}{0L.ToString("D20", System.Globalization.CultureInfo.InvariantCulture)}/not a transfer id!"),
        });
        time.Advance(HoldTimeout + TimeSpan.FromSeconds(1));
        var sweeper = new HoldExpirySweeper(ledger, "sweeper", NullLogger<HoldExpirySweeper>.Instance);

        Assert.Equal(2, await sweeper.SweepOnceAsync(CancellationToken.None));
        Assert.Equal(0, (await ledger.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
        var report = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
        var expiry = Assert.Single(report.Journal, entry => entry.Kind == TransferKind.ExpirePending && entry.PendingId == longest);
        Assert.Equal(longest.Derive("expire"), expiry.TransferId);
        Assert.True(expiry.TransferId.Value.Length <= TransferId.MaxLength);
        Assert.NotEqual(TransferId.Parse("a" + new string('0', TransferId.MaxLength - 2) + "1").Derive("expire"), expiry.TransferId);
    }

    /// <summary>A full page of index entries that cannot be expired, due before a real hold: the pass reads on past
    /// them. Each pass read only them (one page from the front of the index), and no hold expired again.</summary>
    [Fact]
    public async Task APageOfEntriesThatCannotBeExpired_DoesNotHideTheHoldsDueAfterThem()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time);
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        await ledger.TransferAsync(new TransferRequest.Pending(TransferId.Parse("hold-behind"), debtor, creditor, new Money(100, Currency.Usd), HoldTimeout), CancellationToken.None);
        await Task.WhenAll(Enumerable.Range(0, HoldExpirySweeper.MaxExpiriesPerPass).Select(index => etcd.Connection.Kv.PutAsync(new Etcdserverpb.PutRequest
        {
            Key = EtcdBytes.Key($"{ledger.Keys.ExpiryPrefix}{index.ToString("D20", System.Globalization.CultureInfo.InvariantCulture)}/not a transfer id!"),
        }).ResponseAsync));
        time.Advance(HoldTimeout + TimeSpan.FromSeconds(1));
        var sweeper = new HoldExpirySweeper(ledger, "sweeper", NullLogger<HoldExpirySweeper>.Instance);

        Assert.Equal(1, await sweeper.SweepOnceAsync(CancellationToken.None));
        Assert.Equal(0, (await ledger.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
    }

    [Fact]
    public async Task PendingTransfer_IsExpiredOnce_EvenWhenTwoSweepersWronglyHoldLocksAtOnce()
    {
        // Correctness must not rest on the lock: two holders of different locks race on the same holds.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time);
        var (debtor, creditor) = await TransferRetryTests.OpenPairAsync(ledger, fundsMinor: 1_000);
        for (var index = 0; index < 10; index++)
        {
            await ledger.TransferAsync(
                new TransferRequest.Pending(TransferId.Parse($"hold-{index}"), debtor, creditor, new Money(100, Currency.Usd), HoldTimeout),
                CancellationToken.None);
        }

        time.Advance(HoldTimeout);
        var sweeper = new HoldExpirySweeper(ledger, "racer", NullLogger<HoldExpirySweeper>.Instance);
        await using var lockOne = await AcquireAsync(EtcdClusterFixture.NewPrefix() + "one");
        await using var lockTwo = await AcquireAsync(EtcdClusterFixture.NewPrefix() + "two");
        var expired = await Task.WhenAll(sweeper.SweepAsync(lockOne, CancellationToken.None), sweeper.SweepAsync(lockTwo, CancellationToken.None));

        Assert.Equal(10, expired.Sum());
        var report = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
        Assert.Equal(10, report.Journal.Count(entry => entry.Kind == TransferKind.ExpirePending));
        Assert.Equal(0, (await ledger.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
    }

    private async Task<EtcdFencedLock> AcquireAsync(string key) =>
        await EtcdFencedLock.TryAcquireAsync(etcd.Connection, key, "racer", TimeSpan.FromSeconds(10), TimeProvider.System, NullLogger.Instance, CancellationToken.None)
        ?? throw new InvalidOperationException($"{key} is taken.");
}
