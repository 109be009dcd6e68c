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
/// <param name="BeforePivotBudget">How long each step before the pivot rides out a fault of its dependency. The
/// orchestrator sets it when it schedules a saga, so it is in the instance's history: a saga scheduled before it
/// existed (none: 3 minutes) replays with the budget it had, and a later change never changes a running saga's steps.</param>
/// <param name="Run">A token of this run of the saga, drawn when it is scheduled (the sagas of ADR 0006's V5 on; none before):
/// every activity's answer names it (<c>IRunAnswer</c>), and the saga takes an answer only if it names its own run. The
/// sweeper runs a payment's saga again under the same instance id after terminating and purging the earlier run, and
/// Dapr delivers an activity's answer by instance id and task id alone (dapr/dapr 1.15–1.17: purge resets the
/// generation, and nothing checks which run scheduled the task): a terminated run's late answer reached the new run's
/// task of the same number — another step's answer, read as this one's. Named by another run, it is a fault, and the
/// step asks again.</param>
public sealed record PaymentInput(
    PaymentOrder Order, TimeSpan ApprovalTimeout, string? TraceParent = null, DateTimeOffset? CreatedAt = null, TimeSpan? BeforePivotBudget = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Run = null)
{
    /// <summary>The longest approval deadline the API and the orchestrator accept. A payment's hold is issued at the
    /// payment's creation and the ledger refuses a transfer issued longer ago than its replay window (7 days by
    /// default, ADR 0004): 5 days leave two for the pivot's budget and a resumed saga.</summary>
    public static readonly TimeSpan MaxApprovalTimeout = TimeSpan.FromDays(5);

    [JsonIgnore]
    public string PaymentId => Order.PaymentId;

    /// <summary>Refuses a configured approval deadline outside (0, <see cref="MaxApprovalTimeout"/>] at start-up,
    /// naming the usual cause: .NET reads "24:00:00" as 24 days (hours are 0–23; one day is "1.00:00:00").</summary>
    public static TimeSpan CheckApprovalTimeout(TimeSpan configured) =>
        configured > TimeSpan.Zero && configured <= MaxApprovalTimeout ? configured
        : throw new InvalidOperationException(
            $"Payments:ApprovalTimeout is {configured:c}; it must be positive and at most {MaxApprovalTimeout:c} (the ledger's replay window "
            + "must outlast it). Write it as d.hh:mm:ss with hours 0-23: \"24:00:00\" means 24 days, one day is \"1.00:00:00\".");
}

