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

    /// <summary>Found in review: the same step run again after the creditor was blocked (a blocklist changed since the
    /// first run sent it to review) got Reject, and the saga failed the payment risk-rejected — one a reviewer may have
    /// approved meanwhile, its approval recorded. Awaiting a reviewer or decided by one, the review stands.</summary>
    [Theory]
    [InlineData(null)]
    [InlineData(PaymentReview.Approved)]
    public async Task ARiskStepRunAgain_ThatRiskNowRejects_KeepsThePaymentInReview(string? decision)
    {
        var order = new PaymentOrder($"pay-{Guid.NewGuid():N}", "merchant-r", "acct-risk-d", "acct-risk-blocked", 100, "USD", null);
        var accepted = PaymentRecord.Accepted(order, DateTimeOffset.UtcNow);
        await saga.Records.CreateAsync(decision is null
            ? accepted with { Status = Payments.Domain.PaymentStatus.AwaitingApproval }
            : accepted with { Review = new PaymentReview(decision, "key_reviewer", DateTimeOffset.UtcNow) }, CancellationToken.None);
        var blocked = RiskPolicy.Default with { BlockedAccounts = new HashSet<string>(["acct-risk-blocked"], StringComparer.Ordinal) };
        var step = new CheckRiskActivity(new RiskEngine(blocked, TimeProvider.System), saga.Records, TimeProvider.System);

        var assessment = await step.RunAsync(null!, new PaymentInput(order, TimeSpan.FromMinutes(5)));

        Assert.Equal((RiskDecision.Review, RiskAssessment.ReviewAlreadyRequested), (assessment.Decision, assessment.Reasons.Single()));

        // A payment risk rejects on its first run is rejected, as ever.
        var fresh = order with { PaymentId = $"pay-{Guid.NewGuid():N}" };
        await saga.Records.CreateAsync(PaymentRecord.Accepted(fresh, DateTimeOffset.UtcNow), CancellationToken.None);
        Assert.Equal(RiskDecision.Reject, (await step.RunAsync(null!, new PaymentInput(fresh, TimeSpan.FromMinutes(5)))).Decision);
    }
}
