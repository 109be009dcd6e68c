namespace Payments.Orchestrator.Models;

/// <summary>The workflow's input. Plain JSON-friendly fields (the workflow runtime serialises it); the workflow
/// instance id is <see cref="PaymentId"/>, and every ledger transfer id derives from it.</summary>
/// <param name="TraceParent">The W3C traceparent of the request that started the payment. Dapr.Workflow 1.19 does not
/// carry trace context into activities, so the saga carries it in its input: every step's span (and the ledger calls
/// under it) joins the request's trace. Fixed at scheduling, so replays see the same value.</param>
public sealed record PaymentInput(
    string PaymentId,
    string MerchantId,
    string DebtorAccountId,
    string CreditorAccountId,
    long AmountMinor,
    string Currency,
    string? Reference,
    TimeSpan ApprovalTimeout,
    string? TraceParent = null);
