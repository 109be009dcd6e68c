using Dapr.Workflow;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Workflows;

/// <summary>The payment saga: risk check (a payment sent to review validated first) → (review: wait for a decision, with a deadline) → hold the
/// debtor's funds, settle (credit the creditor and post the hold, atomically) and record the outcome — the last three
/// in one activity (<see cref="MoveMoneyActivity"/>) while nothing faults, one by one when something does.</summary>
/// <remarks>
/// Why two activities where <see cref="PaymentWorkflow"/> (kept for instances started before) had five: every
/// activity is a round trip orchestrator → workflow engine → orchestrator and a replay of the history, and those
/// round trips were most of a payment's CPU (docs/benchmarks.md, issue 14). The saga's guarantees are unchanged:
/// <list type="bullet">
/// <item>Validation against the ledger is not a step of its own: when risk approves, the hold checks the debtor's side
/// (account open, currency, funds) atomically and refuses with the same codes, and the settlement refuses a creditor
/// that cannot be credited (the hold is then voided). A payment sent to review is validated inside the risk step
/// (<see cref="AssessPaymentActivity"/>) before it is recorded as awaiting approval, so a payment that could not be
/// made fails at once and is never announced as awaiting a reviewer.</item>
/// <item>The hold's compensation is registered before the money activity runs; a settlement refused voids it.</item>
/// <item>The pivot is never compensated for a fault: when the money activity faults the workflow does not know how far
/// it got, so it takes the steps one by one with the same transfer ids (<see cref="PaymentWorkflow.MoveMoneyAsync"/>) —
/// a hold or settlement already applied answers as applied — each with its own budget, exactly as before.</item>
/// <item>The outcome is recorded inside the money activity; the workflow's last step records it only if that failed.</item>
/// </list>
/// </remarks>
public sealed class PaymentWorkflowV2 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) => RunAsync(context, input, batchMayHaveSettled: false);

    /// <summary>The saga; <paramref name="batchMayHaveSettled"/> as <see cref="PaymentWorkflow.MoveMoneyAsync"/> takes
    /// it (false here: instances started before <see cref="PaymentWorkflowV3"/> keep the decisions they replay);
    /// <paramref name="barLateHold"/> as <see cref="PaymentWorkflowV4"/> sets it.</summary>
    internal static async Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input, bool batchMayHaveSettled, bool barLateHold = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        // Deterministic on replay: the runtime records the start time in the history.
        input = input.CreatedAt is null ? input with { CreatedAt = context.CurrentUtcDateTime } : input;
        var log = context.CreateReplaySafeLogger<PaymentWorkflowV2>();
        var decided = await DecideAsync(context, input, log, batchMayHaveSettled);
        // Not for compensation-failed: its hold was placed, so no hold can arrive late under its id, and the void has
        // been asked for its whole budget already (the outcome, its alert and runbook stay what they were).
        if (barLateHold && !decided.Recorded && decided.Outcome.Status == PaymentStatus.Failed && decided.Outcome.Reason != PaymentReasons.CompensationFailed)
        {
            decided = (await PaymentWorkflow.BarLateHoldAsync(context, input, decided.Outcome, log), false);
        }

        return await EndAsync(context, input, decided, log);
    }

    /// <summary>The saga's end: an outcome the money activity recorded is done; any other is recorded now.</summary>
    internal static async Task<PaymentOutcome> EndAsync(WorkflowContext context, PaymentInput input, (PaymentOutcome Outcome, bool Recorded) decided, ILogger log)
    {
        if (decided.Recorded)
        {
            context.SetCustomStatus(PaymentStep.Done);
            return decided.Outcome;
        }

        return await PaymentWorkflow.FinishAsync(context, input, decided.Outcome, log);
    }

    internal static async Task<(PaymentOutcome Outcome, bool Recorded)> DecideAsync(WorkflowContext context, PaymentInput input, ILogger log, bool batchMayHaveSettled)
    {
        context.SetCustomStatus(PaymentStep.RiskCheck);
        var assessed = await SagaCalls.UntilAnsweredAsync<PaymentAssessment>(
            context, nameof(AssessPaymentActivity), input, PaymentWorkflow.BeforePivotOf(input), input.PaymentId, log);
        switch (assessed.Value)
        {
            case null:
                return (PaymentOutcome.Failed(PaymentReasons.RiskUnavailable), false);
            case { Refusal: { } refusal }:
                return (PaymentOutcome.Failed(refusal), false); // sent to review, but the ledger could not make it now
            case { Risk.Decision: RiskDecision.Reject } rejected:
                return (PaymentOutcome.Failed(PaymentReasons.RiskRejected, rejected.Risk.Reasons), false);
            case { Risk.Decision: RiskDecision.Review } when await PaymentWorkflow.AwaitApprovalAsync(context, input) is { } refused:
                return (refused, false);
        }

        return await MoveMoneyAsync(context, input, log, batchMayHaveSettled);
    }

    /// <summary>One attempt of the money activity; on a fault, the steps one by one (see the remarks).</summary>
    internal static async Task<(PaymentOutcome Outcome, bool Recorded)> MoveMoneyAsync(WorkflowContext context, PaymentInput input, ILogger log, bool batchMayHaveSettled)
    {
        context.SetCustomStatus(PaymentStep.MovingMoney);
        MoveMoneyResult? result = null;
        try
        {
            result = await context.CallActivityAsync<MoveMoneyResult>(nameof(MoveMoneyActivity), input);
            if (SagaCalls.AnsweredForAnotherRun(input.Run, result))
            {
                // A terminated run's late answer under this task's number (ADR 0006 point 6): what this run's own
                // money activity did is unknown, as after a fault — the steps one by one, each answering as applied.
                log.LogWarning("Payment {PaymentId}: {Activity} was answered for another run of the saga; taking its steps one by one",
                    input.PaymentId, nameof(MoveMoneyActivity));
                result = null;
            }
        }
        catch (WorkflowTaskFailedException exception)
        {
            log.LogWarning("Payment {PaymentId}: {Activity} faulted ({Fault}); taking its steps one by one",
                input.PaymentId, nameof(MoveMoneyActivity), $"{exception.FailureDetails.ErrorType}: {exception.FailureDetails.ErrorMessage}");
        }

        switch (result)
        {
            case { Settled: true }:
                return (PaymentOutcome.Completed(), result.Recorded);
            case { HoldRefusal: { } holdRefusal }:
                // A refused hold applied nothing (the ledger refuses atomically): nothing to compensate.
                return (PaymentOutcome.Failed(holdRefusal), false);
            case { SettleRefusal: { } settleRefusal }:
                return (await PaymentWorkflow.SettlementRefusedAsync(context, input, new Stack<string>([nameof(VoidHoldActivity)]), settleRefusal, log), false);
            default: // faulted (or an answer without a result): how far it got is unknown, the settlement included
                return (await PaymentWorkflow.MoveMoneyAsync(context, input, log, batchMayHaveSettled), false);
        }
    }
}

