using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Activities;

/// <summary>What <see cref="AssessPaymentActivity"/> decided: the risk assessment, and for a payment sent to review
/// that the ledger could not make now, the ledger's refusal code (then nothing was written).</summary>
public sealed record PaymentAssessment(RiskAssessment Risk, string? Refusal) : IRunAnswer<PaymentAssessment>
{
    /// <inheritdoc/>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Run { get; init; }

    public PaymentAssessment ForRun(string? run) => this with { Run = run };
}

/// <summary><see cref="Workflows.PaymentWorkflowV2"/>'s first step: the risk check of <see cref="CheckRiskActivity"/>, and for a
/// payment sent to review, the checks of <see cref="ValidatePaymentActivity"/> before it is recorded (and announced)
/// as awaiting approval — a payment its debtor cannot fund fails at once instead of waiting for a reviewer who could
/// only approve it into a refused hold. A payment risk approves is not validated here: its hold checks the same
/// debtor-side facts atomically, and its settlement the creditor's.</summary>
public sealed class AssessPaymentActivity(IRiskAssessor risk, ILedger ledger, PaymentRecordStore records, TimeProvider time)
    : PaymentActivity<PaymentAssessment>
{
    protected override async Task<PaymentAssessment> ExecuteAsync(PaymentInput input)
    {
        var (assessment, refusal) = await CheckRiskActivity.AssessAsync(
            risk, records, time, input, beforeReview: () => ValidatePaymentActivity.ValidateAsync(ledger, input));
        return new PaymentAssessment(assessment, refusal);
    }
}
