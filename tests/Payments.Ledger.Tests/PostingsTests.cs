using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Rules;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Tests;

/// <summary>The one posting arithmetic (used by the evaluator, the standby's applier and the replay).</summary>
public sealed class PostingsTests
{
    [Theory]
    [InlineData(TransferKind.Single)]
    [InlineData(TransferKind.Pending)]
    [InlineData(TransferKind.PostPending)]
    [InlineData(TransferKind.VoidPending)]
    [InlineData(TransferKind.ExpirePending)]
    public void EveryPosting_IsDoubleEntry_BalancesSumToZero_AndHoldsPlacedEqualHoldsAnnounced(TransferKind kind)
    {
        var (debit, credit) = Postings.Of(kind, 1_250);

        Assert.Equal(0, debit.BalanceMinor + credit.BalanceMinor);
        Assert.Equal(debit.PendingDebitMinor + credit.PendingDebitMinor, debit.PendingCreditMinor + credit.PendingCreditMinor);
    }

    [Fact]
    public void HoldThenPost_MovesTheAmount_AndHoldThenRelease_MovesNothing()
    {
        var (holdDebit, holdCredit) = Postings.Hold(700);
        var (postDebit, postCredit) = Postings.Post(700);
        var (releaseDebit, releaseCredit) = Postings.Release(700);

        Assert.Equal(new Balances(-700, 0, 0), holdDebit.Plus(postDebit));
        Assert.Equal(new Balances(700, 0, 0), holdCredit.Plus(postCredit));
        Assert.Equal(Balances.Zero, holdDebit.Plus(releaseDebit));
        Assert.Equal(Balances.Zero, holdCredit.Plus(releaseCredit));
        Assert.Equal(Postings.Single(700), (holdDebit.Plus(postDebit), holdCredit.Plus(postCredit)));
    }

    [Fact]
    public void Plus_ThatOverflows_Throws_InsteadOfWrappingAround()
    {
        Assert.Throws<OverflowException>(() => new Balances(long.MaxValue, 0, 0).Plus(Postings.Single(1).Credit));
        Assert.Throws<OverflowException>(() => new Balances(long.MinValue, 0, 0).Plus(Postings.Single(1).Debit));
        Assert.Throws<OverflowException>(() => new Balances(0, long.MaxValue, 0).Plus(Postings.Hold(1).Debit));
    }

    [Fact]
    public void Replay_AppliesThePostings_InSequenceOrder_AndRefusesAJournalOutOfOrder()
    {
        var alice = AccountId.Parse("alice");
        var bob = AccountId.Parse("bob");
        var hold = Entry(1, "t-hold", TransferKind.Pending, alice, bob, 500);
        var post = Entry(2, "t-post", TransferKind.PostPending, alice, bob, 500) with { PendingId = TransferId.Parse("t-hold") };
        var single = Entry(3, "t-single", TransferKind.Single, bob, alice, 200);

        var balances = JournalReplay.Replay([hold, post, single]);

        Assert.Equal(new Balances(-300, 0, 0), balances[alice]);
        Assert.Equal(new Balances(300, 0, 0), balances[bob]);
        Assert.Throws<InvalidOperationException>(() => JournalReplay.Replay([post, hold]));
    }

    [Fact]
    public void CommitCheck_FindsNothing_InABalancedCommit_AndNamesWhatAnUnbalancedOneBroke()
    {
        var before = Record("alice", 1_000, 0, 0);
        var creditor = Record("bob", 0, 0, 0);
        var (debit, credit) = Postings.Single(400);

        Assert.Empty(CommitCheck.Violations([(before, before.Plus(debit)), (creditor, creditor.Plus(credit))]));

        var lost = CommitCheck.Violations([(before, before.Plus(debit))]); // the credit never written: money vanished
        Assert.Contains(lost, violation => violation.StartsWith("EUR:", StringComparison.Ordinal));
        var overdrawn = CommitCheck.Violations([(before, before.Plus(Postings.Single(1_001).Debit)), (creditor, creditor.Plus(Postings.Single(1_001).Credit))]);
        Assert.Contains(overdrawn, violation => violation.StartsWith("alice ends overdrawn", StringComparison.Ordinal));
    }

    private static AccountRecord Record(string id, long balance, long pendingDebit, long pendingCredit) =>
        new(id, "EUR", 0, Unlimited: false, Closed: false, balance, pendingDebit, pendingCredit);

    private static JournalEntry Entry(long sequence, string id, TransferKind kind, AccountId debit, AccountId credit, long amount) =>
        new(sequence, TransferId.Parse(id), kind, debit, credit, new Money(amount, Currency.Eur), null, null, null, DateTimeOffset.UnixEpoch);
}
