using Dapr.Workflow;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;

namespace Payments.Orchestrator.Activities;

/// <summary>What <see cref="RecordOutcomeActivity"/> records.</summary>
public sealed record RecordOutcomeInput(PaymentInput Payment, PaymentOutcome Outcome);

/// <summary>The saga's last step: writes the terminal status to the payment record, so the API reports it from its own
/// store (and still does after the workflow engine has purged the workflow). Idempotent: the first outcome stands.</summary>
public sealed class RecordOutcomeActivity(PaymentRecordStore records, TimeProvider time) : WorkflowActivity<RecordOutcomeInput, StepResult>
{
    public override Task<StepResult> RunAsync(WorkflowActivityContext context, RecordOutcomeInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return SagaStep.TraceAsync(nameof(RecordOutcomeActivity), input.Payment, async () =>
        {
            await records.RecordOutcomeAsync(input.Payment.PaymentId, input.Outcome, time.GetUtcNow(), CancellationToken.None);
            return StepResult.Ok.ForRun(input.Payment.Run); // named for its run, as PaymentActivity's answers are
        });
    }
}
