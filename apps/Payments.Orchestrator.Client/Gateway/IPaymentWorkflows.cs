using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Client.Gateway;

/// <summary>What the API needs of the saga: start it, read it, answer its approval question.</summary>
/// <remarks>On Kubernetes a Dapr workflow client reaches only its own app's workflows (its sidecar schedules them for
/// its own app id), and PaymentWorkflow lives in the orchestrator. So the API does not use a workflow client there:
/// it calls the orchestrator's internal endpoints by service invocation (<see cref="HttpPaymentWorkflows"/>), and
/// the orchestrator drives its local sidecar (<c>DaprPaymentWorkflows</c>, Payments.Orchestrator).</remarks>
public interface IPaymentWorkflows
{
    /// <summary>Starts the payment's workflow unless one with its id exists already (idempotent).</summary>
    Task StartAsync(PaymentInput input, CancellationToken cancellationToken);

    /// <summary>Starts the workflow that resumes a payment an earlier run may have got past the decision in (the
    /// orchestrator's <c>ResumedPaymentWorkflow</c>: it asks the ledger first), unless one with its id exists already.
    /// For a payment whose record existed before the request: another region's run after a failover, or a run whose
    /// workflow is gone.</summary>
    Task ResumeAsync(PaymentInput input, CancellationToken cancellationToken);

    /// <summary>The workflow's state, or null when there is none with that id.</summary>
    Task<PaymentWorkflowState?> GetAsync(string paymentId, CancellationToken cancellationToken);

    Task RaiseApprovalAsync(string paymentId, ApprovalDecision decision, CancellationToken cancellationToken);
}

/// <summary>A payment workflow as seen from outside: whether it ended, where it is (a <see cref="PaymentStep"/>), how it
/// ended, when this run of it started and when its history last changed (null when the runtime does not say).</summary>
public sealed record PaymentWorkflowState(
    bool Ended, string? Step, PaymentOutcome? Outcome, DateTimeOffset? StartedAt = null, DateTimeOffset? LastProgressAt = null);