/// <summary>The saga payments started before <see cref="PaymentWorkflowV4"/> run: <see cref="PaymentWorkflowV2"/>'s steps, except that after its money activity
/// faulted — the batch may have committed — a hold and its void both left unanswered leave the payment pending for the
/// sweeper instead of failing it (<see cref="PaymentWorkflow.MoveMoneyAsync"/>). A name of its own (ADR 0006): a V2
/// instance replayed by this code keeps the decision its history recorded.</summary>
public sealed class PaymentWorkflowV3 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) =>
        PaymentWorkflowV2.RunAsync(context, input, batchMayHaveSettled: true);
}

/// <summary>The saga new payments run: <see cref="PaymentWorkflowV3"/> that voids the hold before it reports a payment
/// failed (<see cref="PaymentWorkflow.BarLateHoldAsync"/>), as the sweeper's <see cref="ResumedPaymentWorkflowV3"/>
/// does. Why a first run needs it: after a takeover, a client's retry of a payment the lost region had settled but not
/// yet shipped starts a first run here; deciding "failed" (risk, funds, review) left no trace in the ledger, and at
/// fail-back the lost region's hold and settlement applied unflagged — money moved under a record that says failed.
/// The bar makes them a conflict the operator is told of (ADR 0003). One ledger write more per failed payment, none
/// for a completed one. A step more, so a name of its own (ADR 0006); V3's instances replay unchanged.</summary>
public sealed class PaymentWorkflowV4 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) =>
        PaymentWorkflowV2.RunAsync(context, input, batchMayHaveSettled: true, barLateHold: true);
}

/// <summary><see cref="PaymentWorkflowV4"/> for runs scheduled with a token of their own (<see cref="PaymentInput.Run"/>):
/// an answer named for another run — a terminated run's late answer, which Dapr delivers to the task of the same number
/// in the run scheduled after it under the same instance id — is a fault, and the step asks again
/// (<see cref="SagaCalls"/>). The steps are V4's; the name is its own (ADR 0006) so that an orchestrator from before,
/// which would take such an answer, never runs these instances: a history with a refused answer replays only here.</summary>
public sealed class PaymentWorkflowV5 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) =>
        PaymentWorkflowV2.RunAsync(context, input, batchMayHaveSettled: true, barLateHold: true);
}
