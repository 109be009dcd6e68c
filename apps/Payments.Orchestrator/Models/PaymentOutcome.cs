namespace Payments.Orchestrator.Models;

/// <summary>Terminal states of a payment, as the public API names them.</summary>
public static class PaymentStatus
{
    public const string Pending = "pending";
    public const string AwaitingApproval = "awaiting_approval";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Compensated = "compensated";
}

/// <summary>Where the saga is; shown as the workflow's custom status.</summary>
public static class PaymentStep
{
    public const string Validating = "validating";
    public const string RiskCheck = "risk-check";
    public const string AwaitingApproval = "awaiting-approval";
    public const string Holding = "holding-funds";
    public const string Settling = "settling";
    public const string Compensating = "compensating";
    public const string Recording = "recording-outcome";
    public const string Done = "done";
}

/// <summary>How a payment ended: a status of <see cref="PaymentStatus"/> and, unless completed, a stable reason code.</summary>
public sealed record PaymentOutcome(string Status, string? Reason, IReadOnlyList<string>? Details = null)
{
    public static PaymentOutcome Completed() => new(PaymentStatus.Completed, null);

    public static PaymentOutcome Failed(string reason, IReadOnlyList<string>? details = null) => new(PaymentStatus.Failed, reason, details);

    public static PaymentOutcome Compensated(string reason) => new(PaymentStatus.Compensated, reason);
}

/// <summary>The reviewer's answer to a payment in review, raised as the workflow's approval event.</summary>
public sealed record ApprovalDecision(bool Approved, string? Reviewer);

/// <summary>What a ledger step reports: done, or refused with a stable ledger error code (never retried).</summary>
public sealed record StepResult(bool Succeeded, string? ErrorCode)
{
    public static StepResult Ok { get; } = new(true, null);

    public static StepResult Refused(string code) => new(false, code);
}

/// <summary>Stable reasons the saga itself adds to the ledger's and the risk engine's codes.</summary>
public static class PaymentReasons
{
    public const string RiskRejected = "risk-rejected";
    public const string ReviewRejected = "review-rejected";
    public const string ApprovalDeadlinePassed = "approval-deadline-passed";
    public const string LedgerUnavailable = "ledger-unavailable";
    public const string CompensationFailed = "compensation-failed";
}
