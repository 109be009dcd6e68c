using Dapr.Workflow;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>Base of the saga's activities: every run is traced and timed (<see cref="SagaStep"/>) under the
/// activity's name, and the step itself only implements <see cref="ExecuteAsync"/>.</summary>
public abstract class PaymentActivity<TResult> : WorkflowActivity<PaymentInput, TResult>
{
    public sealed override Task<TResult> RunAsync(WorkflowActivityContext context, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return SagaStep.TraceAsync(GetType().Name, input, () => ExecuteAsync(input));
    }

    protected abstract Task<TResult> ExecuteAsync(PaymentInput input);
}
