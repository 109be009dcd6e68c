using Dapr.Workflow;
using Microsoft.Extensions.Logging.Abstractions;
using Moq;
using Payments.Domain;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Client.Records;
using Payments.Orchestrator.Workflows;
using static Payments.Orchestrator.Tests.SagaTestData;

namespace Payments.Orchestrator.Tests;

/// <summary>The saga the sweeper runs for a payment an earlier run left without an outcome
/// (<see cref="ResumedPaymentWorkflow"/>), with a mocked <see cref="WorkflowContext"/>; the sidecar integration tests run
/// it for real (Sweeper_ResumesAPaymentPastItsDecision_WithoutDecidingAgain).
/// Why a mock and not the sidecar: each case scripts what an activity answers (a ledger away for minutes, a void
/// refused, a hold that an earlier run placed) and moves the workflow's clock by each timer, which a real engine can
/// give only after real minutes and real outages; the cases the sidecar can run in seconds it runs for real
/// (tests/Payments.Orchestrator.IntegrationTests).</summary>
public sealed class ResumedPaymentWorkflowTests
{
    private readonly Mock<WorkflowContext> context = new(MockBehavior.Strict);
    private readonly List<string> calls = [];
    private readonly List<string> statuses = [];
    private readonly List<PaymentOutcome> recorded = [];
    private DateTime now = Start;

    public ResumedPaymentWorkflowTests()
    {
        context.Setup(c => c.CreateReplaySafeLogger<ResumedPaymentWorkflow>()).Returns(NullLogger<ResumedPaymentWorkflow>.Instance);
        context.Setup(c => c.SetCustomStatus(It.IsAny<object>())).Callback<object>(status => statuses.Add((string)status));
        context.SetupGet(c => c.CurrentUtcDateTime).Returns(() => now);
        context.Setup(c => c.CreateTimer(It.IsAny<TimeSpan>(), It.IsAny<CancellationToken>()))
            .Callback<TimeSpan, CancellationToken>((delay, _) => now += delay)
            .Returns(Task.CompletedTask);
    }

    /// <summary>A resumed saga (the sweeper's) asks the ledger first: a hold that exists means the payment was approved,
    /// so the money moves without deciding again (a second risk check or funds check could fail a payment whose
    /// settlement already committed); without one, the record's review binds; else it decides as on a first run.</summary>
    [Theory]
    [InlineData(true, null, new[] { nameof(FindHoldActivity), nameof(MoveMoneyActivity) }, PaymentStatus.Completed, null)]
    [InlineData(true, PaymentReview.Rejected, new[] { nameof(FindHoldActivity), nameof(MoveMoneyActivity) }, PaymentStatus.Completed, null)]
    [InlineData(false, PaymentReview.Approved, new[] { nameof(FindHoldActivity), nameof(MoveMoneyActivity) }, PaymentStatus.Completed, null)]
    [InlineData(false, PaymentReview.Rejected, new[] { nameof(FindHoldActivity), nameof(RecordOutcomeActivity) }, PaymentStatus.Failed, PaymentReasons.ReviewRejected)]
    [InlineData(false, null, new[] { nameof(FindHoldActivity), nameof(AssessPaymentActivity), nameof(MoveMoneyActivity) }, PaymentStatus.Completed, null)]
    public async Task Resumed_AsksTheLedgerFirst_AndDecidesNothingDecidedBefore(bool holdExists, string? review, string[] expectedCalls, string status, string? reason)
    {
        ArrangeResumed(new LedgerFacts(holdExists, review));

        var outcome = await new ResumedPaymentWorkflow().RunAsync(context.Object, Payment);

        Assert.Equal(new PaymentOutcome(status, reason), outcome);
        Assert.Equal(expectedCalls, calls);
        Assert.Equal(PaymentStep.Resuming, statuses[0]);
    }

    /// <summary>A saga review: a payment risk rejected, whose void went unanswered, was resumed, asked risk again and
    /// paid once a blocklist entry was removed. V4 keeps risk's rejection the record holds, as a reviewer's (voiding the
    /// hold first, as V3 does); V3 — its instances replay as they ran — decides again.</summary>
    [Theory]
    [InlineData(true, new[] { nameof(FindHoldActivity), nameof(VoidHoldActivity) })]
    [InlineData(false, new[] { nameof(FindHoldActivity), nameof(AssessPaymentActivity), nameof(MoveMoneyActivity) })]
    public async Task ResumedV4_KeepsRisksRecordedRejection_V3DecidesAgain(bool v4, string[] expectedCalls)
    {
        ArrangeResumed(new LedgerFacts(false, null, RiskRejected: true));
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(VoidHoldActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(VoidHoldActivity))).ReturnsAsync(StepResult.Ok);

