using Payments.Domain;

namespace Payments.Orchestrator.Client.Models;

/// <summary>Where the saga is; shown as the workflow's custom status.</summary>
public static class PaymentStep
{
    public const string Validating = "validating";
    public const string RiskCheck = "risk-check";
    public const string Resuming = "resuming";
    public const string AwaitingApproval = "awaiting-approval";
    public const string MovingMoney = "moving-money";
    public const string Holding = "holding-funds";
    public const string Settling = "settling";
    public const string Compensating = "compensating";
    public const string Recording = "recording-outcome";
    public const string Done = "done";
}

/// <summary>How the saga left a payment: a status of <see cref="PaymentStatus"/> and, unless completed, a stable reason
/// code. Terminal unless <see cref="Undetermined"/>.</summary>
public sealed record PaymentOutcome(string Status, string? Reason, IReadOnlyList<string>? Details = null)
{
    public static PaymentOutcome Completed() => new(PaymentStatus.Completed, null);

    public static PaymentOutcome Failed(string reason, IReadOnlyList<string>? details = null) => new(PaymentStatus.Failed, reason, details);

    public static PaymentOutcome Compensated(string reason) => new(PaymentStatus.Compensated, reason);

    /// <summary>The saga could not learn whether its settlement committed within its budget: the payment stays
    /// pending (never reported failed while its money may have moved) and the stuck-payment sweeper resumes it.</summary>
    public static PaymentOutcome Undetermined(string reason) => new(PaymentStatus.Pending, reason);
}

/// <summary>The reviewer's answer to a payment in review, raised as the workflow's approval event.</summary>
public sealed record ApprovalDecision(bool Approved, string? Reviewer);

/// <summary>Stable reasons the saga itself adds to the ledger's and the risk engine's codes.</summary>
public static class PaymentReasons
{
    public const string RiskRejected = "risk-rejected";
    public const string ReviewRejected = "review-rejected";
    public const string ApprovalDeadlinePassed = "approval-deadline-passed";
    /// <summary>The ledger did not answer a step before the pivot within its budget (nothing moved, nothing held).</summary>
    public const string LedgerUnavailable = "ledger-unavailable";

    /// <summary>The risk service did not answer within its budget (nothing moved).</summary>
    public const string RiskUnavailable = "risk-unavailable";

    /// <summary>Not a failure: the settlement's outcome was still unknown when the saga's budget ended (status pending).</summary>
    public const string SettlementUndetermined = "settlement-undetermined";
    public const string CompensationFailed = "compensation-failed";

    /// <summary>The workflow itself failed or was terminated (not a business outcome).</summary>
    public const string WorkflowFailed = "workflow-failed";

    /// <summary>The workflow completed without an outcome (a programmer error in the saga).</summary>
    public const string WorkflowOutputMissing = "workflow-output-missing";
}
