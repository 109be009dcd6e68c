using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Checks;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Orchestrator.Tests;

/// <summary>Status tells the truth: each way a reported status can disagree with the journal is found, and a truthful
/// history of every kind is not flagged.</summary>
public sealed class PaymentStatusCheckTests
{
    private static readonly AccountId Debtor = AccountId.Parse("alice");
    private static readonly AccountId Creditor = AccountId.Parse("bob");
    private long sequence;

    [Fact]
    public void TruthfulStatuses_OfEveryKind_AreNotFlagged()
    {
        var journal = new List<JournalEntry>();
        journal.AddRange(Settled("pay-done"));
        journal.Add(Hold("pay-voided"));
        journal.Add(Resolve("pay-voided", PaymentTransfers.Void("pay-voided"), TransferKind.VoidPending));
        journal.Add(Hold("pay-expired"));
        journal.Add(Resolve("pay-expired", PaymentTransfers.Hold("pay-expired").Derive("expire"), TransferKind.ExpirePending));
        journal.Add(Hold("pay-running")); // in flight: not judged

        var (checkedCount, mismatches, _) = PaymentStatusCheck.Check(
            [Record("pay-done", PaymentStatus.Completed), Record("pay-voided", PaymentStatus.Compensated),
             Record("pay-expired", PaymentStatus.Failed), Record("pay-refused", PaymentStatus.Failed), Record("pay-running", PaymentStatus.Pending)],
            journal);

        Assert.Equal((4, 0), (checkedCount, mismatches));
    }

    [Theory]
    [InlineData(PaymentStatus.Completed, false, false, "not in the journal")]
    [InlineData(PaymentStatus.Failed, true, false, "money moved")]
    [InlineData(PaymentStatus.Compensated, true, false, "money moved")]
    [InlineData(PaymentStatus.Failed, false, true, "hold is still open")]
    public void LyingStatuses_AreFound(string status, bool settled, bool openHold, string problem)
    {
        var journal = settled ? Settled("pay-1").ToList() : openHold ? [Hold("pay-1")] : [];

        var (_, mismatches, listed) = PaymentStatusCheck.Check([Record("pay-1", status)], journal);

        Assert.Equal(1, mismatches);
        Assert.Contains(problem, Assert.Single(listed).Problem, StringComparison.Ordinal);
    }

    private IEnumerable<JournalEntry> Settled(string paymentId)
    {
        yield return Hold(paymentId);
        yield return Entry(PaymentTransfers.Credit(paymentId), TransferKind.Single, null);
        yield return Resolve(paymentId, PaymentTransfers.Post(paymentId), TransferKind.PostPending);
    }

    private JournalEntry Hold(string paymentId) => Entry(PaymentTransfers.Hold(paymentId), TransferKind.Pending, null);

    private JournalEntry Resolve(string paymentId, TransferId id, TransferKind kind) => Entry(id, kind, PaymentTransfers.Hold(paymentId));

    private JournalEntry Entry(TransferId id, TransferKind kind, TransferId? pendingId) =>
        new(++sequence, id, kind, Debtor, Creditor, new Money(100, Currency.Eur), pendingId, null, null, DateTimeOffset.UnixEpoch);

    private static PaymentRecord Record(string paymentId, string status) =>
        new(new PaymentOrder(paymentId, "m", Debtor.Value, Creditor.Value, 100, "EUR", null), status, null, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);
}
