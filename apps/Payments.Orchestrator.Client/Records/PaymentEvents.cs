using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Domain;
using Payments.Etcd;

namespace Payments.Orchestrator.Client.Records;

/// <summary>A payment event as merchants receive it (webhook body, <c>GET /v1/events</c>): the payment as
/// <c>GET /v1/payments/{id}</c> shows it at the moment of the change.</summary>
/// <param name="Id">Derived from the payment and the type, so the same change always has the same id: receivers
/// de-duplicate on it (delivery is at least once).</param>
public sealed record PaymentEvent(string Id, string Type, DateTimeOffset CreatedAt, PaymentEventData Data);

/// <summary>The payment in an event; the fields of <c>GET /v1/payments/{id}</c>, <paramref name="Review"/> included
/// (the reviewer's decision on a payment held for review: a black-box probe found it missing from events).</summary>
public sealed record PaymentEventData(
    string PaymentId, string Status, long AmountMinor, string Currency, string DebtorAccountId, string CreditorAccountId,
    string? Reference, string? Reason, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, PaymentReview? Review = null);

/// <summary>The events a payment's status changes raise, and where they live in etcd.</summary>
/// <remarks>Written in the same etcd transaction as the record change that raises them (a transactional outbox), so
/// an event exists exactly when its change committed. Two keys per event:
/// <c>{payments}~events/{merchant}/{unix ms, 13 digits}/{event id}</c>, the event itself, listed by <c>GET /v1/events</c>
/// in time order and shipped to the other region with the records; and
/// <c>{outbox}{unix ms}/{merchant}/{event id}</c>, a marker naming it (type and log key), which the webhook dispatcher takes (fanning the
/// event out to the merchant's endpoints) and deletes. The marker family is not shipped: the other region, once it
/// takes over, starts from its own changes.</remarks>
public static class PaymentEvents
{
    public const string AwaitingApproval = "payment.awaiting_approval";
    public const string Completed = "payment.completed";
    public const string Failed = "payment.failed";
    public const string Compensated = "payment.compensated";

    public static IReadOnlyList<string> Types { get; } = [AwaitingApproval, Completed, Failed, Compensated];

    /// <summary>As the API writes its answers: a member the payment lacks (reference, reason) is left out, never
    /// <c>null</c>, so a webhook body and <c>GET /v1/payments/{id}</c> show a payment alike.</summary>
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The event a record entering <paramref name="status"/> raises, or null (back to pending raises none).</summary>
    public static string? TypeFor(string status) => status switch
    {
        PaymentStatus.AwaitingApproval => AwaitingApproval,
        PaymentStatus.Completed => Completed,
        PaymentStatus.Failed => Failed,
        PaymentStatus.Compensated => Compensated,
        _ => null,
    };

    /// <summary><c>evt_</c> and 24 hex digits of SHA-256 over payment id and type.</summary>
    public static string IdFor(string paymentId, string type) =>
        "evt_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(paymentId + "\n" + type)))[..24];

    public static PaymentEvent For(PaymentRecord record, string type)
    {
        ArgumentNullException.ThrowIfNull(record);
        var order = record.Order;
        return new PaymentEvent(IdFor(record.PaymentId, type), type, record.UpdatedAt, new PaymentEventData(
            order.PaymentId, record.Status, order.AmountMinor, order.Currency,
            AccountId.PublicIdOf(order.DebtorAccountId), AccountId.PublicIdOf(order.CreditorAccountId), // the merchant's own ids
            order.Reference, record.Reason, record.CreatedAt, record.UpdatedAt, record.Review));
    }

    public static byte[] Serialize(PaymentEvent paymentEvent) => JsonSerializer.SerializeToUtf8Bytes(paymentEvent, Json);

    public static PaymentEvent Deserialize(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<PaymentEvent>(json, Json) ?? throw new InvalidDataException("Empty payment event.");

    /// <summary>Adds the event of a change from <paramref name="previousStatus"/> to <paramref name="record"/>'s status
    /// (if it raises one) to the transaction that writes the record.</summary>
    internal static void AddTo(TxnRequest request, PaymentRecord record, string? previousStatus, string eventsRoot, string? outboxRoot)
    {
        if (previousStatus is null || previousStatus == record.Status || TypeFor(record.Status) is not { } type)
        {
            return;
        }

        var paymentEvent = For(record, type);
        var logKey = LogKey(eventsRoot, record.Order.MerchantId, record.UpdatedAt, paymentEvent.Id);
        request.Success.Add(EtcdBytes.Put(logKey, ByteString.CopyFrom(Serialize(paymentEvent))));
        if (outboxRoot is not null)
        {
            request.Success.Add(EtcdBytes.Put(outboxRoot + EtcdBytes.TimeKey(record.UpdatedAt) + "/" + record.Order.MerchantId + "/" + paymentEvent.Id,
                ByteString.CopyFromUtf8(OutboxValue(type, logKey))));
        }
    }

    /// <summary>An outbox marker's value: the event's type and its log key.</summary>
    private static string OutboxValue(string type, string logKey) => type + " " + logKey;

    /// <summary>The type and log key an outbox marker names (<see cref="OutboxValue"/>).</summary>
    public static (string Type, string LogKey) ParseOutboxValue(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var space = value.IndexOf(' ', StringComparison.Ordinal);
        return space > 0 ? (value[..space], value[(space + 1)..]) : throw new InvalidDataException($"Not an outbox marker: '{value}'.");
    }

    /// <summary>Where an event lives in the log.</summary>
    public static string LogKey(string eventsRoot, string merchantId, DateTimeOffset at, string eventId) =>
        MerchantRoot(eventsRoot, merchantId) + EtcdBytes.TimeKey(at) + "/" + eventId;

    /// <summary>Every event of one merchant lives under this.</summary>
    public static string MerchantRoot(string eventsRoot, string merchantId) => eventsRoot + merchantId + "/";

}
