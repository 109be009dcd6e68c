using Dapr.Workflow;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Models;
using Payments.Risk.Contracts;

namespace Payments.Orchestrator.Tests;

/// <summary>What both sagas' tests start from: a payment as the API starts it, the risk answers, an activity fault.</summary>
internal static class SagaTestData
{
    public static readonly DateTime Start = new(2026, 11, 29, 12, 0, 0, DateTimeKind.Utc);

    // As the API starts it: with its creation time, which every ledger transfer of the payment is issued at.
    public static readonly PaymentInput Payment = new(
        new PaymentOrder("pay-1", "merchant-a", "alice", "bob", 1_250, "USD", "order 7"), TimeSpan.FromMinutes(10), CreatedAt: Start);

    public static readonly RiskAssessment Approve = new(RiskDecision.Approve, []);
    public static readonly RiskAssessment Review = new(RiskDecision.Review, [RiskAssessment.AmountAboveReviewThreshold]);

    /// <summary>An activity that faulted, as the workflow sees it.</summary>
    public static WorkflowTaskFailedException Failure(string message, string errorType = nameof(LedgerUnavailableException)) =>
        new(message, new WorkflowTaskFailureDetails(errorType, message, null!));
}
