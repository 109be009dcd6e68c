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

    /// <summary>The step tells risk whose payment it is: a blocklist entry <c>{merchantId}~{accountId}</c> rejects the
    /// merchant's account though its ledger id is the plain one (the merchant opened the id first).</summary>
    [Fact]
    public async Task TheRiskStep_NamesTheMerchant_SoAnEntryByMerchantAndAccountBlocks()
    {
        var order = new PaymentOrder($"pay-{Guid.NewGuid():N}", "merchant-r", "acct-risk-d", "acct-risk-mule", 100, "USD", null);
        await saga.Records.CreateAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), CancellationToken.None);
        var blocked = RiskPolicy.Default with { BlockedAccounts = new HashSet<string>(["merchant-r~acct-risk-mule"], StringComparer.Ordinal) };
        var step = new CheckRiskActivity(new RiskEngine(blocked, TimeProvider.System), saga.Records, TimeProvider.System);

        var assessment = await step.RunAsync(null!, new PaymentInput(order, TimeSpan.FromMinutes(5)));

        Assert.Equal((RiskDecision.Reject, RiskAssessment.CreditorBlocked), (assessment.Decision, assessment.Reasons.Single()));
    }

    /// <summary>A saga review: a payment risk rejected, whose saga could not finish (its hold's void unanswered for the
    /// step's budget) and was resumed, was asked of risk again — and paid once a blocklist entry was removed. The
    /// rejection is recorded before the saga acts on it and binds: this step run again (approved or sent to review now)
    /// rejects it, and the resumed saga's first step reports it.</summary>
    [Fact]
    public async Task ARiskRejection_IsRecorded_AndBindsEveryLaterRun_ThoughRiskNowApproves()
    {
        var order = new PaymentOrder($"pay-{Guid.NewGuid():N}", "merchant-r", "acct-risk-d", "acct-risk-unblocked", 100, "USD", null);
        await saga.Records.CreateAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), CancellationToken.None);
        var input = new PaymentInput(order, TimeSpan.FromMinutes(5));
        var blocked = RiskPolicy.Default with { BlockedAccounts = new HashSet<string>(["acct-risk-unblocked"], StringComparer.Ordinal) };

        var first = await new CheckRiskActivity(new RiskEngine(blocked, TimeProvider.System), saga.Records, TimeProvider.System).RunAsync(null!, input);

        Assert.Equal(RiskDecision.Reject, first.Decision);
        Assert.NotNull((await saga.Records.GetAsync(order.PaymentId, CancellationToken.None))!.Value.Record.RiskRejectedAt);
        // The blocklist entry removed: risk approves now; and with a review threshold below the amount, it reviews.
        foreach (var now in new[] { RiskPolicy.Default, RiskPolicy.Default with { ReviewThresholdMinor = 1 } })
        {
            var again = await new CheckRiskActivity(new RiskEngine(now, TimeProvider.System), saga.Records, TimeProvider.System).RunAsync(null!, input);
            Assert.Equal((RiskDecision.Reject, RiskAssessment.RejectedBefore), (again.Decision, again.Reasons.Single()));
        }

        Assert.Equal(Payments.Domain.PaymentStatus.Pending, (await saga.Records.GetAsync(order.PaymentId, CancellationToken.None))!.Value.Record.Status); // never before the reviewers
        var facts = await new FindHoldActivity(saga.Ledger, saga.Records).RunAsync(null!, input);
        Assert.Equal(new LedgerFacts(false, null, RiskRejected: true), facts);
    }

    /// <summary>Every step's answer names the run that asked (<see cref="PaymentInput.Run"/>), so a saga can tell a
    /// terminated run's late answer from its own; a run without a token gets answers without one, as before.</summary>
    [Theory]
    [InlineData("run-7f3a")]
    [InlineData(null)]
    public async Task AStepsAnswer_NamesTheRunThatAsked(string? run)
    {
        var order = new PaymentOrder($"pay-{Guid.NewGuid():N}", "merchant-r", "acct-risk-d", "acct-risk-c", 100, "USD", null);
        await saga.Records.CreateAsync(PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), CancellationToken.None);
        var input = new PaymentInput(order, TimeSpan.FromMinutes(5)) { Run = run };

        var facts = await new FindHoldActivity(saga.Ledger, saga.Records).RunAsync(null!, input);
        var recorded = await new RecordOutcomeActivity(saga.Records, TimeProvider.System).RunAsync(null!, new RecordOutcomeInput(input, PaymentOutcome.Failed("test")));

        Assert.Equal((run, run), (facts.Run, recorded.Run));
        Assert.Equal(new LedgerFacts(false) { Run = run }, facts);
    }
}
