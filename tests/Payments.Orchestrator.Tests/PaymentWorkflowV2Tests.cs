using Dapr.Workflow;
using Microsoft.Extensions.Logging.Abstractions;
using Moq;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Workflows;
using Payments.Risk.Contracts;
using static Payments.Orchestrator.Tests.SagaTestData;

namespace Payments.Orchestrator.Tests;

/// <summary>The saga new payments run (<see cref="PaymentWorkflowV2"/>) with a mocked <see cref="WorkflowContext"/>:
/// two activities when nothing goes wrong, the steps one by one when the money activity faults, and every refusal
/// and compensation as before. The sidecar integration tests run it for real.
/// Why a mock and not the sidecar: each case scripts what an activity answers (a ledger away for minutes, a void
/// refused, a hold that an earlier run placed) and moves the workflow's clock by each timer, which a real engine can
/// give only after real minutes and real outages; the cases the sidecar can run in seconds it runs for real
/// (tests/Payments.Orchestrator.IntegrationTests).</summary>
public sealed class PaymentWorkflowV2Tests
{
    private readonly Mock<WorkflowContext> context = new(MockBehavior.Strict);
    private readonly List<string> calls = [];
    private readonly List<string> statuses = [];
    private readonly List<PaymentOutcome> recorded = [];
    private DateTime now = Start;

