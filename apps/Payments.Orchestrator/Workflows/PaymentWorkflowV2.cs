using Dapr.Workflow;
using Microsoft.Extensions.Logging;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Workflows;

/// <summary>The payment saga: risk check → (review: validate, then wait for a decision, with a deadline) → hold the
/// debtor's funds, settle (credit the creditor and post the hold, atomically) and record the outcome — the last three
/// in one activity (<see cref="MoveMoneyActivity"/>) while nothing faults, one by one when something does.</summary>
/// <remarks>
/// Why two activities where <see cref="PaymentWorkflow"/> (kept for instances started before) had five: every
/// activity is a round trip orchestrator → workflow engine → orchestrator and a replay of the history, and those
/// round trips were most of a payment's CPU (docs/benchmarks.md, issue 14). The saga's guarantees are unchanged:
/// <list type="bullet">
/// <item>Validation against the ledger is not a step of its own when risk approves: the hold checks the same things
/// (account open, currency, funds) atomically and refuses with the same codes. A payment sent to review is still
/// validated before the reviewer waits, so a payment that could not be made fails at once.</item>
/// <item>The hold's compensation is registered before the money activity runs; a settlement refused voids it.</item>
/// <item>The pivot is never compensated for a fault: when the money activity faults the workflow does not know how far
/// it got, so it takes the steps one by one with the same transfer ids (<see cref="PaymentWorkflow.MoveMoneyAsync"/>) —
/// a hold or settlement already applied answers as applied — each with its own budget, exactly as before.</item>
/// <item>The outcome is recorded inside the money activity; the workflow's last step records it only if that failed.</item>
/// </list>
/// </remarks>
public sealed class PaymentWorkflowV2 : Workflow<PaymentInput, PaymentOutcome>
{
    public override async Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        // Deterministic on replay: the runtime records the start time in the history.
        input = input.CreatedAt is null ? input with { CreatedAt = context.CurrentUtcDateTime } : input;
        var log = context.CreateReplaySafeLogger<PaymentWorkflowV2>();
        var (outcome, recorded) = await DecideAsync(context, input, log);
        if (recorded)
        {
            context.SetCustomStatus(PaymentStep.Done);
            return outcome;
        }

        return await PaymentWorkflow.FinishAsync(context, input, outcome, log);
    }

    private static async Task<(PaymentOutcome Outcome, bool Recorded)> DecideAsync(WorkflowContext context, PaymentInput input, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.RiskCheck);
        var risk = await SagaCalls.UntilAnsweredAsync<RiskAssessment>(context, nameof(CheckRiskActivity), input, PaymentWorkflow.BeforePivot, input.PaymentId, log);
        switch (risk.Value)
        {
            case null:
                return (PaymentOutcome.Failed(PaymentReasons.RiskUnavailable), false);
            case { Decision: RiskDecision.Reject } rejected:
                return (PaymentOutcome.Failed(PaymentReasons.RiskRejected, rejected.Reasons), false);
            case { Decision: RiskDecision.Review }:
                if (await ValidateAsync(context, input, log) is { } invalid)
                {
                    return (invalid, false);
                }

                if (await PaymentWorkflow.AwaitApprovalAsync(context, input) is { } refused)
                {
                    return (refused, false);
                }

                break;
        }

        return await MoveMoneyAsync(context, input, log);
    }

    /// <summary>Before a reviewer is asked: null when the ledger could make the payment now, else the failed outcome.</summary>
    private static async Task<PaymentOutcome?> ValidateAsync(WorkflowContext context, PaymentInput input, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.Validating);
        var validation = await SagaCalls.UntilAnsweredAsync<StepResult>(
            context, nameof(ValidatePaymentActivity), input, PaymentWorkflow.BeforePivot, input.PaymentId, log);
        return validation.Value switch
        {
            null => PaymentOutcome.Failed(PaymentReasons.LedgerUnavailable),
            { Succeeded: false } refused => PaymentOutcome.Failed(refused.ErrorCode!),
            _ => null,
        };
    }

    /// <summary>One attempt of the money activity; on a fault, the steps one by one (see the remarks).</summary>
    private static async Task<(PaymentOutcome Outcome, bool Recorded)> MoveMoneyAsync(WorkflowContext context, PaymentInput input, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.MovingMoney);
        MoveMoneyResult result;
        try
        {
            result = await context.CallActivityAsync<MoveMoneyResult>(nameof(MoveMoneyActivity), input);
        }
        catch (WorkflowTaskFailedException exception)
        {
            log.LogWarning("Payment {PaymentId}: {Activity} faulted ({Fault}); taking its steps one by one",
                input.PaymentId, nameof(MoveMoneyActivity), $"{exception.FailureDetails.ErrorType}: {exception.FailureDetails.ErrorMessage}");
            return (await PaymentWorkflow.MoveMoneyAsync(context, input, log), false);
        }

        switch (result)
        {
            case { Settled: true }:
                return (PaymentOutcome.Completed(), result.Recorded);
            case { HoldRefusal: { } holdRefusal }:
                // A refused hold applied nothing (the ledger refuses atomically): nothing to compensate.
                return (PaymentOutcome.Failed(holdRefusal), false);
            case { SettleRefusal: { } settleRefusal }:
                log.LogWarning("Payment {PaymentId} could not settle ({Reason}); compensating", input.PaymentId, settleRefusal);
                return (await PaymentWorkflow.CompensateAsync(context, input, new Stack<string>([nameof(VoidHoldActivity)]), settleRefusal, log), false);
            default:
                log.LogError("Payment {PaymentId}: {Activity} answered nothing readable; taking its steps one by one", input.PaymentId, nameof(MoveMoneyActivity));
                return (await PaymentWorkflow.MoveMoneyAsync(context, input, log), false);
        }
    }
}
