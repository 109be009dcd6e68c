using Dapr.Workflow;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Orchestrator.Workflows;

/// <summary>The saga the stuck-payment sweeper runs for a payment an earlier run left without an outcome (settlement
/// undetermined past the pivot's budget, a failed or terminated run, no saga after a takeover or a purge). It decides
/// nothing an earlier run decided: it asks first (<see cref="FindHoldActivity"/>). A hold that exists was placed after
/// approval, so the money moves — hold and settlement replay if applied — where deciding again would check risk and the
/// debtor's funds against a balance the settlement may already have taken, and record a payment whose money moved as
/// failed. Without a hold, a reviewer's decision, or risk's rejection, the record holds binds; otherwise the payment is decided as
/// <see cref="PaymentWorkflowV2"/> decides it. Unanswered, the payment stays pending and the sweeper comes back.</summary>
/// <remarks>A workflow of its own name, not a branch of <see cref="PaymentWorkflowV2"/> (ADR 0006: a changed sequence of
/// steps gets a new name): instances of V2 replay unchanged. During a rolling upgrade an orchestrator that does not
/// know the name fails its instance ("Workflow '…' is not registered in this app", Dapr.Workflow 1.19, seen in the
/// integration tests), and the sweeper runs a failed run again, until it lands on an orchestrator that knows it.</remarks>
public sealed class ResumedPaymentWorkflow : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) => RunAsync(context, input, batchMayHaveSettled: false);

    /// <summary>The resumed saga; <paramref name="batchMayHaveSettled"/> as <see cref="PaymentWorkflowV3"/> sets it;
    /// <paramref name="barLateHold"/> as <see cref="ResumedPaymentWorkflowV3"/> sets it; <paramref name="bindRiskRejection"/>
    /// as <see cref="ResumedPaymentWorkflowV4"/> sets it.</summary>
    internal static async Task<PaymentOutcome> RunAsync(
        WorkflowContext context, PaymentInput input, bool batchMayHaveSettled, bool barLateHold = false, bool bindRiskRejection = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        input = input.CreatedAt is null ? input with { CreatedAt = context.CurrentUtcDateTime } : input;
        var log = context.CreateReplaySafeLogger<ResumedPaymentWorkflow>();
        var decided = await ResumeAsync(context, input, log, batchMayHaveSettled, bindRiskRejection);
        if (barLateHold && !decided.Recorded && decided.Outcome.Status == PaymentStatus.Failed)
        {
            decided = (await PaymentWorkflow.BarLateHoldAsync(context, input, decided.Outcome, log), false);
        }

        return await PaymentWorkflowV2.EndAsync(context, input, decided, log);
    }

    private static async Task<(PaymentOutcome Outcome, bool Recorded)> ResumeAsync(
        WorkflowContext context, PaymentInput input, ILogger log, bool batchMayHaveSettled, bool bindRiskRejection)
    {
        context.SetCustomStatus(PaymentStep.Resuming);
        var facts = await SagaCalls.UntilAnsweredAsync<LedgerFacts>(
            context, nameof(FindHoldActivity), input, PaymentWorkflow.BeforePivotOf(input), input.PaymentId, log);
        switch (facts.Value)
        {
            case null:
                log.LogError("Payment {PaymentId}: resumed, but the ledger did not say whether it holds the payment's funds ({Fault}); left for the sweeper",
                    input.PaymentId, facts.LastFault);
                return (PaymentOutcome.Undetermined(PaymentReasons.LedgerUnavailable), false);
            case { HoldExists: true }:
                log.LogWarning("Payment {PaymentId}: resumed with its hold in the ledger, so it was approved; moving the money", input.PaymentId);
                return await PaymentWorkflowV2.MoveMoneyAsync(context, input, log, batchMayHaveSettled);
        }

        return facts.Value.ReviewDecision switch
        {
            PaymentReview.Approved => await PaymentWorkflowV2.MoveMoneyAsync(context, input, log, batchMayHaveSettled),
            PaymentReview.Rejected => (PaymentOutcome.Failed(PaymentReasons.ReviewRejected), false),
            // Risk's recorded rejection binds as a reviewer's does (V4 on: a step sequence of its own, ADR 0006).
            _ when bindRiskRejection && facts.Value.RiskRejected => (PaymentOutcome.Failed(PaymentReasons.RiskRejected), false),
            _ => await PaymentWorkflowV2.DecideAsync(context, input, log, batchMayHaveSettled),
        };
    }
}

/// <summary><see cref="ResumedPaymentWorkflow"/> with <see cref="PaymentWorkflowV3"/>'s one change: the sweeper's runs
/// started from this version on, under a name of their own (ADR 0006).</summary>
public sealed class ResumedPaymentWorkflowV2 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) =>
        ResumedPaymentWorkflow.RunAsync(context, input, batchMayHaveSettled: true);
}

/// <summary><see cref="ResumedPaymentWorkflowV2"/> that voids the hold before it reports a payment failed
/// (<see cref="ResumedPaymentWorkflow.RunAsync(WorkflowContext, PaymentInput, bool, bool)"/>): a step more, so a name of its own
/// (ADR 0006); V2's instances replay unchanged.</summary>
public sealed class ResumedPaymentWorkflowV3 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) =>
        ResumedPaymentWorkflow.RunAsync(context, input, batchMayHaveSettled: true, barLateHold: true);
}

/// <summary><see cref="ResumedPaymentWorkflowV3"/> in which risk's rejection, recorded in the payment's record
/// (<see cref="LedgerFacts.RiskRejected"/>), binds as a reviewer's decision does: asked again, risk may approve once a
/// blocklist entry or a limit changed, and a rejected payment was paid. Another sequence of steps for the same answer
/// of <see cref="FindHoldActivity"/>, so a name of its own (ADR 0006): V3's instances replay unchanged, and an
/// orchestrator from before does not run it as V3.</summary>
public sealed class ResumedPaymentWorkflowV4 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) =>
        ResumedPaymentWorkflow.RunAsync(context, input, batchMayHaveSettled: true, barLateHold: true, bindRiskRejection: true);
}

/// <summary><see cref="ResumedPaymentWorkflowV4"/> for runs scheduled with a token of their own, as
/// <see cref="PaymentWorkflowV5"/> is to V4: the sweeper's runs — each scheduled after terminating and purging the run
/// before under the same instance id, whose late answers would otherwise be read as this run's.</summary>
public sealed class ResumedPaymentWorkflowV5 : Workflow<PaymentInput, PaymentOutcome>
{
    public override Task<PaymentOutcome> RunAsync(WorkflowContext context, PaymentInput input) =>
        ResumedPaymentWorkflow.RunAsync(context, input, batchMayHaveSettled: true, barLateHold: true, bindRiskRejection: true);
}
