using Dapr.Workflow;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Workflows;

/// <summary>The payment saga as payments started before <see cref="PaymentWorkflowV2"/> run it: validate → risk check →
/// (review: wait for a decision, with a deadline) → hold the debtor's funds → settle (credit the creditor and post the
/// hold, atomically) → record the outcome, each step its own activity. New payments start
/// <see cref="PaymentWorkflowV2"/>; this one stays registered, unchanged, so that instances started before an upgrade
/// replay their history against the code that wrote it (a workflow must not change under a running instance). Its
/// steps are shared with V2, which takes them one by one when its single money activity faulted.</summary>
/// <remarks>
/// The steps, after Garcia-Molina and Salem (ADR 0002): validate and risk are retriable and have no effect; the hold
/// is compensatable (its void is registered before it runs, because a hold whose call faulted may still have been
/// applied); settle is the pivot — once it committed the saga only goes forward, and it is never compensated for a
/// fault, only for a refusal (which applied nothing); recording the outcome is retriable forward.
/// Business refusals come back from activities as values and decide at once. Faults (a dependency down, an answer
/// lost, a crashed worker) are retried by the saga itself within a <see cref="StepBudget"/> — the payment stays
/// pending meanwhile — and no fault ever fails the workflow. Every ledger transfer id derives from the payment id,
/// so retries and replays never apply anything twice.
/// </remarks>
public sealed class PaymentWorkflow : Workflow<PaymentInput, PaymentOutcome>
{
    public const string ApprovalEventName = "approval";

