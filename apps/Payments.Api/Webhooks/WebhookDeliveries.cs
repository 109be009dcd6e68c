using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Webhooks;

/// <summary>One event owed to one endpoint.</summary>
/// <param name="Attempt">Attempts made so far.</param>
/// <param name="FirstAt">When the event was fanned out: retries end <see cref="WebhookOptions.RetryFor"/> after it.</param>
public sealed record WebhookDelivery(string MerchantId, string EndpointId, string EventId, string EventKey, int Attempt, DateTimeOffset FirstAt);

/// <summary>A delivery as it is stored: its key (which carries its due time) and revision.</summary>
public sealed record DueDelivery(string Key, long Revision, WebhookDelivery Delivery);

/// <summary>The dispatcher's work in etcd: the outbox markers it takes, and the deliveries due, keyed
/// <c>{webhooks}due/{due unix ms, 13 digits}/{endpoint id}/{event id}</c> so that a range read up to now finds what is
/// due, oldest first. Every write carries the dispatcher's fence (its lock), so a dispatcher that lost the lock writes
/// nothing; a delivery it sent meanwhile may be sent again — delivery is at least once, receivers de-duplicate on the id.</summary>
public sealed class WebhookDeliveries(EtcdConnection etcd, string webhooksPrefix, string outboxPrefix)
{
    /// <summary>Outbox markers taken per round.</summary>
    public const int MaxMarkersPerRound = 32;

    /// <summary>Operations per transaction, within etcd's default <c>--max-txn-ops</c> of 128 (with the fence's compare).</summary>
    public const int MaxOpsPerTxn = 120;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly string dueRoot = EtcdBytes.AsPrefix(webhooksPrefix) + "due/";
    private readonly string outboxRoot = EtcdBytes.AsPrefix(outboxPrefix);

    public string OutboxRoot => outboxRoot;

    /// <summary>The oldest outbox markers: key, event type, log key, merchant, event id.</summary>
    public async Task<IReadOnlyList<(string Key, string Type, string LogKey, string MerchantId, string EventId)>> MarkersAsync(CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(outboxRoot), RangeEnd = EtcdBytes.PrefixEnd(outboxRoot), Limit = MaxMarkersPerRound,
        }, cancellationToken: token), cancellationToken);
        return response.Kvs.Select(kv =>
        {
            var key = kv.Key.ToStringUtf8();
            var parts = key[outboxRoot.Length..].Split('/'); // {ms}/{merchant}/{event id}
            var (type, logKey) = PaymentEvents.ParseOutboxValue(kv.Value.ToStringUtf8());
            return (key, type, logKey, parts[1], parts[2]);
        }).ToArray();
    }

    /// <summary>Deletes the markers and creates the deliveries in one fenced transaction (the caller keeps it within
    /// <see cref="MaxOpsPerTxn"/>): a marker is gone exactly when its deliveries exist.</summary>
    public async Task<bool> FanOutAsync(IWriteFence fence, IReadOnlyList<string> markerKeys, IReadOnlyList<WebhookDelivery> deliveries, DateTimeOffset due, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        fence.AddFence(request);
        foreach (var key in markerKeys)
        {
            request.Success.Add(EtcdBytes.Delete(key));
        }

        foreach (var delivery in deliveries)
        {
            request.Success.Add(EtcdBytes.Put(KeyOf(delivery, due), Encode(delivery)));
        }

        return (await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken)).Succeeded;
    }

    /// <summary>Deliveries due at <paramref name="now"/>, oldest first, at most <paramref name="limit"/>, after the
    /// key <paramref name="afterKey"/> (null: from the oldest); and whether more are due.</summary>
    public async Task<(IReadOnlyList<DueDelivery> Due, bool More)> DueAsync(DateTimeOffset now, string? afterKey, int limit, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(afterKey is null ? dueRoot : afterKey + "\0"),
            RangeEnd = EtcdBytes.Key(dueRoot + PaymentEvents.Millis(now.AddMilliseconds(1))),
            Limit = limit,
        }, cancellationToken: token), cancellationToken);
        return (response.Kvs.Select(kv => new DueDelivery(kv.Key.ToStringUtf8(), kv.ModRevision,
            JsonSerializer.Deserialize<WebhookDelivery>(kv.Value.Span, Json)!)).ToArray(), response.More);
    }

    /// <summary>Ends delivered deliveries together, each if still as read: one transaction for up to
    /// <see cref="MaxOpsPerTxn"/>; when one of them changed meanwhile, each alone. Returns false if the fence failed.</summary>
    public async Task<bool> EndAllAsync(IWriteFence fence, IReadOnlyList<DueDelivery> done, CancellationToken cancellationToken)
    {
        foreach (var chunk in done.Chunk(MaxOpsPerTxn))
        {
            var request = new TxnRequest();
            fence.AddFence(request);
            foreach (var due in chunk)
            {
                request.Compare.Add(EtcdBytes.ModRevisionIs(due.Key, due.Revision));
                request.Success.Add(EtcdBytes.Delete(due.Key));
            }

            var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
            if (response.Succeeded)
            {
                continue;
            }

            if (fence.WasFencedOff(response))
            {
                return false;
            }

            foreach (var due in chunk)
            {
                await EndAsync(fence, due, cancellationToken);
            }
        }

        return true;
    }

    /// <summary>All deliveries waiting, due or not (bounded count; for tests and the status of a backlog).</summary>
    public async Task<long> CountAsync(CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(dueRoot), RangeEnd = EtcdBytes.PrefixEnd(dueRoot), CountOnly = true,
        }, cancellationToken: token), cancellationToken);
        return response.Count;
    }

    /// <summary>The endpoint and the event of a delivery, in one read.</summary>
    public async Task<(ByteString? Endpoint, ByteString? Event)> ReadAsync(string endpointKey, string eventKey, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Success.Add(EtcdBytes.Get(endpointKey));
        request.Success.Add(EtcdBytes.Get(eventKey));
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);
        return (response.Responses[0].ResponseRange.Kvs.FirstOrDefault()?.Value, response.Responses[1].ResponseRange.Kvs.FirstOrDefault()?.Value);
    }

    /// <summary>Ends a delivery (done, given up, or moot), if it is still as read.</summary>
    public Task<bool> EndAsync(IWriteFence fence, DueDelivery due, CancellationToken cancellationToken) => MoveAsync(fence, due, null, default, cancellationToken);

    /// <summary>Puts a delivery back for another attempt at <paramref name="next"/>, if it is still as read.</summary>
    public Task<bool> RetryAsync(IWriteFence fence, DueDelivery due, DateTimeOffset next, CancellationToken cancellationToken) =>
        MoveAsync(fence, due, due.Delivery with { Attempt = due.Delivery.Attempt + 1 }, next, cancellationToken);

    private async Task<bool> MoveAsync(IWriteFence fence, DueDelivery due, WebhookDelivery? again, DateTimeOffset next, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        fence.AddFence(request);
        request.Compare.Add(EtcdBytes.ModRevisionIs(due.Key, due.Revision));
        request.Success.Add(EtcdBytes.Delete(due.Key));
        if (again is not null)
        {
            request.Success.Add(EtcdBytes.Put(KeyOf(again, next), Encode(again)));
        }

        return (await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken)).Succeeded;
    }

    private string KeyOf(WebhookDelivery delivery, DateTimeOffset due) =>
        dueRoot + PaymentEvents.Millis(due) + "/" + delivery.EndpointId + "/" + delivery.EventId;

    private static ByteString Encode(WebhookDelivery delivery) => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(delivery, Json));
}
