using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>Whether the ledger has the payment's hold, in any state: <see cref="Workflows.PaymentWorkflowV2"/>'s first
/// step when it is resumed. A hold is placed only after risk (or a reviewer) approved the payment, so one that exists
/// means the decision was taken: a resumed saga then settles instead of deciding again on a balance its own
/// settlement may already have taken.</summary>
public sealed class FindHoldActivity(ILedger ledger) : PaymentActivity<LedgerFacts>
{
    protected override async Task<LedgerFacts> ExecuteAsync(PaymentInput input) =>
        new(await ledger.GetTransferAsync(PaymentTransfers.Hold(input), CancellationToken.None) is not null);
}

/// <summary>What the ledger holds of a payment (<see cref="FindHoldActivity"/>).</summary>
public sealed record LedgerFacts(bool HoldExists);
