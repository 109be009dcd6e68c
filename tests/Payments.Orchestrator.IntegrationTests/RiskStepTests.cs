using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Risk.Contracts;
using Payments.Risk.Core;

namespace Payments.Orchestrator.IntegrationTests;

/// <summary>The risk step run again (its answer lost, the activity retried) against a record on real etcd, with the
/// real risk engine: what the record says decides over what risk now says.</summary>
[Collection(SagaCollection.Name)]
public sealed class RiskStepTests(SagaFixture saga)
{
    /// <summary>Found in review: sent to review, then rejected by a reviewer (the record pending again, the rejection
    /// waiting for the saga as an event), the step run again got Approve from risk — velocity is counted per replica —
    /// and the saga moved the money of a payment a reviewer had rejected. A decided review stands.</summary>
    [Theory]
    [InlineData(PaymentReview.Rejected)]
    [InlineData(PaymentReview.Approved)]
    public async Task ARiskStepRunAgain_AfterAReviewersDecision_KeepsThePaymentInReview(string decision)
    {
        var order = new PaymentOrder($"pay-{Guid.NewGuid():N}", "merchant-r", "acct-risk-d", "acct-risk-c", 100, "USD", null);
        var decided = PaymentRecord.Accepted(order, DateTimeOffset.UtcNow) with { Review = new PaymentReview(decision, "key_reviewer", DateTimeOffset.UtcNow) };
        await saga.Records.CreateAsync(decided, CancellationToken.None);
        var step = new CheckRiskActivity(new RiskEngine(RiskPolicy.Default, TimeProvider.System), saga.Records, TimeProvider.System);

        // The context is the SDK's per-call object, which the step does not use.
        var assessment = await step.RunAsync(null!, new PaymentInput(order, TimeSpan.FromMinutes(5)));

        Assert.Equal((RiskDecision.Review, RiskAssessment.ReviewAlreadyRequested), (assessment.Decision, assessment.Reasons.Single()));
        Assert.Equal(Payments.Domain.PaymentStatus.Pending, (await saga.Records.GetAsync(order.PaymentId, CancellationToken.None))!.Value.Record.Status); // not put back before the reviewers
    }
}
