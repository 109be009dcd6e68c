using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.Core.Storage;

namespace Payments.Ledger.Core.Rules;

/// <summary>What funds a payout out of in-transit: the hold it names, posted by the same transaction, once.</summary>
internal sealed partial class TransferRules
{
    /// <summary>Why <paramref name="payout"/> does not match the hold that funds it, or null when it does. The hold's
    /// transfer record never changes once written; its hold record is compared at commit when this batch posts it
    /// (the caller's policy puts the post in the same batch), so the check holds in the transaction that applies it.
    /// Pending (the post follows in this batch) and posted (it preceded in the batch) both pass here;
    /// <see cref="RequirePostedFunding"/> then checks this batch posts it. A voided or expired hold brought nothing
    /// into in-transit to pay out.</summary>
    private Evaluated? Unfunded(TransferRequest.Single payout, TransferId holdId)
    {
        if (LookupHold(holdId) is not { } found)
        {
            return new Evaluated.NeedsKeys();
        }

        if (found is not ({ } pending, { } hold))
        {
            return Reject(LedgerError.UnfundedPayout, $"Transfer {payout.Id} pays out of hold {holdId}, and there is no such hold.");
        }

        if (pending.AmountMinor != payout.Amount.AmountMinor || pending.Currency != payout.Amount.Currency.Code
            || pending.CreditAccountId != payout.DebitAccountId.Value)
        {
            return Reject(LedgerError.UnfundedPayout,
                $"Transfer {payout.Id} pays {payout.Amount.AmountMinor} {payout.Amount.Currency} out of {payout.DebitAccountId}; "
                + $"its hold {holdId} moved {pending.AmountMinor} {pending.Currency} into {pending.CreditAccountId}.");
        }

        // A voided or expired hold is refused with the code its post gets, so the saga records the real reason.
        return hold.Status switch
        {
            HoldStatus.Voided => Reject(LedgerError.PendingTransferAlreadyVoided, $"Transfer {payout.Id} pays out of hold {holdId}, which was voided by {hold.ResolvedBy}."),
            HoldStatus.Expired => Reject(LedgerError.PendingTransferExpired, $"Transfer {payout.Id} pays out of hold {holdId}, which expired."),
            _ => null,
        };
    }

    /// <summary>Once the whole batch is evaluated (every key read): a new payout that names its hold needs this very
    /// transaction to post that hold — before or after the payout in the batch. A hold still pending could yet be
    /// voided, and in-transit would have paid out what it never received; one posted earlier has paid out already
    /// (the saga posts and pays in one batch), so a second payout from it would be paid twice. The ledger service's
    /// policy always sends the post along; this holds without relying on it. One payout per hold in the transaction,
    /// too: two under different ids beside the post both passed, each seeing the hold posted in the batch's writes, and
    /// in-transit paid the hold out twice — in one batch, or in two callers' units that group commit wrote as one
    /// transaction (ledger review). When another transfer of the batch is refused, that refusal is the batch's reason
    /// (say the post's <c>pending-transfer-expired</c>), and the payout is left as it is. Rejects such payouts in place.</summary>
    public void RequirePostedFunding(IReadOnlyList<TransferRequest> batch, Evaluated[] evaluations)
    {
        if (evaluations.Any(evaluation => evaluation is Evaluated.Rejected))
        {
            return;
        }

        var paidOut = new Dictionary<TransferId, TransferId>();
        for (var index = 0; index < batch.Count; index++)
        {
            if (batch[index] is not TransferRequest.Single { FundedByHold: { } holdId } payout || evaluations[index] is not Evaluated.New)
            {
                continue;
            }

            if (!(set.Writes.TryGetValue(keys.Hold(holdId), out var written) && written is HoldRecord { Status: HoldStatus.Posted }))
            {
                evaluations[index] = Reject(LedgerError.UnfundedPayout, $"Transfer {payout.Id} pays out of hold {holdId}, which this batch does not post.");
            }
            else if (!paidOut.TryAdd(holdId, payout.Id))
            {
                evaluations[index] = Reject(LedgerError.UnfundedPayout,
                    $"Transfer {payout.Id} pays out of hold {holdId}, which transfer {paidOut[holdId]} in the same transaction pays out already.");
            }
        }
    }
}
