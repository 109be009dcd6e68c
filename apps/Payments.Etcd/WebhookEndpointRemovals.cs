using System.Text.Json;
using Google.Protobuf;

namespace Payments.Etcd;

/// <summary>The record a webhook endpoint's deletion leaves, <c>{webhooks}removed/{unix ms}/{merchant}/{endpoint}</c>,
/// written in the deletion's transaction. Shipping to the other region reads what is stored, so a deletion alone never
/// reaches it: without this record an endpoint the merchant deleted (say, its URL handed to someone else) came back in
/// the standby and was sent every payment event after a takeover. The standby's applier deletes the endpoint the record
/// names (<see cref="EndpointKeyOf"/>); each region trims the records after <see cref="Retention"/>.</summary>
public static class WebhookEndpointRemovals
{
    /// <summary>How long a removal record is kept: as long as a finished payment record stays in etcd. A shipping
    /// outage longer than that loses more than this record (the ledger's journal retention waits for shipping; this
    /// does not), and the runbook has the region rebuilt from a backup then.</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromDays(8);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>What a removal record holds: whose endpoint it was, and when it was deleted.</summary>
    public sealed record Removal(string MerchantId, string EndpointId, DateTimeOffset RemovedAt);

    /// <summary>The record's key under <paramref name="removedRoot"/> (a prefix ending in '/'): time first, so that one
    /// range delete trims every record older than <see cref="Retention"/>.</summary>
    public static string Key(string removedRoot, string merchantId, string endpointId, DateTimeOffset removedAt) =>
        removedRoot + EtcdBytes.TimeKey(removedAt) + "/" + merchantId + "/" + endpointId;

    public static ByteString Encode(Removal removal) => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(removal, Json));

    /// <summary>The key, relative to the region's key prefix, of the endpoint a removal record deleted; null for a
    /// value that is not one (nothing to delete: the record itself is still copied).</summary>
    public static string? EndpointKeyOf(ReadOnlySpan<byte> value)
    {
        try
        {
            return JsonSerializer.Deserialize<Removal>(value, Json) is { MerchantId: { Length: > 0 } merchant, EndpointId: { Length: > 0 } endpoint }
                && !merchant.Contains('/', StringComparison.Ordinal) && !endpoint.Contains('/', StringComparison.Ordinal)
                ? EtcdOptions.WebhookEndpointsFamily + merchant + "/" + endpoint
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
