using Payments.Domain;
using Payments.Orchestrator.Models;
using Payments.Risk.Core;

namespace Payments.Orchestrator.Activities;

public sealed class CheckRiskActivity(IRiskAssessor risk) : PaymentActivity<RiskAssessment>
{
    protected override Task<RiskAssessment> ExecuteAsync(PaymentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return risk.AssessAsync(
            new RiskInput(input.PaymentId, AccountId.Parse(input.DebtorAccountId), AccountId.Parse(input.CreditorAccountId), PaymentTransfers.Amount(input)),
            CancellationToken.None);
    }
}
