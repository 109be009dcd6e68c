using Dapr.Workflow;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Workflows;

namespace Payments.Orchestrator;

public static class OrchestratorRegistration
{
    /// <summary>Registers the payment saga and its activities with the Dapr workflow runtime: new payments start
    /// <see cref="PaymentWorkflowV5"/> and the sweeper <see cref="ResumedPaymentWorkflowV5"/>; the earlier versions stay
    /// for instances started before them.</summary>
    public static void RegisterPaymentSaga(this WorkflowRuntimeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.RegisterWorkflow<PaymentWorkflowV5>();
        options.RegisterWorkflow<ResumedPaymentWorkflowV5>();
        options.RegisterWorkflow<PaymentWorkflowV4>();
        options.RegisterWorkflow<PaymentWorkflowV3>();
        options.RegisterWorkflow<ResumedPaymentWorkflowV2>();
        options.RegisterWorkflow<ResumedPaymentWorkflowV3>();
        options.RegisterWorkflow<ResumedPaymentWorkflowV4>();
        options.RegisterWorkflow<PaymentWorkflowV2>();
        options.RegisterWorkflow<ResumedPaymentWorkflow>();
        options.RegisterWorkflow<PaymentWorkflow>();
        options.RegisterActivity<AssessPaymentActivity>();
        options.RegisterActivity<FindHoldActivity>();
        options.RegisterActivity<MoveMoneyActivity>();
        options.RegisterActivity<ValidatePaymentActivity>();
        options.RegisterActivity<CheckRiskActivity>();
        options.RegisterActivity<HoldFundsActivity>();
        options.RegisterActivity<SettlePaymentActivity>();
        options.RegisterActivity<VoidHoldActivity>();
        options.RegisterActivity<RecordOutcomeActivity>();
    }
}
