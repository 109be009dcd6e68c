using Dapr.Workflow;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Workflows;

/// <summary>The saga through the local Dapr sidecar's workflow API (the app that hosts the workflow).</summary>
public sealed class DaprPaymentWorkflows(DaprWorkflowClient workflows) : IPaymentWorkflows
{
    /// <summary>The Dapr client waits for a sidecar without a deadline; every call here has one.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    public async Task StartAsync(PaymentInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var timeout = Bounded(cancellationToken);
        if (await workflows.GetWorkflowStateAsync(input.PaymentId, false, timeout.Token) is not { Exists: true })
        {
            await workflows.ScheduleNewWorkflowAsync(nameof(PaymentWorkflow), input.PaymentId, input, null, timeout.Token);
        }
    }

    public async Task<PaymentWorkflowState?> GetAsync(string paymentId, CancellationToken cancellationToken)
    {
        using var timeout = Bounded(cancellationToken);
        var state = await workflows.GetWorkflowStateAsync(paymentId, getInputsAndOutputs: true, timeout.Token);
        if (state is not { Exists: true })
        {
            return null;
        }

        var ended = state.RuntimeStatus is WorkflowRuntimeStatus.Completed or WorkflowRuntimeStatus.Failed or WorkflowRuntimeStatus.Terminated;
        var outcome = state.RuntimeStatus switch
        {
            WorkflowRuntimeStatus.Completed => state.ReadOutputAs<PaymentOutcome>() ?? PaymentOutcome.Failed(PaymentReasons.WorkflowOutputMissing),
            WorkflowRuntimeStatus.Failed or WorkflowRuntimeStatus.Terminated => PaymentOutcome.Failed(PaymentReasons.WorkflowFailed),
            _ => null,
        };
        return new PaymentWorkflowState(ended, state.ReadCustomStatusAs<string>(), outcome);
    }

    public async Task RaiseApprovalAsync(string paymentId, ApprovalDecision decision, CancellationToken cancellationToken)
    {
        using var timeout = Bounded(cancellationToken);
        await workflows.RaiseEventAsync(paymentId, PaymentWorkflow.ApprovalEventName, decision, timeout.Token);
    }

    private static CancellationTokenSource Bounded(CancellationToken cancellationToken)
    {
        var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CallTimeout);
        return timeout;
    }
}
