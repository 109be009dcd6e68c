using Dapr.Workflow;
using Microsoft.Extensions.Logging.Abstractions;
using Moq;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Workflows;
using Payments.Risk.Contracts;
using static Payments.Orchestrator.Tests.SagaTestData;

namespace Payments.Orchestrator.Tests;

/// <summary>Every branch of the saga with a mocked <see cref="WorkflowContext"/>: what the workflow decides and which
/// activities it calls, in which order, and how it rides out faults. The mocked clock moves by each timer the saga
/// sets, so its budgets are measured as the runtime would measure them (the sidecar integration tests run it for real).</summary>
public sealed class PaymentWorkflowTests
{
    private readonly Mock<WorkflowContext> context = new(MockBehavior.Strict);
    private readonly List<string> calls = [];
    private readonly List<string> statuses = [];
    private readonly List<PaymentOutcome> recorded = [];
    private bool recordingFails;
    private DateTime now = Start;
    private readonly List<TimeSpan> timers = [];

    public PaymentWorkflowTests()
    {
        context.Setup(c => c.CreateReplaySafeLogger(It.IsAny<Type>())).Returns(NullLogger.Instance);
        context.Setup(c => c.CreateReplaySafeLogger(It.IsAny<string>())).Returns(NullLogger.Instance);
        context.Setup(c => c.CreateReplaySafeLogger<PaymentWorkflow>()).Returns(NullLogger<PaymentWorkflow>.Instance);

        context.Setup(c => c.SetCustomStatus(It.IsAny<object>())).Callback<object>(status => statuses.Add((string)status));
        context.SetupGet(c => c.CurrentUtcDateTime).Returns(() => now);
        context.SetupGet(c => c.InstanceId).Returns(Payment.PaymentId);
        context.Setup(c => c.CreateTimer(It.IsAny<TimeSpan>(), It.IsAny<CancellationToken>()))
            .Callback<TimeSpan, CancellationToken>((delay, _) =>
            {
                timers.Add(delay);
                now += delay;
            })
            .Returns(Task.CompletedTask);
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(RecordOutcomeActivity), It.IsAny<RecordOutcomeInput>(), It.IsAny<WorkflowTaskOptions>()))
            .Returns<string, object, WorkflowTaskOptions>((_, input, _) =>
            {
                recorded.Add(((RecordOutcomeInput)input).Outcome);
                return recordingFails ? Task.FromException<StepResult>(Failure("etcd unavailable")) : Task.FromResult(StepResult.Ok);
            });
    }

    [Fact]
    public async Task HappyPath_HoldsThenSettles_AndCompletes()
    {
        Arrange(risk: Approve);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal([nameof(ValidatePaymentActivity), nameof(CheckRiskActivity), nameof(HoldFundsActivity), nameof(SettlePaymentActivity)], calls);
        Assert.Equal([PaymentStep.Validating, PaymentStep.RiskCheck, PaymentStep.Holding, PaymentStep.Settling, PaymentStep.Recording, PaymentStep.Done], statuses);
    }

    [Fact]
    public async Task StartedWithoutACreationTime_EveryStepGetsTheWorkflowsStartTime()
    {
        // The activities are set up for Payment (created at Start, the clock's time when the workflow runs): only an
        // input carrying that time matches, so the saga's transfers are issued at one fixed instant on every replay.
        Arrange(risk: Approve);

        var outcome = await RunAsync(Payment with { CreatedAt = null });

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal(4, calls.Count);
    }

    [Fact]
    public async Task RiskServiceDownForTwoMinutes_IsRiddenOut_AndThePaymentCompletes()
    {
        Arrange(risk: Approve, riskFaultsFor: TimeSpan.FromMinutes(2));

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.True(calls.Count(call => call == nameof(CheckRiskActivity)) > 3);
        Assert.All(timers, delay => Assert.True(delay <= PaymentWorkflow.BeforePivot.MaxDelay));
        Assert.Equal(PaymentStep.RiskCheck, statuses[1]); // pending at the risk check all along, never failed
        Assert.Equal(PaymentStep.Holding, statuses[2]);
    }

    [Fact]
    public async Task RiskServiceDownPastTheBudget_FailsWithRiskUnavailable_WithoutHolding()
    {
        Arrange(risk: Approve, riskFaultsFor: TimeSpan.FromHours(1));

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Failed(PaymentReasons.RiskUnavailable), outcome);
        Assert.DoesNotContain(nameof(HoldFundsActivity), calls);
        Assert.True(timers.Aggregate(TimeSpan.Zero, (sum, delay) => sum + delay) <= PaymentWorkflow.BeforePivot.Budget);
        Assert.True(timers.Aggregate(TimeSpan.Zero, (sum, delay) => sum + delay) >= PaymentWorkflow.BeforePivot.Budget - PaymentWorkflow.BeforePivot.MaxDelay);
    }

    [Fact]
    public async Task LedgerDownDuringValidation_PastTheBudget_FailsWithLedgerUnavailable()
    {
        Arrange(risk: Approve, validationThrows: true);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Failed(PaymentReasons.LedgerUnavailable), outcome);
        Assert.DoesNotContain(nameof(CheckRiskActivity), calls);
    }

    [Fact]
    public async Task SettleFaults_AreNeverCompensated_TheSagaAsksAgainUntilTheLedgerAnswers()
    {
        Arrange(risk: Approve, settleFaultsFirst: 5, settleFault: nameof(LedgerReplicationPendingException));

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal(6, calls.Count(call => call == nameof(SettlePaymentActivity)));
        Assert.DoesNotContain(nameof(VoidHoldActivity), calls);
        Assert.DoesNotContain(PaymentStep.Compensating, statuses);
    }

    [Fact]
    public async Task SettleNeverAnswering_LeavesThePaymentPending_NeverFailedOrCompensated()
    {
        Arrange(risk: Approve, settleFaultsFirst: int.MaxValue);

        var outcome = await new PaymentWorkflow().RunAsync(context.Object, Payment);

        Assert.Equal(PaymentOutcome.Undetermined(PaymentReasons.SettlementUndetermined), outcome);
        Assert.Equal(PaymentStatus.Pending, outcome.Status);
        Assert.DoesNotContain(nameof(VoidHoldActivity), calls);
        Assert.Empty(recorded); // nothing terminal to record: the sweeper resumes it
        Assert.True(timers.Aggregate(TimeSpan.Zero, (sum, delay) => sum + delay) > HoldFundsActivity.HoldTimeout); // asked past the hold's timeout
    }

    [Fact]
    public async Task VoidRefusedBecauseTheHoldWasPosted_MeansTheSettlementCommitted_AndThePaymentCompleted()
    {
        Arrange(risk: Approve, settle: [StepResult.Refused(LedgerError.AccountClosed)], voidResult: StepResult.Refused(LedgerError.PendingTransferAlreadyPosted));

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Completed(), outcome);
    }

    [Fact]
    public async Task RiskReject_FailsWithTheRiskReasons_AndMovesNoMoney()
    {
        Arrange(risk: new RiskAssessment(RiskDecision.Reject, [RiskAssessment.DebtorBlocked]));

        var outcome = await RunAsync();

        Assert.Equal(PaymentStatus.Failed, outcome.Status);
        Assert.Equal(PaymentReasons.RiskRejected, outcome.Reason);
        Assert.Equal([RiskAssessment.DebtorBlocked], outcome.Details);
        Assert.DoesNotContain(nameof(HoldFundsActivity), calls);
    }

    [Fact]
    public async Task ReviewApproved_WaitsForTheDecision_ThenCompletes()
    {
        Arrange(risk: Review, approval: new ApprovalDecision(true, "reviewer-1"));

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Contains(PaymentStep.AwaitingApproval, statuses);
        Assert.True(statuses.IndexOf(PaymentStep.AwaitingApproval) < statuses.IndexOf(PaymentStep.Holding));
    }

    [Fact]
    public async Task ReviewRejected_Fails_WithoutHoldingFunds()
    {
        Arrange(risk: Review, approval: new ApprovalDecision(false, "reviewer-1"));

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Failed(PaymentReasons.ReviewRejected), outcome);
        Assert.DoesNotContain(nameof(HoldFundsActivity), calls);
    }

    [Fact]
    public async Task ReviewDeadlinePassed_Fails_WithoutHoldingFunds()
    {
        Arrange(risk: Review, approvalTimesOut: true);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Failed(PaymentReasons.ApprovalDeadlinePassed), outcome);
        Assert.DoesNotContain(nameof(HoldFundsActivity), calls);
    }

    [Fact]
    public async Task InsufficientFunds_FailsAtOnce_WithoutRetryOrCompensation()
    {
        Arrange(risk: Approve, hold: [StepResult.Refused(LedgerError.InsufficientFunds)]);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Failed(LedgerError.InsufficientFunds), outcome);
        Assert.Single(calls, nameof(HoldFundsActivity));
        Assert.DoesNotContain(nameof(VoidHoldActivity), calls);
        Assert.DoesNotContain(nameof(SettlePaymentActivity), calls);
    }

    [Fact]
    public async Task ValidationRefusal_Fails_BeforeTheRiskCheck()
    {
        Arrange(risk: Approve, validation: StepResult.Refused(LedgerError.CurrencyMismatch));

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Failed(LedgerError.CurrencyMismatch), outcome);
        Assert.Equal([nameof(ValidatePaymentActivity)], calls);
    }

    [Fact]
    public async Task CreditorPostingFailure_VoidsTheHold_AndEndsCompensated()
    {
        Arrange(risk: Approve, settle: [StepResult.Refused(LedgerError.AccountClosed)]);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Compensated(LedgerError.AccountClosed), outcome);
        Assert.Equal(nameof(VoidHoldActivity), calls[^1]);
        Assert.Contains(PaymentStep.Compensating, statuses);
    }

    [Fact]
    public async Task LedgerFaultAfterRetries_DuringTheHold_StillRunsTheHoldsCompensation()
    {
        Arrange(risk: Approve, holdThrows: true);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Compensated(PaymentReasons.LedgerUnavailable), outcome);
        Assert.Equal(nameof(VoidHoldActivity), calls[^1]);
        Assert.True(calls.Count(call => call == nameof(HoldFundsActivity)) > 3); // retried within its budget first
    }

    [Fact]
    public async Task CompensationFailingOnce_IsRetried_AndTheSagaEndsCompensated()
    {
        Arrange(risk: Approve, settle: [StepResult.Refused(LedgerError.AccountClosed)], voidFailuresFirst: 1);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Compensated(LedgerError.AccountClosed), outcome);
        Assert.Equal(2, calls.Count(call => call == nameof(VoidHoldActivity)));
        Assert.Single(timers); // one pause between the two attempts
    }

    [Fact]
    public async Task CompensationNeverSucceeding_EndsFailed_WithinItsBudget()
    {
        Arrange(risk: Approve, settle: [StepResult.Refused(LedgerError.AccountClosed)], voidFailuresFirst: int.MaxValue);

        var outcome = await RunAsync();

        Assert.Equal(PaymentStatus.Failed, outcome.Status);
        Assert.Equal(PaymentReasons.CompensationFailed, outcome.Reason);
        Assert.InRange(calls.Count(call => call == nameof(VoidHoldActivity)), 2, PaymentWorkflow.Forward.MaxAttempts);
        Assert.True(timers.Aggregate(TimeSpan.Zero, (sum, delay) => sum + delay) <= PaymentWorkflow.Forward.Budget);
    }

    [Fact]
    public async Task OutcomeThatCannotBeRecorded_IsStillTheWorkflowsResult()
    {
        Arrange(risk: Approve);
        recordingFails = true;

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Completed(), outcome);
        Assert.Equal(PaymentStep.Done, statuses[^1]);
    }

    /// <summary>Runs the saga; whatever it decides, its last step must have recorded exactly that outcome.</summary>
    private async Task<PaymentOutcome> RunAsync(PaymentInput? input = null)
    {
        var outcome = await new PaymentWorkflow().RunAsync(context.Object, input ?? Payment);
        Assert.NotEmpty(recorded);
        Assert.All(recorded, attempt => Assert.Equal(outcome, attempt)); // retried, always the same outcome
        return outcome;
    }

    private void Arrange(
        RiskAssessment risk,
        StepResult? validation = null,
        StepResult[]? hold = null,
        StepResult[]? settle = null,
        ApprovalDecision? approval = null,
        bool approvalTimesOut = false,
        bool holdThrows = false,
        int voidFailuresFirst = 0,
        TimeSpan? riskFaultsFor = null,
        bool validationThrows = false,
        int settleFaultsFirst = 0,
        string settleFault = nameof(LedgerUnavailableException),
        StepResult? voidResult = null)
    {
        var started = now;
        if (validationThrows)
        {
            context.Setup(c => c.CallActivityAsync<StepResult>(nameof(ValidatePaymentActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
                .Callback(() => calls.Add(nameof(ValidatePaymentActivity)))
                .ThrowsAsync(Failure("etcd unavailable"));
        }
        else
        {
            SetupStep(nameof(ValidatePaymentActivity), [validation ?? StepResult.Ok]);
        }

        context.Setup(c => c.CallActivityAsync<RiskAssessment>(nameof(CheckRiskActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(CheckRiskActivity)))
            .Returns(() => now - started < (riskFaultsFor ?? TimeSpan.Zero)
                ? Task.FromException<RiskAssessment>(Failure("risk service unavailable", "HttpRequestException"))
                : Task.FromResult(risk));
        if (holdThrows)
        {
            context.Setup(c => c.CallActivityAsync<StepResult>(nameof(HoldFundsActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
                .Callback(() => calls.Add(nameof(HoldFundsActivity)))
                .ThrowsAsync(Failure("etcd unavailable"));
        }
        else
        {
            SetupStep(nameof(HoldFundsActivity), hold ?? [StepResult.Ok]);
        }

        var settleResults = settle ?? [StepResult.Ok];
        var settleCalls = 0;
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(SettlePaymentActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(SettlePaymentActivity)))
            .Returns(() => ++settleCalls <= settleFaultsFirst
                ? Task.FromException<StepResult>(Failure("settle fault", settleFault))
                : Task.FromResult(settleResults[Math.Min(settleCalls - settleFaultsFirst - 1, settleResults.Length - 1)]));
        var voidCalls = 0;
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(VoidHoldActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(VoidHoldActivity)))
            .Returns(() => ++voidCalls <= voidFailuresFirst
                ? Task.FromException<StepResult>(Failure("void failed"))
                : Task.FromResult(voidResult ?? StepResult.Ok));
        var wait = context.Setup(c => c.WaitForExternalEventAsync<ApprovalDecision>(PaymentWorkflow.ApprovalEventName, Payment.ApprovalTimeout));
        if (approvalTimesOut)
        {
            wait.ThrowsAsync(new TaskCanceledException("deadline"));
        }
        else if (approval is not null)
        {
            wait.ReturnsAsync(approval);
        }
    }

    private void SetupStep(string activity, StepResult[] results)
    {
        var index = 0;
        context.Setup(c => c.CallActivityAsync<StepResult>(activity, Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(activity))
            .Returns(() => Task.FromResult(results[Math.Min(index++, results.Length - 1)]));
    }
}
