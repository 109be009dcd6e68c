using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Payments.Etcd;
using Payments.Orchestrator.Client.Records;

namespace Payments.Api.Webhooks;

/// <summary>One event owed to one endpoint.</summary>
/// <param name="Attempt">Attempts made so far.</param>
/// <param name="FirstAt">When the event was fanned out: retries end <see cref="WebhookOptions.RetryFor"/> after it.</param>
/// <param name="EndpointCreatedAt">The <see cref="WebhookEndpoint.CreatedAt"/> of the endpoint it is owed to, as read at
/// the fan-out: an endpoint deleted and made again under its key's id (another URL, other events) has another, and is
/// not sent it. Compared with itself, not with <paramref name="FirstAt"/>: the two are different replicas' clocks, and
/// an endpoint made just before the fan-out by a replica whose clock ran ahead lost its retries (a review). Null in
/// deliveries owed before it was kept: <paramref name="FirstAt"/> is compared as before.</param>
public sealed record WebhookDelivery(
    string MerchantId, string EndpointId, string EventId, string EventKey, int Attempt, DateTimeOffset FirstAt, DateTimeOffset? EndpointCreatedAt = null)
{
    /// <summary>Whether <paramref name="endpoint"/> is the one this delivery was owed to (see <see cref="EndpointCreatedAt"/>).</summary>
    public bool IsOwedTo(WebhookEndpoint endpoint) =>
        EndpointCreatedAt is { } created ? endpoint.CreatedAt == created : endpoint.CreatedAt <= FirstAt;
}

/// <summary>An outbox marker: an event not yet settled by the dispatcher.</summary>
public sealed record OutboxMarker(string Key, string Type, string LogKey, string MerchantId, string EventId);

/// <summary>A marker the dispatcher is done with: what is still owed for its event, and when each is due;
/// <paramref name="SettledAt"/> a <see cref="TimeProvider"/> timestamp.</summary>
public sealed record SettledMarker(string Key, IReadOnlyList<(WebhookDelivery Delivery, DateTimeOffset Due)> Owed, long SettledAt);

/// <summary>A delivery as it is stored: its key (which carries its due time) and revision.</summary>
public sealed record DueDelivery(string Key, long Revision, WebhookDelivery Delivery);

/// <summary>The dispatcher's work in etcd: the outbox markers it takes, and the deliveries due, keyed
/// <c>{webhooks}due/{due unix ms, 13 digits}/{endpoint id}/{event id}</c> so that a range read up to now finds what is
/// due, oldest first. Every write carries the dispatcher's fence (its lock), so a dispatcher that lost the lock writes
/// nothing; a delivery it sent meanwhile may be sent again — delivery is at least once, receivers de-duplicate on the id.</summary>
public sealed class WebhookDeliveries(EtcdConnection etcd, string webhooksPrefix, string outboxPrefix, string eventsRoot)
{
    /// <summary>Outbox markers taken per round (beyond those already being worked on).</summary>
    public const int MaxMarkersPerRound = 32;

    /// <summary>Operations per transaction, within etcd's default <c>--max-txn-ops</c> of 128 (with the fence's compare).</summary>
    public const int MaxOpsPerTxn = 120;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly string dueRoot = EtcdBytes.AsPrefix(webhooksPrefix) + "due/";
    private readonly string outboxRoot = EtcdBytes.AsPrefix(outboxPrefix);

    public string OutboxRoot => outboxRoot;

    /// <summary>Where owed deliveries are kept, keyed by when each is due.</summary>
    public string DueRoot => dueRoot;

