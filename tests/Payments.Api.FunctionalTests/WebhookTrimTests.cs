using Etcdserverpb;
using Google.Protobuf;
using Microsoft.AspNetCore.Hosting;
using Payments.Api.Webhooks;
using Payments.Etcd;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>Storage stays bounded with webhook delivery off (<c>webhooks.deliver: false</c>): the payments still write
/// an event and an outbox marker per status change, and nothing else deletes them. Before, a dispatcher with delivery
/// off returned at once, and both families grew until etcd's quota stopped the ledger.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class WebhookTrimTests(ApiSystemFixture system)
{
    [Fact]
    public async Task WithDeliveryOff_OldEventsAndUndeliverableMarkersGo_YoungOnesStay()
    {
        var layout = new EtcdOptions { KeyPrefix = $"/functional-trim-{Guid.NewGuid():N}/" };
        var eventsRoot = EtcdBytes.AsPrefix(layout.PaymentsPrefix) + "~events/merchant-1/";
        var outboxRoot = EtcdBytes.AsPrefix(layout.WebhookOutboxPrefix);
        var now = DateTimeOffset.UtcNow;
        // The defaults: events kept 96 h, markers owed for 72 h. Each key is an hour past its bound, or an hour old.
        var oldEvent = eventsRoot + EtcdBytes.TimeKey(now - TimeSpan.FromHours(97)) + "/evt_old";
        var youngEvent = eventsRoot + EtcdBytes.TimeKey(now - TimeSpan.FromHours(1)) + "/evt_young";
        var oldMarker = outboxRoot + EtcdBytes.TimeKey(now - TimeSpan.FromHours(73)) + "/merchant-1/evt_old";
        var youngMarker = outboxRoot + EtcdBytes.TimeKey(now - TimeSpan.FromHours(1)) + "/merchant-1/evt_young";
        // Owed deliveries too (found in review: kept for good while delivery was off), by when each is due.
        var dueRoot = EtcdBytes.AsPrefix(layout.WebhooksPrefix) + "due/";
        var oldOwed = dueRoot + EtcdBytes.TimeKey(now - TimeSpan.FromHours(73)) + "/merchant-1/we_x/evt_old";
        var youngOwed = dueRoot + EtcdBytes.TimeKey(now - TimeSpan.FromHours(1)) + "/merchant-1/we_x/evt_young";
        foreach (var key in new[] { oldEvent, youngEvent, oldMarker, youngMarker, oldOwed, youngOwed })
        {
            await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(key), Value = ByteString.CopyFromUtf8("{}") });
        }

        // The trim goes merchant by merchant, from the merchant records: more merchants than one pass takes, the one with
        // events last among them.
        var merchants = new MerchantStore(system.Etcd, layout.ApiPrefix);
        for (var other = 0; other < WebhookDispatcher.MaxMerchantsPerTrim + 3; other++)
        {
            await merchants.CreateMerchantAsync($"merchant-0-{other:D3}", null, CancellationToken.None);
        }

        await merchants.CreateMerchantAsync("merchant-1", null, CancellationToken.None);

        // A merchant from before merchant records: only its key record (the merchant id alone) names it.
        var legacyEvent = EtcdBytes.AsPrefix(layout.PaymentsPrefix) + "~events/merchant-legacy/" + EtcdBytes.TimeKey(now - TimeSpan.FromHours(97)) + "/evt_legacy";
        await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(legacyEvent), Value = ByteString.CopyFromUtf8("{}") });
        await system.Etcd.Kv.PutAsync(new PutRequest
        {
            Key = EtcdBytes.Key(EtcdBytes.AsPrefix(layout.ApiPrefix) + "merchant-keys/" + MerchantStore.Hash("dp_legacy-key")),
            Value = ByteString.CopyFromUtf8("merchant-legacy"),
        });

        // One whose id predates the id check (a '.'): no merchant record can name it, so the trim reads such merchants
        // from their key records (found in review: their events were kept for good).
        var dottedEvent = EtcdBytes.AsPrefix(layout.PaymentsPrefix) + "~events/legacy.co/" + EtcdBytes.TimeKey(now - TimeSpan.FromHours(97)) + "/evt_dotted";
        var dottedYoung = EtcdBytes.AsPrefix(layout.PaymentsPrefix) + "~events/legacy.co/" + EtcdBytes.TimeKey(now - TimeSpan.FromHours(1)) + "/evt_dotted_young";
        foreach (var key in new[] { dottedEvent, dottedYoung })
        {
            await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(key), Value = ByteString.CopyFromUtf8("{}") });
        }

        await system.Etcd.Kv.PutAsync(new PutRequest
        {
            Key = EtcdBytes.Key(EtcdBytes.AsPrefix(layout.ApiPrefix) + "merchant-keys/" + MerchantStore.Hash("dp_dotted-key")),
            Value = ByteString.CopyFromUtf8("legacy.co"),
        });

        // Written before the replica starts: its dispatcher trims when it takes the lock, then every 10 minutes.
        await using var replica = await system.StartReplicaAsync(layout.KeyPrefix, web => web.UseSetting("Webhooks:Deliver", "false"));
        await WebhookDeliveryTests.PollUntilAsync(
            () => !Exists(oldEvent) && !Exists(oldMarker) && !Exists(legacyEvent) && !Exists(oldOwed) && !Exists(dottedEvent),
            () => $"old event there: {Exists(oldEvent)}, old marker there: {Exists(oldMarker)}, legacy merchant's old event there: {Exists(legacyEvent)}, old owed delivery there: {Exists(oldOwed)}, dotted legacy merchant's old event there: {Exists(dottedEvent)}");
        Assert.True(Exists(dottedYoung), "a legacy merchant's event within its retention was trimmed");
        Assert.True(Exists(youngOwed), "an owed delivery within the retry window was dropped");
        Assert.True(Exists(youngEvent), "an event within its retention was trimmed");
        Assert.True(Exists(youngMarker), "a marker within the retry window was dropped: turning delivery back on would not send it");
    }

    /// <summary>Found in review: nothing bounded the deliveries owed, so one merchant's receiver down for days at a high
    /// event rate could fill etcd's quota and stop every merchant's payments. Past Webhooks:MaxOwedDeliveries (0 here)
    /// a failed first attempt is not kept for retries: the marker is settled and nothing is owed.</summary>
    [Fact]
    public async Task PastTheBoundOnOwedDeliveries_AFailedFirstAttemptIsNotKept()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Behave = (_, _) => Task.FromResult((500, TimeSpan.Zero));
        var layout = new EtcdOptions { KeyPrefix = $"/functional-owed-{Guid.NewGuid():N}/" };
        const string Merchant = "merchant-owed";
        var endpoints = new WebhookEndpointStore(system.Etcd, layout.WebhooksPrefix, TimeProvider.System);
        Assert.NotNull(await endpoints.CreateAsync(Merchant, receiver.Url, [], null, CancellationToken.None));
        var now = DateTimeOffset.UtcNow;
        var eventsRoot = EtcdBytes.AsPrefix(layout.PaymentsPrefix) + "~events/";
        var logKey = Payments.Orchestrator.Client.Records.PaymentEvents.LogKey(eventsRoot, Merchant, now, "evt_owed");
        var marker = EtcdBytes.AsPrefix(layout.WebhookOutboxPrefix) + EtcdBytes.TimeKey(now) + "/" + Merchant + "/evt_owed";
        await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(logKey), Value = ByteString.CopyFromUtf8("{\"id\":\"evt_owed\"}") });
        await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(marker), Value = ByteString.CopyFromUtf8("payment.completed " + logKey) });

        await using var replica = await system.StartReplicaAsync(layout.KeyPrefix, web => web.UseSetting("Webhooks:MaxOwedDeliveries", "0"));
        await WebhookDeliveryTests.PollUntilAsync(() => !Exists(marker), () => $"the marker is still there; {receiver.Received.Count} attempts received");

        Assert.Contains(receiver.Received, delivery => delivery.EventId == "evt_owed"); // the first attempt was made
        var dueRoot = EtcdBytes.AsPrefix(layout.WebhooksPrefix) + "due/";
        Assert.Equal(0, system.Etcd.Kv.Range(new RangeRequest { Key = EtcdBytes.Key(dueRoot), RangeEnd = EtcdBytes.PrefixEnd(dueRoot), CountOnly = true }).Count);
    }

    /// <summary>Found by a probe: the bound on owed deliveries was shared by all merchants, so one whose endpoints all
    /// failed (the probe's: 4 endpoints, 27 payments, the bound scaled down to 40) filled it, and every other merchant's
    /// failed deliveries were tried once and never again for as long as it kept it full. Each merchant keeps at most its
    /// share (a quarter of the bound: 2 here, the bound 8): the greedy merchant's 4 events leave 2 owed, and the other
    /// merchant's failed delivery, after them, is still kept.</summary>
    [Fact]
    public async Task OneMerchantPastItsShareOfOwedDeliveries_LeavesTheOthersTheirs()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Behave = (_, _) => Task.FromResult((500, TimeSpan.Zero));
        var layout = new EtcdOptions { KeyPrefix = $"/functional-owed-share-{Guid.NewGuid():N}/" };
        var endpoints = new WebhookEndpointStore(system.Etcd, layout.WebhooksPrefix, TimeProvider.System);
        var greedy = (await endpoints.CreateAsync("merchant-greedy", receiver.Url, [], null, CancellationToken.None))!.Value.Endpoint.Id;
        var other = (await endpoints.CreateAsync("merchant-other", receiver.Url, [], null, CancellationToken.None))!.Value.Endpoint.Id;
        var markers = new List<string>();
        foreach (var (merchant, index) in Enumerable.Range(0, 4).Select(index => ("merchant-greedy", index)).Append(("merchant-other", 0)))
        {
            var now = DateTimeOffset.UtcNow;
            var eventId = $"evt_{merchant}_{index}";
            var logKey = Payments.Orchestrator.Client.Records.PaymentEvents.LogKey(EtcdBytes.AsPrefix(layout.PaymentsPrefix) + "~events/", merchant, now, eventId);
            markers.Add(EtcdBytes.AsPrefix(layout.WebhookOutboxPrefix) + EtcdBytes.TimeKey(now) + "/" + merchant + "/" + eventId);
            await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(logKey), Value = ByteString.CopyFromUtf8($"{{\"id\":\"{eventId}\"}}") });
            await system.Etcd.Kv.PutAsync(new PutRequest { Key = EtcdBytes.Key(markers[^1]), Value = ByteString.CopyFromUtf8("payment.completed " + logKey) });
        }

        await using var replica = await system.StartReplicaAsync(layout.KeyPrefix, web => web.UseSetting("Webhooks:MaxOwedDeliveries", "8"));
        await WebhookDeliveryTests.PollUntilAsync(() => markers.All(marker => !Exists(marker)), () => $"markers remain; {receiver.Received.Count} attempts received");

        var dueRoot = EtcdBytes.AsPrefix(layout.WebhooksPrefix) + "due/";
        var owed = system.Etcd.Kv.Range(new RangeRequest { Key = EtcdBytes.Key(dueRoot), RangeEnd = EtcdBytes.PrefixEnd(dueRoot), KeysOnly = true }).Kvs
            .Select(kv => kv.Key.ToStringUtf8()[dueRoot.Length..].Split('/')[1]) // due/{ms}/{endpoint}/{event}
            .ToArray();
        Assert.Equal(2, owed.Count(endpoint => endpoint == greedy)); // its share, not its 4
        Assert.Equal(1, owed.Count(endpoint => endpoint == other)); // kept although the other merchant failed first
    }

    private bool Exists(string key) =>
        system.Etcd.Kv.Range(new RangeRequest { Key = EtcdBytes.Key(key), CountOnly = true }).Count > 0;
}