    /// <summary>Steps before the pivot ride out an outage of their dependency this long (a pod restart, a failover): the
    /// budget of sagas whose input names none (<see cref="PaymentInput.BeforePivotBudget"/>), scheduled before it did.</summary>
    public static readonly StepBudget BeforePivot = new(TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));

    /// <summary>The budget the orchestrator gives the sagas it schedules now. Three minutes ended payments whose ledger or
    /// risk service was away for four — compensated seconds after it came back (a fault probe: a frozen ledger for
    /// 4 min, a lost etcd quorum for 2.5 min after a frozen ledger): an outage of minutes leaves them pending instead.</summary>
    public static readonly TimeSpan BeforePivotBudgetNow = TimeSpan.FromMinutes(10);

    /// <summary>The budget of the steps before the pivot of <paramref name="input"/>'s saga (see <see cref="BeforePivot"/>).</summary>
    internal static StepBudget BeforePivotOf(PaymentInput input) =>
        input.BeforePivotBudget is { } budget ? BeforePivot with { Budget = budget } : BeforePivot;

    /// <summary>The pivot keeps asking until the ledger answers for sure: past the hold's timeout its answer is
    /// definite either way (settled, or the hold expired and nothing moved). Beyond it the outcome stays open and the
    /// stuck-payment sweeper resumes the payment.</summary>
    public static readonly StepBudget Pivot = new(HoldFundsActivity.HoldTimeout + TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));

    /// <summary>A compensation, and recording the outcome: both must happen, so they are given longer.</summary>
    public static readonly StepBudget Forward = new(TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));

    public override async Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        // Deterministic on replay: the runtime records the start time in the history.
        input = input.CreatedAt is null ? input with { CreatedAt = context.CurrentUtcDateTime } : input;
        var log = context.CreateReplaySafeLogger<PaymentWorkflow>();
        return await FinishAsync(context, input, await DecideAsync(context, input, log), log);
    }

    private static async Task<PaymentOutcome> DecideAsync(WorkflowContext context, PaymentInput input, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.Validating);
        var validation = await SagaCalls.UntilAnsweredAsync<StepResult>(context, nameof(ValidatePaymentActivity), input, BeforePivotOf(input), input.PaymentId, log);
        if (validation.Value is not { } valid)
        {
            return PaymentOutcome.Failed(PaymentReasons.LedgerUnavailable);
        }

        if (!valid.Succeeded)
        {
            return PaymentOutcome.Failed(valid.ErrorCode!);
        }

        context.SetCustomStatus(PaymentStep.RiskCheck);
        var risk = await SagaCalls.UntilAnsweredAsync<RiskAssessment>(context, nameof(CheckRiskActivity), input, BeforePivotOf(input), input.PaymentId, log);
        switch (risk.Value)
        {
            case null:
                return PaymentOutcome.Failed(PaymentReasons.RiskUnavailable);
            case { Decision: RiskDecision.Reject } rejected:
                return PaymentOutcome.Failed(PaymentReasons.RiskRejected, rejected.Reasons);
            case { Decision: RiskDecision.Review } when await AwaitApprovalAsync(context, input) is { } refused:
                return refused;
        }

        return await MoveMoneyAsync(context, input, log);
    }

    /// <summary>Waits for the reviewer; null when approved, else the failed outcome.</summary>
    internal static async Task<PaymentOutcome?> AwaitApprovalAsync(WorkflowContext context, PaymentInput input)
    {
        context.SetCustomStatus(PaymentStep.AwaitingApproval);
        try
        {
            var decision = await context.WaitForExternalEventAsync<ApprovalDecision>(ApprovalEventName, input.ApprovalTimeout);
            return decision.Approved ? null : PaymentOutcome.Failed(PaymentReasons.ReviewRejected);
        }
        catch (TaskCanceledException)
        {
            return PaymentOutcome.Failed(PaymentReasons.ApprovalDeadlinePassed);
        }
    }

    /// <summary>Hold (compensatable), then settle (the pivot).</summary>
    /// <param name="batchMayHaveSettled">Taken after <see cref="PaymentWorkflowV2"/>'s hold-and-settle batch faulted:
    /// the batch may have committed, so a hold left unanswered is past the pivot as far as anyone knows. Its void then
    /// tells (already posted: completed; not found: nothing happened), and a void left unanswered too leaves the
    /// payment pending for the sweeper instead of failing it (compensation-failed) with its money perhaps moved.</param>
    internal static async Task<PaymentOutcome> MoveMoneyAsync(WorkflowContext context, PaymentInput input, ILogger log, bool batchMayHaveSettled = false)
    {
        context.SetCustomStatus(PaymentStep.Holding);
        var compensations = new Stack<string>();
        compensations.Push(nameof(VoidHoldActivity)); // before the step: a faulted hold call may still have held
        var hold = await SagaCalls.UntilAnsweredAsync<StepResult>(context, nameof(HoldFundsActivity), input, BeforePivotOf(input), input.PaymentId, log);
        if (hold.Value is not { } held)
        {
            log.LogError("Payment {PaymentId}: the ledger did not answer the hold within {Budget} ({Fault}); compensating",
                input.PaymentId, BeforePivotOf(input).Budget, hold.LastFault);
            return await CompensateAsync(context, input, compensations, PaymentReasons.LedgerUnavailable, log, unansweredIsUndetermined: batchMayHaveSettled);
        }

        if (!held.Succeeded)
        {
            // A refused hold applied nothing (the ledger refuses atomically): nothing to compensate.
            return PaymentOutcome.Failed(held.ErrorCode!);
        }

        return await SettleAsync(context, input, compensations, log);
    }

    /// <summary>The pivot. Settled: completed. Refused (nothing applied): compensate. No answer — the ledger down, or
    /// the settlement committed but not yet replicated — is never a failure: ask again with the same transfer ids
    /// (a committed settlement replays), and past the budget leave the outcome open for the sweeper.</summary>
    private static async Task<PaymentOutcome> SettleAsync(WorkflowContext context, PaymentInput input, Stack<string> compensations, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.Settling);
        var settle = await SagaCalls.UntilAnsweredAsync<StepResult>(context, nameof(SettlePaymentActivity), input, Pivot, input.PaymentId, log);
        switch (settle.Value)
        {
            case { Succeeded: true }:
                return PaymentOutcome.Completed();
            case { } refused:
                return await SettlementRefusedAsync(context, input, compensations, refused.ErrorCode!, log);
            default:
                log.LogError("Payment {PaymentId}: settlement undetermined after {Budget} ({Fault}); left for the sweeper",
                    input.PaymentId, Pivot.Budget, settle.LastFault);
                return PaymentOutcome.Undetermined(PaymentReasons.SettlementUndetermined);
        }
    }

    /// <summary>A refused settlement applied nothing: the hold is voided (with whatever else is registered).</summary>
    internal static Task<PaymentOutcome> SettlementRefusedAsync(
        WorkflowContext context, PaymentInput input, Stack<string> compensations, string reason, ILogger log)
    {
        log.LogWarning("Payment {PaymentId} could not settle ({Reason}); compensating", input.PaymentId, reason);
        return CompensateAsync(context, input, compensations, reason, log);
    }

    /// <summary>Runs the registered compensations in reverse order, each until it answers (bounded by
    /// <see cref="Forward"/>); one that never succeeds does not stop the others, and the payment then fails with
    /// compensation-failed (the hold's own timeout releases the funds). A void refused because the hold was posted
    /// means the pivot did commit: the payment completed.</summary>
    internal static async Task<PaymentOutcome> CompensateAsync(
        WorkflowContext context, PaymentInput input, Stack<string> compensations, string reason, ILogger log, bool unansweredIsUndetermined = false)
    {
        context.SetCustomStatus(PaymentStep.Compensating);
        var allSucceeded = true;
        var anyUnanswered = false;
        while (compensations.TryPop(out var compensation))
        {
            var answer = await SagaCalls.UntilAnsweredAsync<StepResult>(context, compensation, input, Forward, input.PaymentId, log);
            if (answer.Value is { Succeeded: false, ErrorCode: LedgerError.PendingTransferAlreadyPosted })
            {
                log.LogWarning("Payment {PaymentId}: its hold was already posted, so the settlement committed; completed", input.PaymentId);
                return PaymentOutcome.Completed();
            }

            if (answer.Value is not { Succeeded: true })
            {
                log.LogError("Compensation {Compensation} of {PaymentId} did not succeed: {Error}",
                    compensation, input.PaymentId, answer.Value?.ErrorCode ?? answer.LastFault);
                allSucceeded = false;
                anyUnanswered |= answer.Value is null;
            }
        }

        return CompensationOutcome(allSucceeded, anyUnanswered, reason, unansweredIsUndetermined);
    }

    /// <summary>How compensating ended: compensated when every step succeeded; otherwise failed (compensation-failed:
    /// the hold's own timeout releases the funds) — unless a step went unanswered where the settlement may have
    /// committed (<paramref name="unansweredIsUndetermined"/>): then the payment stays pending for the sweeper, since
    /// a pivot that may have committed is never reported as failed.</summary>
    public static PaymentOutcome CompensationOutcome(bool allSucceeded, bool anyUnanswered, string reason, bool unansweredIsUndetermined) =>
        allSucceeded ? PaymentOutcome.Compensated(reason)
        : anyUnanswered && unansweredIsUndetermined ? PaymentOutcome.Undetermined(PaymentReasons.SettlementUndetermined)
        : PaymentOutcome.Failed(PaymentReasons.CompensationFailed, [reason]);

    /// <summary>Before a run reports a payment failed (<see cref="PaymentWorkflowV4"/>, <see cref="ResumedPaymentWorkflowV3"/>):
    /// the hold's void, which bars a hold still on its way (the ledger refuses a hold whose void came first) and, after a
    /// takeover, the lost region's: its hold and settlement of this payment, shipped at fail-back, meet the bar and are
    /// kept as a conflict for the operator instead of moving the money of a payment reported failed (ADR 0003). An
    /// earlier run's money activity may also still be at work — a run terminated or replaced does not stop an activity
    /// a frozen orchestrator was running. A void refused because the hold was posted means that settlement committed:
    /// completed. Unanswered, the payment stays pending for the sweeper: failed is never reported while a hold may
    /// still land.</summary>
    internal static async Task<PaymentOutcome> BarLateHoldAsync(WorkflowContext context, PaymentInput input, PaymentOutcome failed, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.Compensating);
        var voided = await SagaCalls.UntilAnsweredAsync<StepResult>(context, nameof(VoidHoldActivity), input, Forward, input.PaymentId, log);
        switch (voided.Value)
        {
            case { Succeeded: true }:
                return failed;
            case { ErrorCode: LedgerError.PendingTransferAlreadyPosted }:
                log.LogWarning("Payment {PaymentId}: decided {Reason}, but an earlier run's settlement had committed; completed",
                    input.PaymentId, failed.Reason);
                return PaymentOutcome.Completed();
            case null:
                log.LogError("Payment {PaymentId}: decided {Reason}, but the hold's void went unanswered ({Fault}); left for the sweeper",
                    input.PaymentId, failed.Reason, voided.LastFault);
                return PaymentOutcome.Undetermined(PaymentReasons.LedgerUnavailable);
            default:
                log.LogError("Payment {PaymentId}: decided {Reason}; the hold's void was refused ({Error})",
                    input.PaymentId, failed.Reason, voided.Value.ErrorCode);
                return failed;
        }
    }

    /// <summary>Records a terminal outcome in the payment record (retried forward: the status must not be lost). If
    /// recording never succeeds the workflow's own output still holds the outcome, and the sweeper records it.</summary>
    internal static async Task<PaymentOutcome> FinishAsync(WorkflowContext context, PaymentInput input, PaymentOutcome outcome, ILogger log)
    {
        if (PaymentStatus.IsTerminal(outcome.Status))
        {
            context.SetCustomStatus(PaymentStep.Recording);
            var recorded = await SagaCalls.UntilAnsweredAsync<StepResult>(
                context, nameof(RecordOutcomeActivity), new RecordOutcomeInput(input, outcome), Forward, input.PaymentId, log);
            if (!recorded.Answered)
            {
                log.LogError("Payment {PaymentId}: outcome {Status} not recorded ({Error}); the API reads it from the workflow",
                    input.PaymentId, outcome.Status, recorded.LastFault);
            }
        }

        context.SetCustomStatus(PaymentStep.Done);
        return outcome;
    }
}
