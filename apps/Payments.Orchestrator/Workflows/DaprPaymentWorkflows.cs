using Dapr.Workflow;
using Payments.Orchestrator.Client.Gateway;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Workflows;

/// <summary>The saga through the local Dapr sidecar's workflow API (the app that hosts the workflow).</summary>
public sealed class DaprPaymentWorkflows(DaprWorkflowClient workflows) : IPaymentWorkflows
{
    /// <summary>The Dapr client waits for a sidecar without a deadline; every call here has one.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Starts of one payment are serialised in this process: the API's start (a client's retry) and the
    /// sweeper's can race, and "does it exist? then schedule" is not atomic — the local in-memory engine would replace a
    /// running instance scheduled twice (daprd refuses the second). Striped: a bounded set of locks.</summary>
    private const int StartLockStripes = 64;

    /// <summary>The saga new payments (and restarted ones) run; older versions stay registered for instances started
    /// before (ADR 0006).</summary>
    public const string CurrentWorkflow = nameof(PaymentWorkflowV5);

    /// <summary>The saga the sweeper runs for a payment an earlier run left without an outcome.</summary>
    public const string ResumedWorkflow = nameof(ResumedPaymentWorkflowV5);

    private readonly SemaphoreSlim[] startLocks = [.. Enumerable.Range(0, StartLockStripes).Select(_ => new SemaphoreSlim(1, 1))];

    public Task StartAsync(PaymentInput input, CancellationToken cancellationToken) => StartAsync(CurrentWorkflow, input, cancellationToken);

    /// <summary>Starts <see cref="ResumedWorkflow"/> for a payment that has no saga (unless it has one by now).</summary>
    public Task ResumeAsync(PaymentInput input, CancellationToken cancellationToken) => StartAsync(ResumedWorkflow, input, cancellationToken);

    private async Task StartAsync(string workflow, PaymentInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var timeout = Bounded(cancellationToken);
        var gate = StartLock(input.PaymentId);
        await gate.WaitAsync(timeout.Token);
        try
        {
            if (await workflows.GetWorkflowStateAsync(input.PaymentId, false, timeout.Token) is not { Exists: true })
            {
                await workflows.ScheduleNewWorkflowAsync(workflow, input.PaymentId, Scheduled(input), null, timeout.Token);
            }
        }
        finally
        {
            gate.Release();
        }
    }

    private SemaphoreSlim StartLock(string paymentId) =>
        startLocks[(int)((uint)StringComparer.Ordinal.GetHashCode(paymentId) % StartLockStripes)];

    public async Task<PaymentWorkflowState?> GetAsync(string paymentId, CancellationToken cancellationToken)
    {
        using var timeout = Bounded(cancellationToken);
        var state = await workflows.GetWorkflowStateAsync(paymentId, getInputsAndOutputs: true, timeout.Token);
        if (state is not { Exists: true })
        {
            return null;
        }

        // A workflow that failed or was terminated has no outcome: whether its money moved is the ledger's to say, so
        // the payment stays pending (never reported failed) until the sweeper resumes it. An ended run says when it
        // started too: in a takeover, the output of a run from an earlier epoch is not this payment's outcome.
        DateTimeOffset? started = state.CreatedAt == default ? null : state.CreatedAt;
        return state.RuntimeStatus switch
        {
            WorkflowRuntimeStatus.Completed => new PaymentWorkflowState(true, state.ReadCustomStatusAs<string>(), state.ReadOutputAs<PaymentOutcome>(), started),
            var status when Ended(status) => new PaymentWorkflowState(true, PaymentReasons.WorkflowFailed, null, started),
            _ => new PaymentWorkflowState(false, state.ReadCustomStatusAs<string>(), null, started, state.LastUpdatedAt == default ? null : state.LastUpdatedAt),
        };
    }

    /// <summary>Whether a run has ended: completed, failed or terminated, the states a purge takes. Any other is
    /// running or may run (pending, suspended, Dapr 1.17+'s stalled: a version its workers do not know), and a restart
    /// terminates it first.</summary>
    private static bool Ended(WorkflowRuntimeStatus status) =>
        status is WorkflowRuntimeStatus.Completed or WorkflowRuntimeStatus.Failed or WorkflowRuntimeStatus.Terminated;

    /// <summary>Runs the payment's saga again, as <see cref="ResumedWorkflow"/>, with the same instance id: a finished
    /// run's state is purged first (a running one is terminated). It decides nothing decided before, and its transfers
    /// replay, so whatever the earlier run applied counts once.</summary>
    public async Task RestartAsync(PaymentInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var timeout = Bounded(cancellationToken);
        var gate = StartLock(input.PaymentId);
        await gate.WaitAsync(timeout.Token);
        try
        {
            await RestartLockedAsync(input, timeout.Token);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task RestartLockedAsync(PaymentInput input, CancellationToken cancellationToken)
    {
        using var timeout = Bounded(cancellationToken);
        var state = await workflows.GetWorkflowStateAsync(input.PaymentId, false, timeout.Token);
        // Any instance not ended (a pending or stalled one cannot be purged either, and its restart failed at every pass).
        if (state is { Exists: true } && !Ended(state.RuntimeStatus))
        {
            await workflows.TerminateWorkflowAsync(input.PaymentId, null, timeout.Token);
            await workflows.WaitForWorkflowCompletionAsync(input.PaymentId, false, timeout.Token);
        }

        if (state is { Exists: true })
        {
            await workflows.PurgeInstanceAsync(input.PaymentId, timeout.Token);
        }

        await workflows.ScheduleNewWorkflowAsync(ResumedWorkflow, input.PaymentId, Scheduled(input), null, timeout.Token);
    }

    /// <summary>The input a saga is scheduled with: this orchestrator's budget for the steps before the pivot, whatever
    /// the caller sent (it is the orchestrator's to bound; see <see cref="PaymentInput.BeforePivotBudget"/>), and a
    /// token of its own for this run (<see cref="PaymentInput.Run"/>), never the caller's.</summary>
    private static PaymentInput Scheduled(PaymentInput input) =>
        input with { BeforePivotBudget = PaymentWorkflow.BeforePivotBudgetNow, Run = Guid.NewGuid().ToString("N") };

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
