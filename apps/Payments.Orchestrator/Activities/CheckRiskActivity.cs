using Dapr.Workflow;
using Payments.Domain;
using Payments.Orchestrator.Models;
using Payments.Risk.Core;

namespace Payments.Orchestrator.Activities;

public sealed class CheckRiskActivity(IRiskAssessor risk) : WorkflowActivity<PaymentInput, RiskAssessment>
{
    public override Task<RiskAssessment> RunAsync(WorkflowActivityContext context, PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return SagaStep.TraceAsync(nameof(CheckRiskActivity), input, () => ExecuteAsync(input));
    }

    private Task<RiskAssessment> ExecuteAsync(PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return risk.AssessAsync(
            new RiskInput(input.PaymentId, AccountId.Parse(input.DebtorAccountId), AccountId.Parse(input.CreditorAccountId), PaymentTransfers.Amount(input)),
            CancellationToken.None);
    }
}
