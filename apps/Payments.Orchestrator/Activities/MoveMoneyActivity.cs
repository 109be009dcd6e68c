using Grpc.Core;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Orchestrator.Activities;

/// <summary>What <see cref="MoveMoneyActivity"/> got to: settled (and whether the record says so yet), or refused at
/// the hold (nothing applied) or at the settlement (the hold stands and must be voided).</summary>
public sealed record MoveMoneyResult(bool Settled, bool Recorded, string? HoldRefusal, string? SettleRefusal)
{
    public static MoveMoneyResult Completed(bool recorded) => new(true, recorded, null, null);

    public static MoveMoneyResult HoldRefused(string code) => new(false, false, code, null);

    public static MoveMoneyResult SettleRefused(string code) => new(false, false, null, code);
}

/// <summary>The saga's money steps in one activity when nothing goes wrong: hold, settle (the pivot), and the
/// completed outcome into the payment record — one round trip through the workflow engine instead of three.</summary>
/// <remarks>Each step is the same idempotent call as its own activity (<see cref="HoldFundsActivity"/>,
/// <see cref="SettlePaymentActivity"/>, <see cref="RecordOutcomeActivity"/>), with the same transfer ids, so running
/// this again, or those steps after it, never applies anything twice. A refusal comes back as a value. A fault (the
/// ledger down, an answer lost) fails the activity: the workflow then cannot know how far it got and takes the steps
/// one by one, each with its own budget (<see cref="Workflows.PaymentWorkflowV2"/>). An outcome that could not be
/// recorded (etcd unavailable, the record changing under every attempt) is reported as such; the workflow's last step records it.</remarks>
public sealed class MoveMoneyActivity(ILedger ledger, PaymentRecordStore records, TimeProvider time) : PaymentActivity<MoveMoneyResult>
{
    protected override async Task<MoveMoneyResult> ExecuteAsync(PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var hold = await HoldFundsActivity.HoldAsync(ledger, input);
        if (!hold.Succeeded)
        {
            return MoveMoneyResult.HoldRefused(hold.ErrorCode!);
        }

        var settle = await SettlePaymentActivity.SettleAsync(ledger, input);
        if (!settle.Succeeded)
        {
            return MoveMoneyResult.SettleRefused(settle.ErrorCode!);
        }

        try
        {
            await records.RecordOutcomeAsync(input.PaymentId, PaymentOutcome.Completed(), time.GetUtcNow(), CancellationToken.None);
            return MoveMoneyResult.Completed(recorded: true);
        }
        catch (Exception exception) when (exception is RpcException or InvalidOperationException or System.Text.Json.JsonException)
        {
            // etcd unavailable, or the record kept changing: the money moved, so this is not a fault of the activity
            // (which would send the saga through hold and settle again); the workflow's last step records it.
            return MoveMoneyResult.Completed(recorded: false);
        }
    }
}
