using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Invariants;
using Payments.Ledger.Core.Retention;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>Settled journal entries leave etcd after their retention, and only then (ADR 0004): replicated, resolved,
/// older than KeepFor; balances, holds and the replay invariant stay as they were, and an archived transfer retried
/// with its original issue time is refused instead of applied again.</summary>
[Collection(EtcdCollection.Name)]
public sealed class JournalRetentionTests(EtcdClusterFixture etcd)
{
    private static readonly JournalRetentionOptions Retention = new()
    {
        ReplayWindow = TimeSpan.FromHours(1),
        MaxIssuedAhead = TimeSpan.FromMinutes(1),
        KeepFor = TimeSpan.FromHours(2),
    };

    private static readonly Money Ten = new(10, Currency.Usd);

    [Fact]
    public async Task SettledEntries_PastKeepFor_LeaveEtcd_BalancesAndInvariantsStay_AndARetryOfOneIsRefused()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time, retention: Retention);
        var (debtor, creditor) = await OpenPairAsync(ledger, time);
        var issued = time.GetUtcNow();
        var payments = await PayAsync(ledger, debtor, creditor, issued, count: 40);
        var before = await JournalCountAsync(ledger);

        Assert.Equal(0, await ArchiverFor(ledger).ArchiveOnceAsync(CancellationToken.None)); // nothing is old enough
        await PassRetentionAsync(ledger, time);
        var archived = await ArchiverFor(ledger).ArchiveOnceAsync(CancellationToken.None);

        Assert.Equal(before, archived); // 40 payments × (hold + post) + the funding, over several pages of the index
        Assert.Equal(1, await JournalCountAsync(ledger)); // the entry written since
        var snapshot = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None); // archived sums + retained journal = balances
        Assert.Equal(400, snapshot.Archived[creditor].BalanceMinor);
        Assert.Equal(400, await LedgerAssert.BalanceAsync(ledger, creditor));

        // The saga retries a settle long after it was archived, with the payment's issue time: refused, nothing moves.
        var late = await ledger.TransferAsync(new TransferRequest.PostPending(payments[0].Post, payments[0].Hold) { IssuedAt = issued }, CancellationToken.None);
        Assert.Equal(LedgerError.TransferTooOld, Assert.IsType<TransferOutcome.Failed>(late).Error.Code);
        var again = await ledger.TransferAsync(new TransferRequest.Pending(payments[1].Hold, debtor, creditor, Ten, TimeSpan.FromMinutes(15)) { IssuedAt = issued }, CancellationToken.None);
        Assert.Equal(LedgerError.TransferTooOld, Assert.IsType<TransferOutcome.Failed>(again).Error.Code);
        Assert.Equal(400, await LedgerAssert.BalanceAsync(ledger, creditor));
        await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
    }

    [Fact]
    public async Task EntriesNotYetReplicated_OrWithAnOpenHold_Stay_UntilTheyAre()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time, retention: Retention);
        var (debtor, creditor) = await OpenPairAsync(ledger, time);
        var open = TransferId.Parse("still-open");
        var hold = new TransferRequest.Pending(open, debtor, creditor, Ten, TimeSpan.FromMinutes(59)) { IssuedAt = time.GetUtcNow() };
        var placed = Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(hold, CancellationToken.None));
        await PassRetentionAsync(ledger, time);

        // Replicated only up to before the hold: the funding goes, the hold's entry stays.
        var throughFunding = placed.Entry.Sequence - 1;
        var partly = new JournalArchiver(ledger, () => throughFunding, "test", NullLogger<JournalArchiver>.Instance);
        Assert.Equal(1, await partly.ArchiveOnceAsync(CancellationToken.None));
        Assert.Contains("not yet replicated", partly.LastStop, StringComparison.Ordinal);

        // Replicated, but the hold is open (its expiry is overdue: the sweep has not run): it stays.
        var archiver = ArchiverFor(ledger);
        Assert.Equal(0, await archiver.ArchiveOnceAsync(CancellationToken.None));
        Assert.Contains("still open", archiver.LastStop, StringComparison.Ordinal);
        Assert.Equal(2, await JournalCountAsync(ledger)); // the hold, and the entry written since
        // How far past its retention the entry it waits at is: what DaprPaymentsJournalArchivalStalled watches.
        Assert.InRange(archiver.LastOverdue, Retention.ArrivalDisorderBound, Retention.ArrivalDisorderBound + TimeSpan.FromSeconds(2));

        var voided = new TransferRequest.VoidPending(TransferId.Parse("void-it"), open) { IssuedAt = time.GetUtcNow() };
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(voided, CancellationToken.None));
        Assert.Equal(1, await archiver.ArchiveOnceAsync(CancellationToken.None)); // the hold; the void is not old enough
        Assert.Equal(2, await JournalCountAsync(ledger));
        var snapshot = await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
        Assert.Equal(0, (await ledger.GetAccountAsync(debtor, CancellationToken.None))!.PendingDebitMinor);
        Assert.Equal(10, snapshot.Archived[debtor].PendingDebitMinor); // the void, still in the journal, releases it
        Assert.Equal(0, await archiver.ArchiveOnceAsync(CancellationToken.None));
        Assert.Equal(TimeSpan.Zero, archiver.LastOverdue); // nothing past its retention is left
    }

    [Fact]
    public async Task TheReplayWindow_RefusesStaleAndFutureIssueTimes_AndStillReplaysWhatItHolds()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time, retention: Retention);
        var (debtor, creditor) = await OpenPairAsync(ledger, time);
        var now = time.GetUtcNow();
        var paid = new TransferRequest.Single(TransferId.Parse("paid"), debtor, creditor, Ten) { IssuedAt = now };
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(paid, CancellationToken.None));

        var stale = new TransferRequest.Single(TransferId.Parse("stale"), debtor, creditor, Ten) { IssuedAt = now - Retention.ReplayWindow - TimeSpan.FromSeconds(1) };
        var future = new TransferRequest.Single(TransferId.Parse("future"), debtor, creditor, Ten) { IssuedAt = now + Retention.MaxIssuedAhead + TimeSpan.FromSeconds(1) };
        Assert.Equal(LedgerError.TransferTooOld, Assert.IsType<TransferOutcome.Failed>(await ledger.TransferAsync(stale, CancellationToken.None)).Error.Code);
        Assert.Equal(LedgerError.IssuedInFuture, Assert.IsType<TransferOutcome.Failed>(await ledger.TransferAsync(future, CancellationToken.None)).Error.Code);
        var tooLong = new TransferRequest.Pending(TransferId.Parse("long-hold"), debtor, creditor, Ten, Retention.ReplayWindow + TimeSpan.FromSeconds(1)) { IssuedAt = now };
        Assert.Equal(LedgerError.InvalidTimeout, Assert.IsType<TransferOutcome.Failed>(await ledger.TransferAsync(tooLong, CancellationToken.None)).Error.Code);

        // Inside the window's end the record is still here: the retry is answered with the original entry.
        time.Advance(Retention.ReplayWindow + TimeSpan.FromMinutes(1));
        Assert.True(Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(paid, CancellationToken.None)).Replayed);
        Assert.Equal(10, await LedgerAssert.BalanceAsync(ledger, creditor));
    }

    [Fact]
    public async Task AStandbyThatArchivedEntries_DoesNotApplyThemAgain_WhenTheyAreOfferedOnceMore()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var source = etcd.NewLedger(time, retention: Retention);
        var replica = etcd.NewLedger(time, retention: Retention);
        var (debtor, creditor) = await OpenPairAsync(source, time);
        await PayAsync(source, debtor, creditor, time.GetUtcNow(), count: 5);
        var journal = await new JournalReader(source).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        Assert.Equal(journal.Count, await new JournalApplier(replica).ApplyAsync(journal, CancellationToken.None));

        await PassRetentionAsync(source, time);
        var since = await new JournalReader(source).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        Assert.Equal(1, await new JournalApplier(replica).ApplyAsync(since, CancellationToken.None)); // what the source wrote since
        Assert.Equal(journal.Count, await ArchiverFor(replica).ArchiveOnceAsync(CancellationToken.None));
        Assert.Equal(0, await new JournalApplier(replica).ApplyAsync(journal, CancellationToken.None)); // e.g. the other region's pages, read from the start

        Assert.Equal(50, await LedgerAssert.BalanceAsync(replica, creditor));
        await LedgerAssert.InvariantsHoldAsync(replica, CancellationToken.None);
    }

    /// <summary>A region taking writes all along: its index holds entries a minute apart, and a pass archives every
    /// settled one past KeepFor, page after page. (A probe from each page's oldest entry found the next one a bound
    /// later, and the page's cutoff fell at its oldest: a dense index was archived an entry a page, or not at all.)</summary>
    [Fact]
    public async Task EntriesSpreadOverTime_AreArchivedPageAfterPage_InOnePass()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = etcd.NewLedger(time, retention: Retention);
        var (debtor, creditor) = await OpenPairAsync(ledger, time);
        for (var index = 0; index < 40; index++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            var paid = new TransferRequest.Single(TransferId.Parse($"spread-{index}"), debtor, creditor, Ten) { IssuedAt = time.GetUtcNow() };
            Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(paid, CancellationToken.None));
        }

        var before = await JournalCountAsync(ledger);
        await PassRetentionAsync(ledger, time);
        Assert.Equal(before, await ArchiverFor(ledger).ArchiveOnceAsync(CancellationToken.None)); // 41 entries, two pages
        Assert.Equal(1, await JournalCountAsync(ledger)); // the entry written since
        await LedgerAssert.InvariantsHoldAsync(ledger, CancellationToken.None);
    }

    /// <summary>A standby catching up on a backlog older than KeepFor receives the active region's entries in commit
    /// order, and their times need not be in that order (taken before commit, on the clock of whichever ledger replica
    /// wrote them). It archived each copy as soon as it was applied, and an entry applied just after with an earlier
    /// time fell under the archive horizon and was skipped as if archived: a payment lost in the standby's ledger.</summary>
    [Fact]
    public async Task AStandbyCatchingUpOnAnOldBacklog_LosesNoEntryThatArrivesOutOfTimeOrder()
    {
        var written = DateTimeOffset.UtcNow;
        var prefix = EtcdClusterFixture.NewPrefix();
        var ahead = new FakeTimeProvider(written + TimeSpan.FromSeconds(5)); // two ledger replicas of the active region,
        var behind = new FakeTimeProvider(written);                          // one's clock 5 s ahead of the other's
        var first = etcd.NewLedger(ahead, prefix, Retention);
        var second = etcd.NewLedger(behind, prefix, Retention);
        var (debtor, creditor) = await OpenPairAsync(first, ahead);
        Assert.IsType<TransferOutcome.Applied>(await first.TransferAsync(
            new TransferRequest.Single(TransferId.Parse("first"), debtor, creditor, Ten) { IssuedAt = ahead.GetUtcNow() }, CancellationToken.None));
        Assert.IsType<TransferOutcome.Applied>(await second.TransferAsync(
            new TransferRequest.Single(TransferId.Parse("second"), debtor, creditor, Ten) { IssuedAt = behind.GetUtcNow() }, CancellationToken.None));
        var journal = await new JournalReader(first).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None);
        Assert.Equal(["funding", "first", "second"], journal.Select(entry => entry.TransferId.Value)); // in commit order
        Assert.True(journal[2].AppliedAt < journal[1].AppliedAt);

        // The standby, back after longer than KeepFor, applies a page, archives, then applies the next page.
        var standbyTime = new FakeTimeProvider(written + Retention.KeepFor + TimeSpan.FromHours(1));
        var standby = etcd.NewLedger(standbyTime, retention: Retention);
        Assert.Equal(2, await new JournalApplier(standby).ApplyAsync(journal.Take(2).ToArray(), CancellationToken.None));
        await ArchiverFor(standby).ArchiveOnceAsync(CancellationToken.None);
        Assert.Equal(1, await new JournalApplier(standby).ApplyAsync(journal.Skip(2).ToArray(), CancellationToken.None));

        Assert.Equal(20, await LedgerAssert.BalanceAsync(standby, creditor));
        Assert.NotNull(await standby.GetTransferAsync(TransferId.Parse("second"), CancellationToken.None));
        await LedgerAssert.InvariantsHoldAsync(standby, CancellationToken.None);
    }

    /// <summary>Time passes beyond KeepFor and the archiver's distance from the newest entry held
    /// (<see cref="JournalRetentionOptions.ArrivalDisorderBound"/>), and the ledger is written meanwhile, as a region's is: a
    /// deposit into an account of its own.</summary>
    private static async Task PassRetentionAsync(EtcdLedger ledger, FakeTimeProvider time)
    {
        time.Advance(Retention.KeepFor + Retention.ArrivalDisorderBound + TimeSpan.FromSeconds(1));
        var fresh = AccountId.Parse("fresh");
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(fresh, Currency.Usd, 0, CancellationToken.None));
        var deposit = new TransferRequest.Single(TransferId.Parse("fresh-deposit"), AccountId.ExternalFunding(Currency.Usd), fresh, Ten)
        {
            IssuedAt = time.GetUtcNow(),
        };
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(deposit, CancellationToken.None));
    }

    private static JournalArchiver ArchiverFor(EtcdLedger ledger) =>
        new(ledger, () => long.MaxValue, "test", NullLogger<JournalArchiver>.Instance);

    private static async Task<int> JournalCountAsync(EtcdLedger ledger) =>
        (await new JournalReader(ledger).ReadAllAsync(LedgerInvariants.MaxJournalEntries, CancellationToken.None)).Count;

    private static async Task<(AccountId Debtor, AccountId Creditor)> OpenPairAsync(EtcdLedger ledger, TimeProvider time)
    {
        var debtor = AccountId.Parse("debtor");
        var creditor = AccountId.Parse("creditor");
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(debtor, Currency.Usd, 0, CancellationToken.None));
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(creditor, Currency.Usd, 0, CancellationToken.None));
        var funding = new TransferRequest.Single(TransferId.Parse("funding"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(1_000, Currency.Usd))
        {
            IssuedAt = time.GetUtcNow(),
        };
        Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(funding, CancellationToken.None));
        return (debtor, creditor);
    }

    /// <summary>Payments as the saga makes them: a hold, then a post, each issued at the payment's creation.</summary>
    private static async Task<IReadOnlyList<(TransferId Hold, TransferId Post)>> PayAsync(
        EtcdLedger ledger, AccountId debtor, AccountId creditor, DateTimeOffset issued, int count)
    {
        var payments = new List<(TransferId, TransferId)>();
        for (var index = 0; index < count; index++)
        {
            var hold = TransferId.Parse($"pay-{index}-hold");
            var post = TransferId.Parse($"pay-{index}-post");
            var pending = new TransferRequest.Pending(hold, debtor, creditor, Ten, TimeSpan.FromMinutes(15)) { IssuedAt = issued };
            Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(pending, CancellationToken.None));
            Assert.IsType<TransferOutcome.Applied>(await ledger.TransferAsync(new TransferRequest.PostPending(post, hold) { IssuedAt = issued }, CancellationToken.None));
            payments.Add((hold, post));
        }

        return payments;
    }
}
