using Grpc.Core;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Orchestrator.Activities;

/// <summary>What <see cref="MoveMoneyActivity"/> got to: settled (and whether the record says so yet), or refused at
/// the hold (nothing applied) or at the settlement (the hold stands and must be voided).</summary>
public sealed record MoveMoneyResult(bool Settled, bool Recorded, string? HoldRefusal, string? SettleRefusal) : IRunAnswer<MoveMoneyResult>
{
    /// <inheritdoc/>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Run { get; init; }

    public MoveMoneyResult ForRun(string? run) => this with { Run = run };

    public static MoveMoneyResult Completed(bool recorded) => new(true, recorded, null, null);

    public static MoveMoneyResult HoldRefused(string code) => new(false, false, code, null);

    public static MoveMoneyResult SettleRefused(string code) => new(false, false, null, code);
}

/// <summary>The saga's money steps in one activity when nothing goes wrong: hold, settle (the pivot), and the
/// completed outcome into the payment record — one round trip through the workflow engine instead of three, and the
/// hold and the settlement in one linked batch: one ledger call and one etcd transaction instead of two each.</summary>
/// <remarks>Each step is the same idempotent transfer as its own activity's (<see cref="HoldFundsActivity"/>,
/// <see cref="SettlePaymentActivity"/>, <see cref="RecordOutcomeActivity"/>), with the same transfer ids, so running
/// this again, or those steps after it, never applies anything twice: a transfer already applied answers as a replay,
/// in a batch too. A refusal comes back as a value. A fault (the ledger down, an answer lost) fails the activity: the
/// workflow then cannot know how far it got and takes the steps one by one, each with its own budget
/// (<see cref="Workflows.PaymentWorkflowV2"/>). An outcome that could not be recorded (etcd unavailable, the record
/// changing under every attempt) is reported as such; the workflow's last step records it.</remarks>
public sealed class MoveMoneyActivity(ILedger ledger, PaymentRecordStore records, TimeProvider time) : PaymentActivity<MoveMoneyResult>
{
    protected override async Task<MoveMoneyResult> ExecuteAsync(PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (await HoldAndSettleAsync(ledger, input) is { } refused)
        {
            return refused;
        }

        try
        {
            await records.RecordOutcomeAsync(input.PaymentId, PaymentOutcome.Completed(), time.GetUtcNow(), CancellationToken.None);
            return MoveMoneyResult.Completed(recorded: true);
        }
        catch (Exception exception) when (exception is RpcException or InvalidOperationException or System.Text.Json.JsonException or RegionNotWritableException)
        {
            // etcd unavailable, the record kept changing, or the region was demoted just now (the record carries its
            // fence): the money moved, so this is not a fault of the activity
            // (which would send the saga through hold and settle again); the workflow's last step records it.
            return MoveMoneyResult.Completed(recorded: false);
        }
    }

    /// <summary>Hold, credit and post as one linked batch (all or nothing): null when the money moved, else the refusal.</summary>
    /// <remarks>A refusal of the hold is the hold's own: nothing was applied, nothing to compensate. A refusal after
    /// the hold (the creditor cannot be credited: closed, a limit) applied nothing either, but the saga's contract
    /// for it is a hold placed and then voided — the payment ends compensated, as it always did, and a retry of an
    /// earlier attempt that did place the hold is covered the same way. So then the steps run one by one, as before
    /// the batch: the hold alone, then the settlement, whose refusal the workflow compensates. A settlement that
    /// succeeds then (the creditor changed in between) is a settlement like any other.</remarks>
    private static async Task<MoveMoneyResult?> HoldAndSettleAsync(ILedger ledger, PaymentInput input)
    {
        TransferRequest[] batch = [HoldFundsActivity.Request(input), .. SettlePaymentActivity.Requests(input)];
        var outcome = await ledger.ApplyBatchAsync(batch, CancellationToken.None);
        if (outcome.Succeeded)
        {
            return null;
        }

        if (outcome.BatchError is null && outcome.Transfers[0] is TransferOutcome.Failed { Error.Code: not LedgerError.LinkedTransferFailed } held)
        {
            return MoveMoneyResult.HoldRefused(held.Error.Code);
        }

        var hold = await HoldFundsActivity.HoldAsync(ledger, input);
        if (!hold.Succeeded)
        {
            return MoveMoneyResult.HoldRefused(hold.ErrorCode!);
        }

        var settle = await SettlePaymentActivity.SettleAsync(ledger, input);
        return settle.Succeeded ? null : MoveMoneyResult.SettleRefused(settle.ErrorCode!);
    }
}
