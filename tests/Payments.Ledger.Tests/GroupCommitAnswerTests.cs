using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Transfers;

namespace Payments.Ledger.Tests;

/// <summary>Which units a group's refused transaction answers. A refusal evaluated after a unit that was accepted
/// (whose changes the group then did not write) was answered at once: a hold declined for funds that only an earlier
/// hold of the group used, or a void answered "already posted" by a settlement that then failed when written alone.</summary>
public sealed class GroupCommitAnswerTests
{
    private static readonly AccountId Debtor = AccountId.Parse("gca-debtor");

    [Fact]
    public void ARefusalAfterAnAcceptedUnit_IsPutOff_UntilThatUnitIsWritten()
    {
        var (accepted, refused) = (Unit("hold-100"), Unit("hold-80"));
        var deferred = new List<GroupCommit.Pending>();

        var again = GroupCommit.Answer([accepted, refused], Outcome(LedgerError.LinkedTransferFailed, LedgerError.InsufficientFunds), deferred);

        Assert.Equal([accepted], again);
        Assert.Equal([refused], deferred);
        Assert.False(refused.Outcome.Task.IsCompleted);
        Assert.False(accepted.Outcome.Task.IsCompleted);
    }

    [Fact]
    public async Task ARefusalBeforeAnyAcceptedUnit_IsAnswered_AndTheRestGoAgain()
    {
        var (refused, accepted) = (Unit("hold-80"), Unit("hold-100"));
        var deferred = new List<GroupCommit.Pending>();

        var again = GroupCommit.Answer([refused, accepted], Outcome(LedgerError.InsufficientFunds, LedgerError.LinkedTransferFailed), deferred);

        Assert.Equal([accepted], again);
        Assert.Empty(deferred);
        Assert.True(refused.Outcome.Task.IsCompleted);
        Assert.Equal(LedgerError.InsufficientFunds, Assert.IsType<TransferOutcome.Failed>((await refused.Outcome.Task).Transfers[0]).Error.Code);
    }

    private static GroupCommit.Pending Unit(string id) => new(
        [new TransferRequest.Pending(TransferId.Parse(id), Debtor, AccountId.InTransit(Currency.Usd), new Money(1, Currency.Usd), TimeSpan.FromMinutes(1))],
        new TaskCompletionSource<BatchOutcome>(TaskCreationOptions.RunContinuationsAsynchronously));

    private static BatchOutcome Outcome(string first, string second) => new(
    [
        new TransferOutcome.Failed(TransferId.Parse("t-first"), new LedgerError(first, first)),
        new TransferOutcome.Failed(TransferId.Parse("t-second"), new LedgerError(second, second)),
    ]);
}
