using Dapr.Workflow;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Activities;

/// <summary>Base of the saga's activities: every run is traced and timed (<see cref="SagaStep"/>) under the
/// activity's name, its answer names the saga run it was asked by (<see cref="IRunAnswer"/>), and the step itself only
/// implements <see cref="ExecuteAsync"/>.</summary>
public abstract class PaymentActivity<TResult> : WorkflowActivity<PaymentInput, TResult>
{
    public sealed override async Task<TResult> RunAsync(WorkflowActivityContext context, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var answer = await SagaStep.TraceAsync(GetType().Name, input, () => ExecuteAsync(input));
        return answer is IRunAnswer<TResult> named && input.Run is not null ? named.ForRun(input.Run) : answer;
    }

    protected abstract Task<TResult> ExecuteAsync(PaymentInput input);
}
