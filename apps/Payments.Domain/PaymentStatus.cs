namespace Payments.Domain;

/// <summary>The statuses of a payment, as the public API names them (ARCHITECTURE §6), and which of them are final:
/// the one definition every party uses (the API, the saga's record, reconciliation, the checkers, the demo).</summary>
public static class PaymentStatus
{
    public const string Pending = "pending";
    public const string AwaitingApproval = "awaiting_approval";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Compensated = "compensated";

    /// <summary>Every status, in the order a payment can pass them.</summary>
    public static IReadOnlyList<string> All { get; } = [Pending, AwaitingApproval, Completed, Failed, Compensated];

    /// <summary>The statuses a payment never leaves.</summary>
    public static IReadOnlyList<string> Terminal { get; } = [Completed, Failed, Compensated];

    public static bool IsTerminal(string? status) => status is Completed or Failed or Compensated;
}