    public PaymentWorkflowV2Tests()
    {
        context.Setup(c => c.CreateReplaySafeLogger<PaymentWorkflowV2>()).Returns(NullLogger<PaymentWorkflowV2>.Instance);
        context.Setup(c => c.SetCustomStatus(It.IsAny<object>())).Callback<object>(status => statuses.Add((string)status));
        context.SetupGet(c => c.CurrentUtcDateTime).Returns(() => now);
        context.Setup(c => c.CreateTimer(It.IsAny<TimeSpan>(), It.IsAny<CancellationToken>()))
            .Callback<TimeSpan, CancellationToken>((delay, _) => now += delay)
            .Returns(Task.CompletedTask);
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(RecordOutcomeActivity), It.IsAny<RecordOutcomeInput>(), It.IsAny<WorkflowTaskOptions>()))
            .Callback<string, object, WorkflowTaskOptions>((_, input, _) => recorded.Add(((RecordOutcomeInput)input).Outcome))
            .ReturnsAsync(StepResult.Ok);
        SetupStep(nameof(HoldFundsActivity), StepResult.Ok);
        SetupStep(nameof(SettlePaymentActivity), StepResult.Ok);
        SetupStep(nameof(VoidHoldActivity), StepResult.Ok);
    }

    [Fact]
    public async Task Approved_TwoActivities_TheMoneyActivityRecordsTheOutcome()
    {
        Arrange(Approve, MoveMoneyResult.Completed(recorded: true));

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal([nameof(AssessPaymentActivity), nameof(MoveMoneyActivity)], calls);
        Assert.Empty(recorded); // recorded inside the money activity: no third round trip
        Assert.Equal([PaymentStep.RiskCheck, PaymentStep.MovingMoney, PaymentStep.Done], statuses);
    }

    [Fact]
    public async Task SettledButNotRecorded_TheLastStepRecordsIt()
    {
        Arrange(Approve, MoveMoneyResult.Completed(recorded: false));

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal([PaymentOutcome.Completed()], recorded);
    }

    [Fact]
    public async Task HoldRefused_FailsWithTheLedgersCode_NothingToCompensate()
    {
        Arrange(Approve, MoveMoneyResult.HoldRefused(LedgerError.InsufficientFunds));

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Failed(LedgerError.InsufficientFunds), outcome);
        Assert.DoesNotContain(nameof(VoidHoldActivity), calls);
        Assert.Equal([outcome], recorded);
    }

    [Fact]
    public async Task SettleRefused_VoidsTheHold_AndEndsCompensated()
    {
        Arrange(Approve, MoveMoneyResult.SettleRefused(LedgerError.AccountClosed));

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Compensated(LedgerError.AccountClosed), outcome);
        Assert.Equal([nameof(AssessPaymentActivity), nameof(MoveMoneyActivity), nameof(VoidHoldActivity)], calls);
        Assert.Equal([outcome], recorded);
    }

    [Fact]
    public async Task MoneyActivityFaulted_TakesTheStepsOneByOne_WithTheSameIds_AndCompletes()
    {
        // The fault may have come after the hold or even after the settlement: the steps replay as applied.
        Arrange(Approve, moveMoney: null);

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal([nameof(AssessPaymentActivity), nameof(MoveMoneyActivity), nameof(HoldFundsActivity), nameof(SettlePaymentActivity)], calls);
        Assert.Single(calls, nameof(MoveMoneyActivity)); // never retried as a whole
        Assert.Equal([PaymentOutcome.Completed()], recorded);
    }

    /// <summary>The money activity faulted — maybe after its batch committed — and the ledger stays away past the hold's
    /// and the void's budgets: the payment was failed (compensation-failed), terminal, with its money perhaps moved.
    /// Past a batch that may have settled, an unanswered compensation leaves the payment pending for the sweeper.</summary>
    /// <para>In <see cref="PaymentWorkflowV3"/>, new payments' saga; <see cref="PaymentWorkflowV2"/> keeps its decision
    /// for the instances that replay it (ADR 0006).</para>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task MoneyActivityFaulted_AndTheLedgerStaysAway_LeavesThePaymentPending_NeverFailed(bool v3)
    {
        Arrange(Approve, moveMoney: null);
        foreach (var step in new[] { nameof(HoldFundsActivity), nameof(VoidHoldActivity) })
        {
            context.Setup(c => c.CallActivityAsync<StepResult>(step, Payment, It.IsAny<WorkflowTaskOptions>()))
                .Callback(() => calls.Add(step))
                .ThrowsAsync(Failure("ledger unreachable"));
        }

        var outcome = v3 ? await new PaymentWorkflowV3().RunAsync(context.Object, Payment) : await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Contains(nameof(VoidHoldActivity), calls); // the void was asked: its answer would have told
        Assert.DoesNotContain(nameof(SettlePaymentActivity), calls);
        if (v3)
        {
            Assert.Equal(PaymentOutcome.Undetermined(PaymentReasons.SettlementUndetermined), outcome);
            Assert.Empty(recorded); // not terminal: the sweeper resumes it
        }
        else
        {
            Assert.Equal(Payments.Domain.PaymentStatus.Failed, outcome.Status); // unchanged for V2's running instances
            Assert.Equal([outcome], recorded);
        }
    }

    [Fact]
    public async Task Review_WaitsForTheReviewer_ThenMovesTheMoney()
    {
        Arrange(Review, MoveMoneyResult.Completed(recorded: true), approval: new ApprovalDecision(true, "reviewer-1"));

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal([nameof(AssessPaymentActivity), nameof(MoveMoneyActivity)], calls);
        Assert.True(statuses.IndexOf(PaymentStep.AwaitingApproval) < statuses.IndexOf(PaymentStep.MovingMoney));
    }

    [Fact]
    public async Task Review_OfAPaymentTheLedgerWouldRefuse_FailsAtOnce_WithoutAskingTheReviewer()
    {
        Arrange(Review, MoveMoneyResult.Completed(recorded: true), refusal: LedgerError.InsufficientFunds);

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Failed(LedgerError.InsufficientFunds), outcome);
        Assert.DoesNotContain(PaymentStep.AwaitingApproval, statuses);
        Assert.DoesNotContain(nameof(MoveMoneyActivity), calls);
        Assert.Equal([outcome], recorded);
    }

    [Fact]
    public async Task ReviewRejected_Fails_WithoutMovingMoney()
    {
        Arrange(Review, MoveMoneyResult.Completed(recorded: true), approval: new ApprovalDecision(false, "reviewer-1"));

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Failed(PaymentReasons.ReviewRejected), outcome);
        Assert.DoesNotContain(nameof(MoveMoneyActivity), calls);
        Assert.Equal([outcome], recorded);
    }

    [Fact]
    public async Task RiskReject_Fails_WithoutMovingMoney()
    {
        Arrange(new RiskAssessment(RiskDecision.Reject, [RiskAssessment.DebtorBlocked]), MoveMoneyResult.Completed(recorded: true));

        var outcome = await new PaymentWorkflowV2().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Failed(PaymentReasons.RiskRejected, [RiskAssessment.DebtorBlocked]).Status, outcome.Status);
        Assert.Equal([nameof(AssessPaymentActivity)], calls);
    }

    /// <summary>The finding: after a takeover, a client's retry of a payment the lost region had settled but not shipped
    /// starts a first run here, which decided "failed" (risk, funds, review) and left no trace in the ledger; at
    /// fail-back the lost region's hold and settlement applied unflagged. V4 voids the hold before it reports failed —
    /// the void bars that hold, which the journal applier then keeps as a conflict — on every path to failed; V3 (its
    /// running instances) replays unchanged, without the void.</summary>
    [Theory]
    [InlineData("risk-rejected", true)]
    [InlineData("risk-rejected", false)]
    [InlineData("review-rejected", true)]
    [InlineData("ledger-refused-review", true)]
    [InlineData("hold-refused", true)]
    [InlineData("hold-refused", false)]
    public async Task V4_BeforeItReportsFailed_VoidsTheHold_SoALateHoldIsBarred(string path, bool v4)
    {
        var moveMoney = path == "hold-refused" ? MoveMoneyResult.HoldRefused(LedgerError.InsufficientFunds) : MoveMoneyResult.Completed(recorded: true);
        switch (path)
        {
            case "risk-rejected":
                Arrange(new RiskAssessment(RiskDecision.Reject, [RiskAssessment.DebtorBlocked]), moveMoney);
                break;
            case "review-rejected":
                Arrange(Review, moveMoney, approval: new ApprovalDecision(false, "reviewer-1"));
                break;
            case "ledger-refused-review":
                Arrange(Review, moveMoney, refusal: LedgerError.InsufficientFunds);
                break;
            default:
                Arrange(Approve, moveMoney);
                break;
        }

        var outcome = v4 ? await new PaymentWorkflowV4().RunAsync(context.Object, Payment) : await new PaymentWorkflowV3().RunAsync(context.Object, Payment);

        Assert.Equal(Payments.Domain.PaymentStatus.Failed, outcome.Status);
        Assert.Equal(v4 ? 1 : 0, calls.Count(call => call == nameof(VoidHoldActivity)));
        if (v4)
        {
            Assert.Equal(nameof(VoidHoldActivity), calls[^1]); // after every decision, before the outcome is recorded
        }

        Assert.Equal([outcome], recorded); // recorded after the void
    }

    /// <summary>V4's void tells what a failed first run could not know: refused as already posted, an earlier run's
    /// settlement committed (completed); unanswered, the payment stays pending for the sweeper, never reported failed
    /// while a hold may still land. A completed payment costs no void.</summary>
    [Theory]
    [InlineData("posted", "completed", true)]
    [InlineData("unanswered", "pending", false)]
    public async Task V4_TheVoidsAnswer_DecidesWhatIsReported(string voidAnswer, string status, bool recordsIt)
    {
        Arrange(new RiskAssessment(RiskDecision.Reject, [RiskAssessment.DebtorBlocked]), MoveMoneyResult.Completed(recorded: true));
        var voiding = context.Setup(c => c.CallActivityAsync<StepResult>(nameof(VoidHoldActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(VoidHoldActivity)));
        _ = voidAnswer == "posted"
            ? voiding.ReturnsAsync(StepResult.Refused(LedgerError.PendingTransferAlreadyPosted))
            : voiding.ThrowsAsync(Failure("ledger unreachable"));

        var outcome = await new PaymentWorkflowV4().RunAsync(context.Object, Payment);

        Assert.Equal(status, outcome.Status);
        Assert.Equal(recordsIt ? [outcome] : [], recorded);
        Assert.InRange(now - Start, TimeSpan.Zero, PaymentWorkflow.Forward.Budget + PaymentWorkflow.Forward.MaxDelay);
    }

    /// <summary>Compensation-failed is left as it was (a review's finding): its hold was placed, so none can arrive late
    /// under its id, and its void was asked for its whole budget already; a second void changed the outcome its alert
    /// and runbook describe.</summary>
    [Fact]
    public async Task V4_ACompensationThatFailed_IsNotVoidedAgain()
    {
        Arrange(Approve, MoveMoneyResult.SettleRefused(LedgerError.AccountClosed));
        SetupStep(nameof(VoidHoldActivity), StepResult.Refused(LedgerError.PendingTransferExpired));

        var outcome = await new PaymentWorkflowV4().RunAsync(context.Object, Payment);

        Assert.Equal((Payments.Domain.PaymentStatus.Failed, PaymentReasons.CompensationFailed), (outcome.Status, outcome.Reason));
        Assert.Single(calls, nameof(VoidHoldActivity));
        Assert.Equal([outcome], recorded);
    }

    [Fact]
    public async Task V4_ACompletedPayment_CostsNoVoid()
    {
        Arrange(Approve, MoveMoneyResult.Completed(recorded: true));

        var outcome = await new PaymentWorkflowV4().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal([nameof(AssessPaymentActivity), nameof(MoveMoneyActivity)], calls);
    }

    /// <summary>A fault probe: with the ledger or the risk service away for four minutes, the 3-minute budget ended
    /// payments seconds after it came back. The budget the orchestrator schedules sagas with (in their input) rides out
    /// an outage of minutes; a saga scheduled without one (before it existed) keeps its three minutes.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RiskAwayForEightMinutes_IsRiddenOut_WithTheBudgetInTheInput(bool budgetInInput)
    {
        var input = budgetInInput ? Payment with { BeforePivotBudget = PaymentWorkflow.BeforePivotBudgetNow } : Payment;
        var awayUntil = Start + TimeSpan.FromMinutes(8);
        context.Setup(c => c.CallActivityAsync<PaymentAssessment>(nameof(AssessPaymentActivity), input, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(AssessPaymentActivity)))
            .Returns(() => now < awayUntil ? Task.FromException<PaymentAssessment>(Failure("risk away")) : Task.FromResult(new PaymentAssessment(Approve, null)));
        context.Setup(c => c.CallActivityAsync<MoveMoneyResult>(nameof(MoveMoneyActivity), input, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(MoveMoneyActivity)))
            .ReturnsAsync(MoveMoneyResult.Completed(recorded: true));
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(VoidHoldActivity), input, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(VoidHoldActivity)))
            .ReturnsAsync(StepResult.Ok);

        var outcome = await new PaymentWorkflowV4().RunAsync(context.Object, input);

        Assert.Equal(budgetInInput ? PaymentOutcome.Completed() : PaymentOutcome.Failed(PaymentReasons.RiskUnavailable), outcome);
        Assert.Equal(budgetInInput, calls.Contains(nameof(MoveMoneyActivity)));
    }

    /// <summary>Research (dapr/dapr 1.15–1.17): the sweeper runs a saga again under the same instance id after terminating
    /// and purging the run before, and Dapr delivers an activity's answer by instance id and task number alone — a
    /// terminated run's late answer reached the new run's task of the same number. A run with a token of its own
    /// (<see cref="PaymentInput.Run"/>, V5) asks again when an answer names another run; a run without one (scheduled
    /// before) takes it, as its history replays.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AnAnswerNamedForAnotherRun_IsAskedAgain_ByARunWithAToken(bool withToken)
    {
        var input = withToken ? Payment with { Run = "run-b" } : Payment;
        var answers = new Queue<PaymentAssessment>([
            new PaymentAssessment(new RiskAssessment(RiskDecision.Reject, [RiskAssessment.DebtorBlocked]), null) { Run = "run-a" }, // the old run's
            new PaymentAssessment(Approve, null) { Run = input.Run }]);
        context.Setup(c => c.CallActivityAsync<PaymentAssessment>(nameof(AssessPaymentActivity), input, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(AssessPaymentActivity)))
            .ReturnsAsync(() => answers.Dequeue());
        context.Setup(c => c.CallActivityAsync<MoveMoneyResult>(nameof(MoveMoneyActivity), input, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(MoveMoneyActivity)))
            .ReturnsAsync(MoveMoneyResult.Completed(recorded: true) with { Run = input.Run });

        var outcome = await new PaymentWorkflowV5().RunAsync(context.Object, input);

        if (withToken)
        {
            Assert.Equal(PaymentOutcome.Completed(), outcome);
            Assert.Equal([nameof(AssessPaymentActivity), nameof(AssessPaymentActivity), nameof(MoveMoneyActivity)], calls);
        }
        else
        {
            Assert.Equal((Payments.Domain.PaymentStatus.Failed, PaymentReasons.RiskRejected), (outcome.Status, outcome.Reason)); // the old run's answer, taken
            Assert.Equal([nameof(AssessPaymentActivity), nameof(VoidHoldActivity)], calls);
        }
    }

    /// <summary>A review: the money activity's answer was read without the run check, and its task number is often the
    /// same in the run after (1: after the risk step in a first run, after FindHold in a resumed one) — a terminated
    /// run's "hold refused" was taken by a run whose own activity settled. Named for another run, it is unknown, as
    /// after a fault: the steps go one by one, each answering as applied.</summary>
    [Fact]
    public async Task AMoneyAnswerNamedForAnotherRun_IsTakenAsUnknown_AndTheStepsGoOneByOne()
    {
        var input = Payment with { Run = "run-b" };
        context.Setup(c => c.CallActivityAsync<PaymentAssessment>(nameof(AssessPaymentActivity), input, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(AssessPaymentActivity)))
            .ReturnsAsync(new PaymentAssessment(Approve, null) { Run = input.Run });
        context.Setup(c => c.CallActivityAsync<MoveMoneyResult>(nameof(MoveMoneyActivity), input, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(MoveMoneyActivity)))
            .ReturnsAsync(MoveMoneyResult.HoldRefused(LedgerError.InsufficientFunds) with { Run = "run-a" }); // the old run's
        foreach (var step in new[] { nameof(HoldFundsActivity), nameof(SettlePaymentActivity) })
        {
            context.Setup(c => c.CallActivityAsync<StepResult>(step, input, It.IsAny<WorkflowTaskOptions>()))
                .Callback(() => calls.Add(step))
                .ReturnsAsync(StepResult.Ok.ForRun(input.Run));
        }

        var outcome = await new PaymentWorkflowV5().RunAsync(context.Object, input);

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal([nameof(AssessPaymentActivity), nameof(MoveMoneyActivity), nameof(HoldFundsActivity), nameof(SettlePaymentActivity)], calls);
    }

    /// <summary>The first step answers <paramref name="risk"/> (and <paramref name="refusal"/>, the ledger's for a payment sent to review); the money activity answers <paramref name="moveMoney"/>, or faults
    /// when it is null.</summary>
    private void Arrange(RiskAssessment risk, MoveMoneyResult? moveMoney, ApprovalDecision? approval = null, string? refusal = null)
    {
        context.Setup(c => c.CallActivityAsync<PaymentAssessment>(nameof(AssessPaymentActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(AssessPaymentActivity)))
            .ReturnsAsync(new PaymentAssessment(risk, refusal));
        var money = context.Setup(c => c.CallActivityAsync<MoveMoneyResult>(nameof(MoveMoneyActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(MoveMoneyActivity)));
        if (moveMoney is null)
        {
            money.ThrowsAsync(Failure("settle answer lost"));
        }
        else
        {
            money.ReturnsAsync(moveMoney);
        }

        if (approval is not null)
        {
            context.Setup(c => c.WaitForExternalEventAsync<ApprovalDecision>(PaymentWorkflow.ApprovalEventName, Payment.ApprovalTimeout))
                .ReturnsAsync(approval);
        }
    }

    private void SetupStep(string activity, StepResult result) =>
        context.Setup(c => c.CallActivityAsync<StepResult>(activity, Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(activity))
            .ReturnsAsync(result);
}
