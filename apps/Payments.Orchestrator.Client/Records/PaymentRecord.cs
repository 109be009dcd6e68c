using System.Text.Json.Serialization;
using Payments.Domain;
using Payments.Orchestrator.Client.Models;

namespace Payments.Orchestrator.Client.Records;

/// <summary>A payment as the platform reports it: created by the API when it accepts the payment, its terminal
/// status written by the saga's last step. Durable in etcd, so the status outlives the workflow engine's retention.</summary>
/// <param name="CreatedByKeyId">The API key that created the payment (null for records older than keys with ids):
/// that key may not approve or reject it (four eyes).</param>
/// <param name="Review">The reviewer's decision, recorded before it is sent to the saga; at most one.</param>
/// <param name="CreatedByHolderId">The holder of that key (the first key of its rotation chain): no key of that chain
/// may approve or reject it either. Null for records written before holders, which compare key ids only.</param>
/// <param name="RiskRejectedAt">When the risk check rejected the payment, recorded before the saga acts on it: binding
/// on any later run (a resumed saga does not ask risk again, which may approve once a blocklist or limit changed).
/// Left out of the JSON when null: rejections are rare, and every record would carry it.</param>
public sealed record PaymentRecord(
    PaymentOrder Order,
    string Status,
    string? Reason,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    string? CreatedByKeyId = null,
    PaymentReview? Review = null,
    string? CreatedByHolderId = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTimeOffset? RiskRejectedAt = null)
{
    [JsonIgnore]
    public string PaymentId => Order.PaymentId;

    [JsonIgnore]
    public bool IsTerminal => PaymentStatus.IsTerminal(Status);

    /// <summary>The record of a payment the API has just accepted.</summary>
    public static PaymentRecord Accepted(PaymentOrder order, DateTimeOffset now, string? createdByKeyId = null, string? createdByHolderId = null) =>
        new(order, PaymentStatus.Pending, null, now, now, createdByKeyId, CreatedByHolderId: createdByHolderId);

    /// <summary>Whether a key is the one that created this payment, or a rotation of it (four eyes).</summary>
    public bool CreatedBy(string keyId, string holderId) => CreatedByKeyId == keyId || (CreatedByHolderId is { } holder && holder == holderId);
}

/// <summary>Who approved or rejected a payment held for review, and when.</summary>
/// <param name="Decision"><c>approved</c> or <c>rejected</c>.</param>
/// <param name="DecidedBy">The reviewer's API key id.</param>
public sealed record PaymentReview(string Decision, string DecidedBy, DateTimeOffset DecidedAt)
{
    public const string Approved = "approved";
    public const string Rejected = "rejected";
}
