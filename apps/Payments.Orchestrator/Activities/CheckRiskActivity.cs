using Payments.Domain;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Activities;

/// <summary>Asks the risk service, and writes a payment sent to review into its record as <c>awaiting_approval</c>
/// before the saga waits for the reviewer: the record is what the API reports (reads never ask the workflow), so the
/// status a client or a reviewer sees is the saga's own.</summary>
/// <remarks>Once sent to review a payment stays there: if this activity runs again (its answer was lost) and the risk
/// service now approves — velocity is counted per replica and in memory — the recorded review stands, so a payment the
/// record shows awaiting a reviewer never moves money unreviewed. Nor is it failed by a rejection that came later (a
/// blocklist or limit changed since): a reviewer may have approved it meanwhile, and the payment failed
/// <c>risk-rejected</c> with its approval recorded (a review); the reviewer's decision is what the saga acts on. A
/// rejection is recorded in the record before the saga acts on it and binds every later run, this step's and a resumed
/// saga's: risk asked again may approve once a blocklist or limit changed. A record that is missing (a saga started without the
/// API) or already terminal is left alone, and a terminal one is not approved: its first outcome stands (the record
/// keeps it), and no money moves for it again.</remarks>
public sealed class CheckRiskActivity(IRiskAssessor risk, PaymentRecordStore records, TimeProvider time) : PaymentActivity<RiskAssessment>
{
    protected override async Task<RiskAssessment> ExecuteAsync(PaymentInput input) =>
        (await AssessAsync(risk, records, time, input, beforeReview: null)).Risk;

    /// <summary>The risk check; for a payment sent to review, <paramref name="beforeReview"/> (when given) runs first
    /// and a refusal from it ends the check before anything is written: the payment is never shown awaiting a
    /// reviewer, nor announced to the merchant as such, when it could not be made anyway.</summary>
    internal static async Task<(RiskAssessment Risk, string? Refusal)> AssessAsync(
        IRiskAssessor risk, PaymentRecordStore records, TimeProvider time, PaymentInput input, Func<Task<StepResult>>? beforeReview)
    {
        ArgumentNullException.ThrowIfNull(input);
        var assessment = await risk.AssessAsync(
            new RiskInput(input.PaymentId, AccountId.ParseLedger(input.Order.DebtorAccountId), AccountId.ParseLedger(input.Order.CreditorAccountId), PaymentTransfers.Amount(input),
                input.CreatedAt, input.Order.MerchantId),
            CancellationToken.None);
        switch (assessment.Decision)
        {
            case RiskDecision.Review:
                // Rejected by an earlier run of this step: that stands, before the funds check (whose refusal would name
                // the funds, not the rejection). The read is kept for the change below.
                if ((await records.GetAndKeepAsync(input.PaymentId, CancellationToken.None))?.Record is { RiskRejectedAt: not null, Review: null })
                {
                    return (new RiskAssessment(RiskDecision.Reject, [RiskAssessment.RejectedBefore]), null);
                }

                if (beforeReview is not null && await beforeReview() is { Succeeded: false } refused)
                {
                    return (assessment, refused.ErrorCode);
                }

                var now = time.GetUtcNow();
                // Not once a reviewer decided (the API then set it pending again): this step run again would put a
                // decided payment back before the reviewers, and announce it to the merchant a second time.
                await records.ChangeAsync(input.PaymentId, record => record.Status == PaymentStatus.Pending && record.Review is null && record.RiskRejectedAt is null
                    ? record with { Status = PaymentStatus.AwaitingApproval, UpdatedAt = now }
                    : null, CancellationToken.None);
                return (assessment, null);
            case RiskDecision.Approve or RiskDecision.Reject:
                // Kept: the outcome's compare-and-swap, next, starts from this read instead of reading the record again.
                var found = (await records.GetAndKeepAsync(input.PaymentId, CancellationToken.None))?.Record;
                (RiskAssessment Risk, string? Refusal) decided = found switch
                {
                    // Finished already: a saga started for it again (no caller should, the API does not) moves no money.
                    { } record when PaymentStatus.IsTerminal(record.Status) => (new RiskAssessment(RiskDecision.Reject, [RiskAssessment.AlreadyFinished]), null),
                    // Sent to review by an earlier run of this step, and still there — or decided by a reviewer since
                    // (the record is pending again, the decision waits for the saga as an event): the review stands,
                    // so the reviewer's decision, a rejection included, is what the saga acts on.
                    { Status: PaymentStatus.AwaitingApproval } or { Review: not null } => (new RiskAssessment(RiskDecision.Review, [RiskAssessment.ReviewAlreadyRequested]), null),
                    // Rejected by an earlier run of this step: the rejection stands.
                    { RiskRejectedAt: not null } => (new RiskAssessment(RiskDecision.Reject, [RiskAssessment.RejectedBefore]), null),
                    _ => (assessment, null),
                };
                if (found is not null && decided.Risk == assessment && assessment.Decision == RiskDecision.Reject)
                {
                    // Recorded before the saga acts on it: if the saga cannot finish (its hold's void unanswered) and is
                    // resumed, the resumed run keeps it instead of asking risk again, which may approve by then (a saga
                    // review: a rejected payment was paid). A duplicate run of this step (at least once) may record a
                    // rejection after another run's approval was acted on: a payment whose hold is placed moves its
                    // money whatever the record says, and one without a hold yet is refused — the later answer.
                    var rejectedAt = time.GetUtcNow();
                    await records.ChangeAsync(input.PaymentId, record => record.Status == PaymentStatus.Pending && record.Review is null && record.RiskRejectedAt is null
                        ? record with { RiskRejectedAt = rejectedAt }
                        : null, CancellationToken.None);
                }

                return decided;
            default:
                return (assessment, null);
        }
    }
}
