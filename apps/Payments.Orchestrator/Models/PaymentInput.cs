namespace Payments.Orchestrator.Models;

/// <summary>The workflow's input. Plain JSON-friendly fields (the workflow runtime serialises it); the workflow
/// instance id is <see cref="PaymentId"/>, and every ledger transfer id derives from it.</summary>
public sealed record PaymentInput(
    string PaymentId,
    string MerchantId,
    string DebtorAccountId,
    string CreditorAccountId,
    long AmountMinor,
    string Currency,
    string? Reference,
    TimeSpan ApprovalTimeout);
