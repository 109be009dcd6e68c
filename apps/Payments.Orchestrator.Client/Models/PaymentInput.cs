using System.Text.Json.Serialization;

namespace Payments.Orchestrator.Client.Models;

/// <summary>What a payment is: who pays whom how much, for which merchant. Written once — into the payment record
/// when the API accepts the payment, and into the saga's input — so the two can never restate it differently.
/// Plain JSON-friendly fields (the workflow runtime and etcd serialise it).</summary>
/// <param name="PaymentId">The workflow instance id too; every ledger transfer id derives from it.</param>
public sealed record PaymentOrder(
    string PaymentId,
    string MerchantId,
    string DebtorAccountId,
    string CreditorAccountId,
    long AmountMinor,
    string Currency,
    string? Reference);

/// <summary>The workflow's input: the payment and how the saga is to run it.</summary>
/// <param name="TraceParent">The W3C traceparent of the request that started the payment. Dapr.Workflow 1.19 does not
/// carry trace context into activities, so the saga carries it in its input: every step's span (and the ledger calls
/// under it) joins the request's trace. Fixed at scheduling, so replays see the same value.</param>
/// <param name="CreatedAt">When the payment was accepted (its record's creation time): every ledger transfer of the
/// payment is issued at this instant, however often a step is retried or the saga resumed, so the ledger's replay
/// window (ADR 0004) can refuse a very late retry instead of applying it again. The workflow fills it from its own
/// start time when a caller did not.</param>
public sealed record PaymentInput(PaymentOrder Order, TimeSpan ApprovalTimeout, string? TraceParent = null, DateTimeOffset? CreatedAt = null)
{
    [JsonIgnore]
    public string PaymentId => Order.PaymentId;
}
