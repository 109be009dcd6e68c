using Dapr.Workflow;
using Microsoft.Extensions.Logging;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Workflows;

/// <summary>The payment saga: validate → risk check → (review: wait for a decision, with a deadline) → hold the
/// debtor's funds → settle (credit the creditor and post the hold, atomically) → completed.</summary>
/// <remarks>
/// Business refusals come back from activities as values and end the saga at once (never retried); only faults
/// (etcd unavailable, a crashed worker) throw, and those are retried with bounded backoff by the runtime. The hold's
/// compensation is registered before the hold runs, because a hold whose activity failed may still have been
/// applied; compensations run in reverse order, each retried and each idempotent. Every ledger transfer id derives
/// from the payment id (the workflow instance id), so replays and retries never apply anything twice.
/// </remarks>
public sealed class PaymentWorkflow : Workflow<PaymentInput, PaymentOutcome>
{
    public const string ApprovalEventName = "approval";

    /// <summary>Rounds of a compensation before the saga gives up on it (each round already retries per <see cref="CompensationRetry"/>).</summary>
    public const int MaxCompensationRounds = 3;

    public static readonly WorkflowTaskOptions LedgerRetry = new(new WorkflowRetryPolicy(
        maxNumberOfAttempts: 6, firstRetryInterval: TimeSpan.FromMilliseconds(200), backoffCoefficient: 2,
        maxRetryInterval: TimeSpan.FromSeconds(10), retryTimeout: TimeSpan.FromMinutes(1)));

    public static readonly WorkflowTaskOptions RiskRetry = new(new WorkflowRetryPolicy(
        maxNumberOfAttempts: 4, firstRetryInterval: TimeSpan.FromMilliseconds(200), backoffCoefficient: 2,
        maxRetryInterval: TimeSpan.FromSeconds(5), retryTimeout: TimeSpan.FromSeconds(30)));

    public static readonly WorkflowTaskOptions CompensationRetry = new(new WorkflowRetryPolicy(
        maxNumberOfAttempts: 8, firstRetryInterval: TimeSpan.FromMilliseconds(500), backoffCoefficient: 2,
        maxRetryInterval: TimeSpan.FromSeconds(30), retryTimeout: TimeSpan.FromMinutes(5)));

    public static readonly TimeSpan CompensationRoundDelay = TimeSpan.FromSeconds(5);

    public override async Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        var log = context.CreateReplaySafeLogger<PaymentWorkflow>();

