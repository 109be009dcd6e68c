using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Orchestrator.Activities;

/// <summary><see cref="Workflows.ResumedPaymentWorkflow"/>'s first step: what an earlier run decided. Whether the ledger
/// holds the payment's hold (in any state) — a hold is placed only after risk or a reviewer approved the payment, so one
/// that exists means the decision was taken — and the reviewer's decision or risk's rejection the payment record holds
/// now (read here, in the activity, so that a decision recorded just before the resume counts, and a replay sees the
/// same answer).</summary>
public sealed class FindHoldActivity(ILedger ledger, PaymentRecordStore records) : PaymentActivity<LedgerFacts>
{
    protected override async Task<LedgerFacts> ExecuteAsync(PaymentInput input)
    {
        var hold = await ledger.GetTransferAsync(PaymentTransfers.Hold(input), CancellationToken.None);
        var record = (await records.GetAsync(input.PaymentId, CancellationToken.None))?.Record;
        return new LedgerFacts(IsThisPaymentsHold(hold, input), record?.Review?.Decision, record?.RiskRejectedAt is not null);
    }

    /// <summary>Only the payment's own hold proves the decision: a pending transfer of its amount from its debtor. Any
    /// other entry under that id (none is ever written) is not taken as an approval.</summary>
    private static bool IsThisPaymentsHold(JournalEntry? entry, PaymentInput input) =>
        entry is { Kind: TransferKind.Pending } hold
        && hold.DebitAccountId == Payments.Domain.AccountId.ParseLedger(input.Order.DebtorAccountId)
        && hold.Amount == PaymentTransfers.Amount(input);
}

/// <summary>What an earlier run of a payment's saga decided (<see cref="FindHoldActivity"/>).</summary>
/// <param name="ReviewDecision">The record's review: <c>approved</c>, <c>rejected</c>, or null.</param>
/// <param name="RiskRejected">Whether the record holds a risk rejection (<see cref="Client.Records.PaymentRecord.RiskRejectedAt"/>):
/// false in the answers of orchestrators from before it, whose resumed runs decide again as they did.</param>
public sealed record LedgerFacts(bool HoldExists, string? ReviewDecision = null, bool RiskRejected = false) : IRunAnswer<LedgerFacts>
{
    /// <inheritdoc/>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Run { get; init; }

    public LedgerFacts ForRun(string? run) => this with { Run = run };
}