        var outcome = v4 ? await new ResumedPaymentWorkflowV4().RunAsync(context.Object, Payment) : await new ResumedPaymentWorkflowV3().RunAsync(context.Object, Payment);

        Assert.Equal(expectedCalls, calls.Where(call => call != nameof(RecordOutcomeActivity)));
        Assert.Equal(v4 ? PaymentOutcome.Failed(PaymentReasons.RiskRejected) : new PaymentOutcome(PaymentStatus.Completed, null), outcome);
    }

    [Fact]
    public async Task Resumed_WhileTheLedgerDoesNotAnswer_StaysPendingForTheSweeper_DecidingNothing()
    {
        ArrangeResumed(facts: null);

        var outcome = await new ResumedPaymentWorkflow().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Undetermined(PaymentReasons.LedgerUnavailable), outcome);
        Assert.All(calls, call => Assert.Equal(nameof(FindHoldActivity), call));
        Assert.True(calls.Count > 1, "asked once only");
        Assert.Empty(recorded);
        Assert.InRange(now - Start, TimeSpan.Zero, PaymentWorkflow.BeforePivot.Budget);
    }

    /// <summary>The finding: a resumed run that found no hold and decided "failed" recorded it without voiding the
    /// hold, and an earlier run's money activity still at work (a frozen orchestrator; terminating a run does not stop
    /// it) could then hold and settle: money moved, payment reported failed. V3 voids first — the void bars a hold
    /// still on its way — and a void refused as already posted means that settlement committed.</summary>
    [Theory]
    [InlineData("voided", PaymentStatus.Failed, PaymentReasons.RiskRejected, true)]
    [InlineData("posted", PaymentStatus.Completed, null, true)]
    [InlineData("unanswered", PaymentStatus.Pending, PaymentReasons.LedgerUnavailable, false)]
    public async Task ResumedV3_BeforeItReportsFailed_VoidsTheHold_WhichTellsWhetherAnEarlierRunSettled(
        string voidAnswer, string status, string? reason, bool recordsIt)
    {
        ArrangeResumed(new LedgerFacts(false, null));
        context.Setup(c => c.CallActivityAsync<PaymentAssessment>(nameof(AssessPaymentActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(AssessPaymentActivity)))
            .ReturnsAsync(new PaymentAssessment(new Payments.Risk.Contracts.RiskAssessment(Payments.Risk.Contracts.RiskDecision.Reject, ["velocity"]), null));
        var voiding = context.Setup(c => c.CallActivityAsync<StepResult>(nameof(VoidHoldActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(VoidHoldActivity)));
        _ = voidAnswer switch
        {
            "voided" => voiding.ReturnsAsync(StepResult.Ok),
            "posted" => voiding.ReturnsAsync(StepResult.Refused(Payments.Ledger.Contracts.LedgerError.PendingTransferAlreadyPosted)),
            _ => voiding.ThrowsAsync(Failure("ledger unreachable")),
        };

        var outcome = await new ResumedPaymentWorkflowV3().RunAsync(context.Object, Payment);

        Assert.Equal((status, reason), (outcome.Status, outcome.Reason));
        Assert.Equal([nameof(FindHoldActivity), nameof(AssessPaymentActivity), nameof(VoidHoldActivity)], calls.Take(3));
        Assert.Equal(recordsIt ? [outcome] : [], recorded);
    }

    private void ArrangeResumed(LedgerFacts? facts)
    {
        var find = context.Setup(c => c.CallActivityAsync<LedgerFacts>(nameof(FindHoldActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(FindHoldActivity)));
        if (facts is null)
        {
            find.ThrowsAsync(Failure("ledger unreachable"));
        }
        else
        {
            find.ReturnsAsync(facts);
        }

        context.Setup(c => c.CallActivityAsync<PaymentAssessment>(nameof(AssessPaymentActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(AssessPaymentActivity)))
            .ReturnsAsync(new PaymentAssessment(Approve, null));
        context.Setup(c => c.CallActivityAsync<MoveMoneyResult>(nameof(MoveMoneyActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(MoveMoneyActivity)))
            .ReturnsAsync(MoveMoneyResult.Completed(recorded: true));
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(RecordOutcomeActivity), It.IsAny<RecordOutcomeInput>(), It.IsAny<WorkflowTaskOptions>()))
            .Callback<string, object, WorkflowTaskOptions>((_, recordInput, _) =>
            {
                calls.Add(nameof(RecordOutcomeActivity));
                recorded.Add(((RecordOutcomeInput)recordInput).Outcome);
            })
            .ReturnsAsync(StepResult.Ok);
    }
}
