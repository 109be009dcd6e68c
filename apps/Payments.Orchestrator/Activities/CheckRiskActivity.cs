using Payments.Domain;
using Payments.Orchestrator.Client.Models;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Activities;

public sealed class CheckRiskActivity(IRiskAssessor risk) : PaymentActivity<RiskAssessment>
{
    protected override Task<RiskAssessment> ExecuteAsync(PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return risk.AssessAsync(
            new RiskInput(input.PaymentId, AccountId.Parse(input.Order.DebtorAccountId), AccountId.Parse(input.Order.CreditorAccountId), PaymentTransfers.Amount(input)),
            CancellationToken.None);
    }
}