    /// <summary>The oldest outbox markers, at most <paramref name="limit"/>; the revision they were read at, and
    /// whether more are there.</summary>
    /// <remarks>A read from the outbox's first key costs etcd every key deleted under it since the last compaction
    /// (etcd 3.4 visits them all, limit or not, and 3.5 those before the first live key: etcd-io/etcd#11057), so the
    /// dispatcher reads it rarely and takes new markers from its watch (<see cref="WebhookDispatcher"/>).
    /// <para>A marker that does not read (a key or value of no known shape) is deleted here, each only if unchanged
    /// since the read, and counted in <c>Unreadable</c>: every full read starts from the oldest marker, so one such
    /// marker stopped every delivery for good. Its event, if any, stays in the log (<c>GET /v1/events</c>).</para></remarks>
    public async Task<(IReadOnlyList<OutboxMarker> Markers, long Revision, bool More, IReadOnlyList<string> Unreadable)> MarkersAsync(
        int limit, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(outboxRoot), RangeEnd = EtcdBytes.PrefixEnd(outboxRoot), Limit = limit,
        }, cancellationToken: token), cancellationToken);
        var markers = new List<OutboxMarker>(response.Kvs.Count);
        var unreadable = new List<Mvccpb.KeyValue>();
        foreach (var kv in response.Kvs)
        {
            try
            {
                markers.Add(Marker(kv.Key.ToStringUtf8(), kv.Value));
            }
            catch (InvalidDataException)
            {
                unreadable.Add(kv);
            }
        }

        await DeleteUnchangedAsync(unreadable, cancellationToken);
        return (markers, response.Header.Revision, response.More, [.. unreadable.Select(kv => kv.Key.ToStringUtf8())]);
    }

    /// <summary>Deletes each of <paramref name="kvs"/> if unchanged since it was read.</summary>
    private async Task DeleteUnchangedAsync(IReadOnlyList<Mvccpb.KeyValue> kvs, CancellationToken cancellationToken)
    {
        foreach (var chunk in kvs.Chunk(MaxOpsPerTxn / 2))
        {
            var delete = new TxnRequest();
            foreach (var kv in chunk)
            {
                delete.Compare.Add(EtcdBytes.ModRevisionIs(kv.Key.ToStringUtf8(), kv.ModRevision));
                delete.Success.Add(EtcdBytes.Delete(kv.Key.ToStringUtf8()));
            }

            await EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(delete, cancellationToken: token), cancellationToken);
        }
    }

    /// <summary>The marker stored at <paramref name="key"/> (the full key, <c>{outbox}{ms}/{merchant}/{event id}</c>).
    /// The merchant is what lies between the first and the last '/': a merchant id from before ids were checked may
    /// hold one, and its markers were deleted as unreadable, its events never sent (a review).</summary>
    public OutboxMarker Marker(string key, ByteString value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        var split = key.StartsWith(outboxRoot, StringComparison.Ordinal) ? key[outboxRoot.Length..].Split('/') : [];
        if (split.Length < 3)
        {
            throw new InvalidDataException($"Not an outbox marker's key: '{key}'.");
        }

        string[] parts = [split[0], string.Join('/', split[1..^1]), split[^1]];

        var (type, logKey) = PaymentEvents.ParseOutboxValue(value.ToStringUtf8());
        // The dispatcher reads the log key with the API's etcd rights and sends what it finds to the merchant's
        // endpoints, and the saga writes markers (the orchestrator's etcd user): a marker naming any other key — an
        // endpoint's record with its signing secret, a stored answer, another merchant's event — would have it sent
        // out. So the key must be this marker's own event in its merchant's log, and the type one of the four.
        var merchantRoot = PaymentEvents.MerchantRoot(eventsRoot, parts[1]);
        var timeKeyLength = logKey.Length - merchantRoot.Length - parts[2].Length - 1; // {merchant root}{time}/{event id}
        if (!PaymentEvents.Types.Contains(type) || parts[1].Length == 0 || parts[2].Length == 0 || timeKeyLength <= 0
            || !logKey.StartsWith(merchantRoot, StringComparison.Ordinal) || !logKey.EndsWith("/" + parts[2], StringComparison.Ordinal)
            || logKey.AsSpan(merchantRoot.Length, timeKeyLength).Contains('/'))
        {
            throw new InvalidDataException($"Not an outbox marker of its own event: '{key}'.");
        }

        return new OutboxMarker(key, type, logKey, parts[1], parts[2]);
    }

    /// <summary>The bodies of the events at <paramref name="logKeys"/> as stored, read in one transaction per
    /// <see cref="MaxOpsPerTxn"/> keys; an event that is gone (trimmed) is left out.</summary>
    public async Task<IReadOnlyDictionary<string, byte[]>> EventsAsync(IReadOnlyCollection<string> logKeys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(logKeys);
        var bodies = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var chunk in logKeys.Distinct(StringComparer.Ordinal).Chunk(MaxOpsPerTxn))
        {
            var request = new TxnRequest();
            request.Success.AddRange(chunk.Select(EtcdBytes.Get));
            var response = await TxnAsync(request, cancellationToken);
            foreach (var kv in response.Responses.SelectMany(answer => answer.ResponseRange.Kvs))
            {
                bodies[kv.Key.ToStringUtf8()] = kv.Value.ToByteArray();
            }
        }

        return bodies;
    }

    /// <summary>Settles taken markers in fenced transactions of at most <see cref="MaxOpsPerTxn"/> operations: each
    /// marker is deleted together with the deliveries still owed for its event (those whose first attempt failed, or
    /// was not made), so a marker is gone exactly when nothing about its event is left only in memory. Returns false
    /// if the fence failed.</summary>
    public async Task<bool> SettleMarkersAsync(IWriteFence fence, IReadOnlyList<SettledMarker> settled, CancellationToken cancellationToken)
    {
        var request = NewFenced(fence);
        foreach (var marker in settled)
        {
            // A marker and its deliveries always go in one transaction (an event has at most 64 endpoints' worth).
            if (request.Success.Count > 0 && request.Success.Count + 1 + marker.Owed.Count > MaxOpsPerTxn)
            {
                if (!await CommitAsync(request))
                {
                    return false;
                }

                request = NewFenced(fence);
            }

            request.Success.Add(EtcdBytes.Delete(marker.Key));
            foreach (var (delivery, due) in marker.Owed)
            {
                request.Success.Add(EtcdBytes.Put(KeyOf(delivery, due), Encode(delivery)));
            }
        }

        return request.Success.Count == 0 || await CommitAsync(request);

        async Task<bool> CommitAsync(TxnRequest txn) => (await TxnAsync(txn, cancellationToken)).Succeeded;
    }

    private Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken) =>
        EtcdConnection.CallAsync(token => etcd.Kv.TxnAsync(request, cancellationToken: token), cancellationToken);

    private static TxnRequest NewFenced(IWriteFence fence)
    {
        var request = new TxnRequest();
        fence.AddFence(request);
        return request;
    }

    /// <summary>Deliveries due at <paramref name="now"/>, oldest first, at most <paramref name="limit"/>, after the
    /// key <paramref name="afterKey"/> (null: from the oldest); whether more are due; and the keys of those that did not
    /// read, deleted here if unchanged (as unreadable markers are: one threw out of every scan, which ended the
    /// dispatcher's leadership each time and sent the round's events again and again).</summary>
    public async Task<(IReadOnlyList<DueDelivery> Due, bool More, IReadOnlyList<string> Unreadable)> DueAsync(
        DateTimeOffset now, string? afterKey, int limit, CancellationToken cancellationToken)
    {
        var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
        {
            Key = EtcdBytes.Key(afterKey is null ? dueRoot : afterKey + "\0"),
            RangeEnd = EtcdBytes.Key(dueRoot + EtcdBytes.TimeKey(now.AddMilliseconds(1))),
            Limit = limit,
        }, cancellationToken: token), cancellationToken);
        var due = new List<DueDelivery>(response.Kvs.Count);
        var unreadable = new List<Mvccpb.KeyValue>();
        foreach (var kv in response.Kvs)
        {
            if (Decode(kv.Value) is { } delivery)
            {
                due.Add(new DueDelivery(kv.Key.ToStringUtf8(), kv.ModRevision, delivery));
            }
            else
            {
                unreadable.Add(kv);
            }
        }

        await DeleteUnchangedAsync(unreadable, cancellationToken);
        return (due, response.More, [.. unreadable.Select(kv => kv.Key.ToStringUtf8())]);
    }

    /// <summary>A stored delivery, or null when it does not read as one (not JSON, or a field it needs missing).</summary>
    private static WebhookDelivery? Decode(ByteString value)
    {
        try
        {
            return JsonSerializer.Deserialize<WebhookDelivery>(value.Span, Json) is { MerchantId: not null, EndpointId: not null, EventId: not null, EventKey: not null } delivery
                ? delivery : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Ends delivered deliveries together, each if still as read: one transaction for up to
    /// <see cref="MaxOpsPerTxn"/>; when one of them changed meanwhile, each alone. Returns false if the fence failed.</summary>
    public async Task<bool> EndAllAsync(IWriteFence fence, IReadOnlyList<DueDelivery> done, CancellationToken cancellationToken)
    {
        foreach (var chunk in done.Chunk(MaxOpsPerTxn))
        {
            var request = NewFenced(fence);
            foreach (var due in chunk)
            {
                request.Compare.Add(EtcdBytes.ModRevisionIs(due.Key, due.Revision));
                request.Success.Add(EtcdBytes.Delete(due.Key));
            }

            var response = await TxnAsync(request, cancellationToken);
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

    /// <summary>Deliveries owed (due or not) and outbox markers not yet settled, counted: the dispatcher's backlog.</summary>
    public async Task<long> BacklogAsync(CancellationToken cancellationToken)
    {
        var total = 0L;
        foreach (var prefix in new[] { dueRoot, outboxRoot })
        {
            var response = await EtcdConnection.CallAsync(token => etcd.Kv.RangeAsync(new RangeRequest
            {
                Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix), CountOnly = true,
            }, cancellationToken: token), cancellationToken);
            total += response.Count;
        }

        return total;
    }

    /// <summary>The endpoint and the event of a delivery, in one read.</summary>
    public async Task<(ByteString? Endpoint, ByteString? Event)> ReadAsync(string endpointKey, string eventKey, CancellationToken cancellationToken)
    {
        var request = new TxnRequest();
        request.Success.Add(EtcdBytes.Get(endpointKey));
        request.Success.Add(EtcdBytes.Get(eventKey));
        var response = await TxnAsync(request, cancellationToken);
        return (response.Responses[0].ResponseRange.Kvs.FirstOrDefault()?.Value, response.Responses[1].ResponseRange.Kvs.FirstOrDefault()?.Value);
    }

    /// <summary>Ends a delivery (done, given up, or moot), if it is still as read.</summary>
    public Task<bool> EndAsync(IWriteFence fence, DueDelivery due, CancellationToken cancellationToken) => MoveAsync(fence, due, null, default, cancellationToken);

    /// <summary>Puts a delivery back for another attempt at <paramref name="next"/>, if it is still as read.</summary>
    public Task<bool> RetryAsync(IWriteFence fence, DueDelivery due, DateTimeOffset next, CancellationToken cancellationToken) =>
        MoveAsync(fence, due, due.Delivery with { Attempt = due.Delivery.Attempt + 1 }, next, cancellationToken);

    private async Task<bool> MoveAsync(IWriteFence fence, DueDelivery due, WebhookDelivery? again, DateTimeOffset next, CancellationToken cancellationToken)
    {
        var request = NewFenced(fence);
        request.Compare.Add(EtcdBytes.ModRevisionIs(due.Key, due.Revision));
        request.Success.Add(EtcdBytes.Delete(due.Key));
        if (again is not null)
        {
            request.Success.Add(EtcdBytes.Put(KeyOf(again, next), Encode(again)));
        }

        return (await TxnAsync(request, cancellationToken)).Succeeded;
    }

    private string KeyOf(WebhookDelivery delivery, DateTimeOffset due) =>
        dueRoot + EtcdBytes.TimeKey(due) + "/" + delivery.EndpointId + "/" + delivery.EventId;

    private static ByteString Encode(WebhookDelivery delivery) => ByteString.CopyFrom(JsonSerializer.SerializeToUtf8Bytes(delivery, Json));
}
