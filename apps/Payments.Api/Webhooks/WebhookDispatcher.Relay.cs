namespace Payments.Api.Webhooks;

public sealed partial class WebhookDispatcher
{
    /// <summary>Markers taken and not yet settled in etcd, at most.</summary>
    public const int MaxMarkersTaken = 1_024;

    /// <summary>How long settled markers may wait to be recorded together (unless a round's worth is ready): at low
    /// rates this turns a transaction per event into one per second; a dispatcher that dies sends at most this
    /// much of its last events again.</summary>
    public static readonly TimeSpan SettleDelay = TimeSpan.FromSeconds(1);

    /// <summary>Takes the outbox markers not yet taken (a round's worth) and starts, for each, the first attempts to
    /// the merchant's endpoints that want its event — straight from memory, with nothing written first. An endpoint
    /// without a free slot gets its delivery owed instead. When a marker's attempts are over it is settled
    /// (<see cref="FlushAsync"/>): deleted in etcd with the deliveries still owed, so the common case — delivered at
    /// the first attempt — costs a share of one transaction. If this replica dies first, the marker is still there and
    /// the next leader sends the event again (receivers de-duplicate on the id).</summary>
    private async Task<IReadOnlyList<Task>> TakeMarkersAsync(CancellationToken cancellationToken)
    {
        if (markersTaken.Count >= MaxMarkersTaken)
        {
            return []; // enough under way: settle those first
        }

        // A full read starts from the first marker: markers are keyed by their writer's clock, and transactions
        // commit in another order than their timestamps, so reading on from the newest taken would leave some waiting.
        var markers = await NextMarkersAsync(WebhookDeliveries.MaxMarkersPerRound + markersTaken.Count, cancellationToken);
        var fresh = markers.Where(marker => !markersTaken.ContainsKey(marker.Key)).ToArray();
        if (fresh.Length == 0)
        {
            return [];
        }

        // The round's endpoints and event bodies in a transaction or two each, not a read per merchant and per event.
        IReadOnlyDictionary<string, IReadOnlyList<WebhookEndpoint>> endpointsOf;
        Dictionary<string, WebhookEndpoint[]> wantingOf;
        IReadOnlyDictionary<string, byte[]> bodies;
        try
        {
            endpointsOf = await endpoints.ListManyAsync([.. fresh.Select(marker => marker.MerchantId)], cancellationToken);
            wantingOf = fresh.ToDictionary(marker => marker.Key, marker => endpointsOf[marker.MerchantId].Where(endpoint => endpoint.Wants(marker.Type)).ToArray());
            bodies = await deliveries.EventsAsync([.. fresh.Where(marker => wantingOf[marker.Key].Length > 0).Select(marker => marker.LogKey)], cancellationToken);
        }
        catch (Exception)
        {
            Volatile.Write(ref fullReadWanted, 1); // the markers the watch passed on are out of its queue: read them again
            throw;
        }

        var started = new List<Task>();
        foreach (var marker in fresh)
        {
            markersTaken[marker.Key] = 0;
            var wanting = wantingOf[marker.Key];
            if (wanting.Length == 0 || !bodies.TryGetValue(marker.LogKey, out var body))
            {
                // Nobody listens (the event stays in the log only), or the event was trimmed: nothing to deliver.
                settledMarkers.Enqueue(new SettledMarker(marker.Key, [], time.GetTimestamp()));
                continue;
            }

            started.Add(Task.Run(() => FirstAttemptsAsync(marker, wanting, body, cancellationToken), CancellationToken.None));
        }

        return started;
    }

    private async Task FirstAttemptsAsync(OutboxMarker marker, IReadOnlyList<WebhookEndpoint> wanting, byte[] body, CancellationToken cancellationToken)
    {
        try
        {
            var now = time.GetUtcNow();
            var owed = new List<(WebhookDelivery Delivery, DateTimeOffset Due)>();
            var attempts = new List<Task<(WebhookDelivery Delivery, WebhookAttempt Outcome, string Detail)>>();
            foreach (var endpoint in wanting)
            {
                var delivery = new WebhookDelivery(marker.MerchantId, endpoint.Id, marker.EventId, marker.LogKey, 0, now, endpoint.CreatedAt);
                if (TryTakeSlot(marker.MerchantId, endpoint.Id))
                {
                    attempts.Add(AttemptAsync(endpoint, delivery, body, cancellationToken));
                }
                else
                {
                    owed.Add((delivery, now)); // the endpoint is busy: owed, due now
                }
            }

            foreach (var (delivery, outcome, detail) in await Task.WhenAll(attempts))
            {
                if (outcome != WebhookAttempt.Delivered)
                {
                    var pause = NextPause(1);
                    LogRetry(delivery.EventId, delivery.EndpointId, 1, detail, pause.TotalSeconds);
                    owed.Add((delivery with { Attempt = 1 }, time.GetUtcNow() + pause));
                }
            }

            settledMarkers.Enqueue(new SettledMarker(marker.Key, owed, time.GetTimestamp()));
            if (attempts.Count > 0)
            {
                WantDueScan(); // their slots are free again
            }

            Wake();
        }
        catch (Exception exception)
        {
            // etcd away or stopping: the marker stays in etcd and is taken again at a later round.
            markersTaken.TryRemove(marker.Key, out _);
            LogFault(exception.Message);
        }
    }

    /// <summary>One attempt (the slot already taken; released here), counted.</summary>
    private async Task<(WebhookDelivery Delivery, WebhookAttempt Outcome, string Detail)> AttemptAsync(
        WebhookEndpoint endpoint, WebhookDelivery delivery, byte[] body, CancellationToken cancellationToken)
    {
        try
        {
            var (outcome, detail) = await sender.SendAsync(endpoint.Url, delivery.EventId, body, endpoint.SigningSecrets(time.GetUtcNow()), cancellationToken);
            Attempts.Add(1, new KeyValuePair<string, object?>("outcome", outcome == WebhookAttempt.Delivered ? "delivered" : "failed"));
            return (delivery, outcome, detail);
        }
        finally
        {
            ReleaseSlot(delivery.MerchantId, endpoint.Id);
        }
    }

    private TimeSpan NextPause(int attempt) => Backoff(attempt, options.FirstBackoff ?? FirstBackoff, options.MaxBackoff, Random.Shared.NextDouble());
}
