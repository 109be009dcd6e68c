using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>Compensation of the hold: releases it. Idempotent, and safe when the hold never happened (its step
/// may have failed before reaching the ledger) or has already expired.</summary>
public sealed class VoidHoldActivity(ILedger ledger) : PaymentActivity<StepResult>
{
    protected override async Task<StepResult> ExecuteAsync(PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var outcome = await ledger.TransferAsync(
            new TransferRequest.VoidPending(PaymentTransfers.Void(input), PaymentTransfers.Hold(input)) { IssuedAt = PaymentTransfers.IssuedAt(input) },
            CancellationToken.None);
        return outcome switch
        {
            TransferOutcome.Applied => StepResult.Ok,
            TransferOutcome.Failed { Error.Code: LedgerError.PendingTransferNotFound or LedgerError.PendingTransferAlreadyVoided or LedgerError.PendingTransferExpired } => StepResult.Ok,
            // Posted means the payment settled: there is nothing left to compensate by voiding.
            TransferOutcome.Failed failed => StepResult.Refused(failed.Error.Code),
            _ => throw new InvalidOperationException($"Unexpected outcome {outcome}."),
        };
    }
}
