using Dapr.Workflow;
using Microsoft.Extensions.Logging.Abstractions;
using Moq;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Activities;
using Payments.Orchestrator.Client.Models;
using Payments.Orchestrator.Workflows;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Tests;

/// <summary>Every branch of the saga with a mocked <see cref="WorkflowContext"/>: what the workflow decides and which
/// activities it calls, in which order, with which retry policy. (Retries themselves are the runtime's; the
/// sidecar integration tests run them for real.)</summary>
public sealed class PaymentWorkflowTests
{
    private static readonly PaymentInput Payment = new(new PaymentOrder("pay-1", "merchant-a", "alice", "bob", 1_250, "USD", "order 7"), TimeSpan.FromMinutes(10));
    private static readonly RiskAssessment Approve = new(RiskDecision.Approve, []);
    private static readonly RiskAssessment Review = new(RiskDecision.Review, [RiskAssessment.AmountAboveReviewThreshold]);

    private readonly Mock<WorkflowContext> context = new(MockBehavior.Strict);
    private readonly List<string> calls = [];
    private readonly List<string> statuses = [];
    private readonly List<PaymentOutcome> recorded = [];
    private bool recordingFails;

    public PaymentWorkflowTests()
    {
        context.Setup(c => c.CreateReplaySafeLogger(It.IsAny<Type>())).Returns(NullLogger.Instance);
        context.Setup(c => c.CreateReplaySafeLogger(It.IsAny<string>())).Returns(NullLogger.Instance);
        context.Setup(c => c.CreateReplaySafeLogger<PaymentWorkflow>()).Returns(NullLogger<PaymentWorkflow>.Instance);

        context.Setup(c => c.SetCustomStatus(It.IsAny<object>())).Callback<object>(status => statuses.Add((string)status));
        context.SetupGet(c => c.CurrentUtcDateTime).Returns(new DateTime(2026, 11, 29, 12, 0, 0, DateTimeKind.Utc));
        context.SetupGet(c => c.InstanceId).Returns(Payment.PaymentId);
        context.Setup(c => c.CreateTimer(It.IsAny<TimeSpan>(), It.IsAny<CancellationToken>())).Returns(Task.CompletedTask);
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
    public async Task LedgerSteps_CarryABoundedRetryPolicy()
    {
        Arrange(risk: Approve);
        await RunAsync();
        foreach (var activity in new[] { nameof(HoldFundsActivity), nameof(SettlePaymentActivity) })
        {
            context.Verify(c => c.CallActivityAsync<StepResult>(activity, Payment, It.Is<WorkflowTaskOptions>(options =>
                options.RetryPolicy!.MaxNumberOfAttempts > 1 && options.RetryPolicy.RetryTimeout <= TimeSpan.FromMinutes(1))));
        }
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
    }

    [Fact]
    public async Task CompensationFailingOnce_IsRetried_AndTheSagaEndsCompensated()
    {
        Arrange(risk: Approve, settle: [StepResult.Refused(LedgerError.AccountClosed)], voidFailuresFirst: 1);

        var outcome = await RunAsync();

        Assert.Equal(PaymentOutcome.Compensated(LedgerError.AccountClosed), outcome);
        Assert.Equal(2, calls.Count(call => call == nameof(VoidHoldActivity)));
        context.Verify(c => c.CreateTimer(PaymentWorkflow.CompensationRoundDelay, It.IsAny<CancellationToken>()), Times.Once);
    }

    [Fact]
    public async Task CompensationNeverSucceeding_EndsFailed_AfterBoundedRounds()
    {
        Arrange(risk: Approve, settle: [StepResult.Refused(LedgerError.AccountClosed)], voidFailuresFirst: int.MaxValue);

        var outcome = await RunAsync();

        Assert.Equal(PaymentStatus.Failed, outcome.Status);
        Assert.Equal(PaymentReasons.CompensationFailed, outcome.Reason);
        Assert.Equal(PaymentWorkflow.MaxCompensationRounds, calls.Count(call => call == nameof(VoidHoldActivity)));
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
    private async Task<PaymentOutcome> RunAsync()
    {
        var outcome = await new PaymentWorkflow().RunAsync(context.Object, Payment);
        Assert.Equal([outcome], recorded);
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
        int voidFailuresFirst = 0)
    {
        SetupStep(nameof(ValidatePaymentActivity), [validation ?? StepResult.Ok]);
        context.Setup(c => c.CallActivityAsync<RiskAssessment>(nameof(CheckRiskActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(CheckRiskActivity)))
            .ReturnsAsync(risk);
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

        SetupStep(nameof(SettlePaymentActivity), settle ?? [StepResult.Ok]);
        var voidCalls = 0;
        context.Setup(c => c.CallActivityAsync<StepResult>(nameof(VoidHoldActivity), Payment, It.IsAny<WorkflowTaskOptions>()))
            .Callback(() => calls.Add(nameof(VoidHoldActivity)))
            .Returns(() => ++voidCalls <= voidFailuresFirst ? Task.FromException<StepResult>(Failure("void failed")) : Task.FromResult(StepResult.Ok));
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

    private static WorkflowTaskFailedException Failure(string message) =>
        new(message, new WorkflowTaskFailureDetails("LedgerUnavailableException", message, null!));
}
