using Payments.Domain;
using Payments.Ledger.Core;
using Payments.Ledger.Core.Model;

namespace Payments.Local;

/// <summary>The ledger side of a payment, in the order the saga runs it: hold the debtor's funds in transit, credit the
/// creditor from in-transit, post the hold. Every step's transfer id derives from the payment id, so repeating a step
/// can never apply it twice. (The saga issue moves these steps into Dapr workflow activities.)</summary>
public static class PaymentSteps
{
    public static async Task<PaymentStatus> ExecuteAsync(EtcdLedger ledger, PlannedPayment payment, CancellationToken cancellationToken)
    {
        var currency = payment.Amount.Currency;
        var inTransit = AccountId.InTransit(currency);
        var timeout = payment.Kind == PaymentKind.AbandonedHold ? LedgerDemo.AbandonedHoldTimeout : LedgerDemo.HoldTimeout;
        var hold = await ledger.TransferAsync(
            new TransferRequest.Pending(payment.HoldId, payment.Debtor, inTransit, payment.Amount, timeout, payment.PaymentId), cancellationToken);
        if (hold is TransferOutcome.Failed failed)
        {
            return failed.Error.Code == LedgerError.InsufficientFunds ? PaymentStatus.InsufficientFunds : PaymentStatus.Failed;
        }

        switch (payment.Kind)
        {
            case PaymentKind.AbandonedHold:
                return PaymentStatus.HoldAbandoned;
            case PaymentKind.Cancelled:
                return await ledger.TransferAsync(new TransferRequest.VoidPending(Step(payment, "void"), payment.HoldId), cancellationToken) is TransferOutcome.Applied
                    ? PaymentStatus.Voided
                    : PaymentStatus.Failed;
        }

        // Post the hold first, then credit: in-transit never goes negative, and a crash between the two leaves
        // money visibly in transit (the saga's compensation would reverse it), never created or lost.
        var post = await ledger.TransferAsync(new TransferRequest.PostPending(Step(payment, "post"), payment.HoldId), cancellationToken);
        if (post is TransferOutcome.Failed)
        {
            return PaymentStatus.Failed;
        }

        var credit = await ledger.TransferAsync(
            new TransferRequest.Single(Step(payment, "credit"), inTransit, payment.Creditor, payment.Amount, payment.PaymentId), cancellationToken);
        return credit is TransferOutcome.Applied ? PaymentStatus.Completed : PaymentStatus.Failed;
    }

    private static TransferId Step(PlannedPayment payment, string step) => TransferId.Parse(payment.PaymentId).Derive(step);
}