        return await FinishAsync(context, input, await DecideAsync(context, input, log));
    }

    private static async Task<PaymentOutcome> DecideAsync(WorkflowContext context, PaymentInput input, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.Validating);
        var validation = await context.CallActivityAsync<StepResult>(nameof(ValidatePaymentActivity), input, LedgerRetry);
        if (!validation.Succeeded)
        {
            return PaymentOutcome.Failed(validation.ErrorCode!);
        }

        context.SetCustomStatus(PaymentStep.RiskCheck);
        var risk = await context.CallActivityAsync<RiskAssessment>(nameof(CheckRiskActivity), input, RiskRetry);
        if (risk.Decision == RiskDecision.Reject)
        {
            return PaymentOutcome.Failed(PaymentReasons.RiskRejected, risk.Reasons);
        }

        if (risk.Decision == RiskDecision.Review && await AwaitApprovalAsync(context, input) is { } refused)
        {
            return refused;
        }

        return await MoveMoneyAsync(context, input, log);
    }

    /// <summary>Waits for the reviewer; null when approved, else the failed outcome.</summary>
    private static async Task<PaymentOutcome?> AwaitApprovalAsync(WorkflowContext context, PaymentInput input)
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

    private static async Task<PaymentOutcome> MoveMoneyAsync(WorkflowContext context, PaymentInput input, ILogger log)
    {
        var compensations = new Stack<string>();
        try
        {
            context.SetCustomStatus(PaymentStep.Holding);
            compensations.Push(nameof(VoidHoldActivity)); // before the step: a failed hold call may still have held
            var hold = await context.CallActivityAsync<StepResult>(nameof(HoldFundsActivity), input, LedgerRetry);
            if (!hold.Succeeded)
            {
                // A refused hold applied nothing (the ledger refuses atomically): nothing to compensate.
                return PaymentOutcome.Failed(hold.ErrorCode!);
            }

            context.SetCustomStatus(PaymentStep.Settling);
            var settle = await context.CallActivityAsync<StepResult>(nameof(SettlePaymentActivity), input, LedgerRetry);
            if (settle.Succeeded)
            {
                return PaymentOutcome.Completed();
            }

            log.LogWarning("Payment {PaymentId} could not settle ({Reason}); compensating", input.PaymentId, settle.ErrorCode);
            return await CompensateAsync(context, input, compensations, settle.ErrorCode!, log);
        }
        catch (WorkflowTaskFailedException exception)
        {
            log.LogError("Payment {PaymentId}: a ledger step failed after its retries ({Error}); compensating", input.PaymentId, exception.FailureDetails.ErrorMessage);
            return await CompensateAsync(context, input, compensations, PaymentReasons.LedgerUnavailable, log);
        }
    }

    /// <summary>Runs the registered compensations in reverse order. Each is retried in bounded rounds and a failure
    /// is logged and does not stop the others; if one never succeeds the payment fails with compensation-failed (the
    /// hold's own timeout then releases the funds).</summary>
    private static async Task<PaymentOutcome> CompensateAsync(
        WorkflowContext context, PaymentInput input, Stack<string> compensations, string reason, ILogger log)
    {
        context.SetCustomStatus(PaymentStep.Compensating);
        var allSucceeded = true;
        while (compensations.TryPop(out var compensation))
        {
            allSucceeded &= await RunCompensationAsync(context, input, compensation, log);
        }

        return allSucceeded ? PaymentOutcome.Compensated(reason) : PaymentOutcome.Failed(PaymentReasons.CompensationFailed, [reason]);
    }

    private static async Task<bool> RunCompensationAsync(WorkflowContext context, PaymentInput input, string compensation, ILogger log)
    {
        for (var round = 1; round <= MaxCompensationRounds; round++)
        {
            try
            {
                var result = await context.CallActivityAsync<StepResult>(compensation, input, CompensationRetry);
                if (result.Succeeded)
                {
                    return true;
                }

                log.LogError("Compensation {Compensation} of {PaymentId} was refused: {Error}", compensation, input.PaymentId, result.ErrorCode);
                return false;
            }
            catch (WorkflowTaskFailedException exception)
            {
                log.LogWarning("Compensation {Compensation} of {PaymentId} failed (round {Round}): {Error}", compensation, input.PaymentId, round, exception.FailureDetails.ErrorMessage);
                if (round < MaxCompensationRounds)
                {
                    await context.CreateTimer(CompensationRoundDelay);
                }
            }
        }

        return false;
    }

    /// <summary>Records the outcome in the payment record (retried like a compensation: the status must not be lost),
    /// then ends. If recording never succeeds the workflow's own output still holds the outcome.</summary>
    private static async Task<PaymentOutcome> FinishAsync(WorkflowContext context, PaymentInput input, PaymentOutcome outcome)
    {
        context.SetCustomStatus(PaymentStep.Recording);
        try
        {
            await context.CallActivityAsync<StepResult>(nameof(RecordOutcomeActivity), new RecordOutcomeInput(input, outcome), CompensationRetry);
        }
        catch (WorkflowTaskFailedException exception)
        {
            context.CreateReplaySafeLogger<PaymentWorkflow>().LogError(
                "Payment {PaymentId}: outcome {Status} not recorded ({Error}); the API reads it from the workflow", input.PaymentId, outcome.Status, exception.FailureDetails.ErrorMessage);
        }

        context.SetCustomStatus(PaymentStep.Done);
        return outcome;
    }
}
