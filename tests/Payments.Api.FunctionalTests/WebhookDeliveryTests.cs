using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Payments.Api.Webhooks;
using Payments.Merchants;
using Payments.Testing;
using Payments.Webhooks;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 14 item 2: payment events reach a merchant's endpoint signed, at least once, whatever the receiver
/// does — fail, time out, answer out of order — and the same events can be read again with <c>GET /v1/events</c>.
/// Real payments through the saga, a real HTTP receiver, the API's own dispatcher.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class WebhookDeliveryTests(ApiSystemFixture system)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task EveryEvent_ArrivesSigned_ThoughTheReceiverFails_TimesOut_AndAnswersOutOfOrder()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var gate = new Overtaking();
        // Per event: the first attempt fails with 500, or times out (the fixture's dispatcher waits 6 s), or is held
        // until a request that came in after it has been answered, and answered then (out of order); later attempts
        // succeed. Which one goes by the order first attempts arrive in (a string's hash code differs per process), so
        // the six events meet each fault.
        var arrived = -1;
        var faults = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        receiver.Behave = async (eventId, attempt) =>
        {
            var arrival = gate.Arrive();
            var fault = faults.GetOrAdd(eventId, _ => Interlocked.Increment(ref arrived) % 3);
            if (attempt == 1 && fault == 1)
            {
                return (200, TimeSpan.FromSeconds(10)); // answered after the dispatcher gave up: no answer
            }

            if (attempt == 1 && fault == 2)
            {
                await gate.HoldAsync(arrival);
            }

            gate.Answered(eventId, attempt, arrival);
            return (attempt == 1 && fault == 0 ? 500 : 200, TimeSpan.Zero);
        };
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var (endpointId, secret) = await RegisterAsync(client, receiver.Url);

        var paymentIds = await MakePaymentsAsync(client, merchant, count: 6);
        var finals = new Dictionary<string, string>();
        foreach (var paymentId in paymentIds)
        {
            finals[paymentId] = (await client.WaitForStatusAsync(paymentId)).GetProperty("status").GetString()!;
        }

        gate.Open(); // whatever waits for company is answered now
        var expected = finals.Select(final => PaymentEventId(final.Key, "payment." + final.Value)).ToHashSet();
        await PollUntilAsync(() => { lock (receiver.Acknowledged) { return expected.IsSubsetOf(receiver.Acknowledged); } },
            () => $"acknowledged {receiver.Acknowledged.Count} of {expected.Count}");

        foreach (var delivery in receiver.Received)
        {
            Assert.Equal(WebhookVerification.Valid, WebhookSignature.Verify(delivery.Signature, delivery.Body, [secret], DateTimeOffset.UtcNow));
            Assert.Null(delivery.TraceParent); // the platform's trace ids are not the merchant's business
            var body = JsonDocument.Parse(delivery.Body).RootElement;
            Assert.Equal(delivery.EventId, body.GetProperty("id").GetString());
            var paymentId = body.GetProperty("data").GetProperty("paymentId").GetString()!;
            Assert.Contains(paymentId, paymentIds);
            Assert.Equal("payment." + body.GetProperty("data").GetProperty("status").GetString(), body.GetProperty("type").GetString());
            // As GET /v1/payments/{id} shows the payment: what it lacks (these have no reference) is left out, never null.
            Assert.DoesNotContain(body.GetProperty("data").EnumerateObject(), member => member.Value.ValueKind == JsonValueKind.Null);
            Assert.False(body.GetProperty("data").TryGetProperty("reference", out var present), body.GetRawText());
        }

        // Every fault the name promises happened; an event that failed or timed out was acknowledged only when sent again.
        var retried = receiver.Received.Where(delivery => delivery.Attempt > 1).Select(delivery => delivery.EventId).ToHashSet();
        Assert.True(faults.Any(fault => fault.Value == 0 && retried.Contains(fault.Key)), "No event answered 500 was retried.");
        Assert.True(faults.Any(fault => fault.Value == 1 && retried.Contains(fault.Key)), "No event that timed out was retried.");
        // A held event answered after a request that came in after it, and taken as it was (never sent again).
        var answers = gate.Answers.ToArray();
        Assert.True(faults.Where(fault => fault.Value == 2 && !retried.Contains(fault.Key)).Any(fault =>
            {
                var held = Array.FindIndex(answers, answer => answer.EventId == fault.Key && answer.Attempt == 1);
                return held > 0 && answers[..held].Any(earlier => earlier.Arrival > answers[held].Arrival);
            }), "No event was answered out of order and accepted: " + string.Join(", ", answers.Select(answer => $"{answer.EventId}#{answer.Attempt}@{answer.Arrival}")));
        // Nothing stays owed once everything arrived: etcd keeps no delivery (nor outbox marker) behind.
        var owed = system.ApiServices.GetRequiredService<WebhookDeliveries>();
        long left = -1;
        await PollUntilAsync(() => (left = owed.BacklogAsync(CancellationToken.None).GetAwaiter().GetResult()) == 0, () => $"{left} deliveries or markers still owed");
        // The log holds the same events, readable again in time order, page by page.
        var listed = await ListEventsAsync(client, pageSize: 2);
        Assert.Equal(expected.Order(), listed.Where(id => expected.Contains(id)).Order());
        Assert.Equal(listed.Count, listed.Distinct().Count());
        await DeleteAsync(client, endpointId);
    }

    /// <summary>Issue 14 item 3: a new event owes nothing until an attempt fails, so it does not make the dispatcher
    /// scan the owed deliveries (an etcd read): that happens once per <see cref="WebhookDispatcher.IdlePoll"/> and after an
    /// attempt ends. Before, every event did — one read per payment with no endpoint registered anywhere.</summary>
    [Fact]
    public async Task EventsOfAMerchantWithoutEndpoints_DoNotEachMakeTheDispatcherScanWhatIsOwed()
    {
        const int Payments = 30;
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        using var scans = new CounterTotal("payments.webhooks.due_scans");
        var watched = Stopwatch.StartNew();

        var paymentIds = await MakePaymentsAsync(client, merchant, count: Payments);
        foreach (var paymentId in paymentIds)
        {
            await client.WaitForStatusAsync(paymentId);
        }

        var idlePolls = watched.Elapsed / WebhookDispatcher.IdlePoll;
        // A scan per idle poll, and a few for attempts of other tests' endpoints ending meanwhile.
        Assert.True(scans.Total <= idlePolls + 4,
            $"{scans.Total} scans of owed deliveries for {Payments} events in {watched.Elapsed.TotalSeconds:F1} s ({idlePolls:F1} idle polls)");
    }

    /// <summary>Issue 14: new outbox markers reach the dispatcher through its watch, which carries them; it reads the
    /// outbox itself about once per <see cref="WebhookDispatcher.FullReadInterval"/>. Before, every marker made it read
    /// the outbox from its first key, which costs etcd every marker deleted since the last compaction.</summary>
    [Fact]
    public async Task NewEvents_ReachTheDispatcherThroughItsWatch_NotAReadOfTheOutboxEach()
    {
        const int Payments = 30;
        await using var receiver = await WebhookReceiver.StartAsync();
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var (endpointId, _) = await RegisterAsync(client, receiver.Url);
        using var reads = new CounterTotal("payments.webhooks.outbox_reads");
        var watched = Stopwatch.StartNew();

        var expected = new HashSet<string>();
        foreach (var paymentId in await MakePaymentsAsync(client, merchant, count: Payments))
        {
            expected.Add(PaymentEventId(paymentId, "payment." + (await client.WaitForStatusAsync(paymentId)).GetProperty("status").GetString()));
        }

        await PollUntilAsync(() => { lock (receiver.Acknowledged) { return expected.IsSubsetOf(receiver.Acknowledged); } },
            () => $"acknowledged {receiver.Acknowledged.Count} of {expected.Count}");

        // A full read per interval, and a couple for a watch reopened meanwhile; every event still arrived.
        var intervals = watched.Elapsed / WebhookDispatcher.FullReadInterval;
        Assert.True(reads.Total <= intervals + 3,
            $"{reads.Total} reads of the outbox for {Payments} events in {watched.Elapsed.TotalSeconds:F1} s ({intervals:F1} intervals)");
        await DeleteAsync(client, endpointId);
    }

    /// <summary>The receiver holds every delivery until all twelve events are owed and the endpoint's slots are
    /// full: the bound, and only it, keeps the other eight back. (Held within the fixture's 6 s delivery timeout: a
    /// delivery given up frees its slot before the receiver sees its request end, and would count twice.)</summary>
    [Fact]
    public async Task OneEndpoint_NeverHasMoreDeliveriesInFlight_ThanItsBound()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.Held = release.Task;
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var (endpointId, _) = await RegisterAsync(client, receiver.Url);
        var paymentIds = await MakePaymentsAsync(client, merchant, count: 12);
        foreach (var paymentId in paymentIds)
        {
            await client.WaitForStatusAsync(paymentId); // its event is owed from now on
        }

        var bound = system.ApiServices.GetRequiredService<WebhookOptions>().MaxConcurrencyPerEndpoint;
        Assert.InRange(bound, 1, paymentIds.Count - 1);
        await PollUntilAsync(() => receiver.InProgress >= bound, () => $"{receiver.InProgress} deliveries in progress of a bound of {bound}");
        release.SetResult();
        await PollUntilAsync(() => { lock (receiver.Acknowledged) { return receiver.Acknowledged.Count >= paymentIds.Count; } },
            () => $"acknowledged {receiver.Acknowledged.Count} of {paymentIds.Count}");
        Assert.Equal(bound, receiver.MaxInProgress);
        await DeleteAsync(client, endpointId);
    }

    /// <summary>An outbox marker or an endpoint record that does not read is passed over: every full read of the outbox
    /// starts at the oldest marker, and one that threw there (or one endpoint record of a merchant whose events were in
    /// the round) ended every round before anything was sent, for good. The marker is removed and logged; the event of
    /// the payment made after them still arrives.</summary>
    [Fact]
    public async Task AnUnreadableMarkerOrEndpoint_IsPassedOver_AndTheOtherEventsArrive()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var (endpointId, _) = await RegisterAsync(client, receiver.Url);
        var outbox = system.ApiServices.GetRequiredService<WebhookDeliveries>().OutboxRoot;
        var poison = outbox + "0000000000001/not/a/marker"; // the oldest
        // An owed delivery that does not read (the oldest due): it threw out of every scan, ending each leadership.
        var poisonDue = outbox[..^"outbox/".Length] + "due/0000000000001/not/a/delivery";
        var unreadableEndpoint = system.ApiServices.GetRequiredService<WebhookEndpointStore>().KeyOf(merchant, "we_unreadable");
        await system.Etcd.Client.PutAsync(poison, "nonsense");
        await system.Etcd.Client.PutAsync(poisonDue, "{\"attempt\":1}");
        await system.Etcd.Client.PutAsync(unreadableEndpoint, "{not json");
        try
        {
            var paymentId = (await MakePaymentsAsync(client, merchant, count: 1))[0];
            var eventId = PaymentEventId(paymentId, "payment." + (await client.WaitForStatusAsync(paymentId)).GetProperty("status").GetString());
            await PollUntilAsync(() => { lock (receiver.Acknowledged) { return receiver.Acknowledged.Contains(eventId); } }, () => $"{eventId} not delivered");
            await PollUntilAsync(() => string.IsNullOrEmpty(system.Etcd.Client.GetVal(poison)), () => "the unreadable marker is still there");
            await PollUntilAsync(() => string.IsNullOrEmpty(system.Etcd.Client.GetVal(poisonDue)), () => "the unreadable owed delivery is still there");
        }
        finally
        {
            await system.Etcd.Client.DeleteAsync(poison);
            await system.Etcd.Client.DeleteAsync(poisonDue);
            await system.Etcd.Client.DeleteAsync(unreadableEndpoint);
            await DeleteAsync(client, endpointId);
        }
    }

    /// <summary>A marker whose value names another key than its own event is passed over. The saga's etcd user writes
    /// markers and the dispatcher reads the key a marker names with the API's rights: before, a marker naming another
    /// merchant's endpoint record had that record, signing secret and all, sent to the marker's merchant's endpoints.</summary>
    [Fact]
    public async Task AMarkerNamingAKeyOtherThanItsOwnEvent_IsPassedOver_AndThatKeyIsNeverSent()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var (endpointId, _) = await RegisterAsync(client, receiver.Url);
        var (victim, victimMerchant) = await NewMerchantAsync();
        using var __ = victim;
        var (victimEndpoint, victimSecret) = await RegisterAsync(victim, "https://hooks.example.com/victim");
        var victimRecord = system.ApiServices.GetRequiredService<WebhookEndpointStore>().KeyOf(victimMerchant, victimEndpoint);
        var forged = system.ApiServices.GetRequiredService<WebhookDeliveries>().OutboxRoot + $"0000000000002/{merchant}/evt_forged"; // the oldest
        await system.Etcd.Client.PutAsync(forged, "payment.completed " + victimRecord);
        try
        {
            var paymentId = (await MakePaymentsAsync(client, merchant, count: 1))[0];
            var eventId = PaymentEventId(paymentId, "payment." + (await client.WaitForStatusAsync(paymentId)).GetProperty("status").GetString());
            await PollUntilAsync(() => { lock (receiver.Acknowledged) { return receiver.Acknowledged.Contains(eventId); } }, () => $"{eventId} not delivered");
            // Gone either way (delivered and settled, or refused): by then any delivery of it was made.
            await PollUntilAsync(() => string.IsNullOrEmpty(system.Etcd.Client.GetVal(forged)), () => "the forged marker is still there");
            Assert.DoesNotContain(receiver.Received, delivery => delivery.EventId == "evt_forged"
                || Encoding.UTF8.GetString(delivery.Body).Contains(victimSecret, StringComparison.Ordinal));
        }
        finally
        {
            await system.Etcd.Client.DeleteAsync(forged);
            await DeleteAsync(client, endpointId);
            await DeleteAsync(victim, victimEndpoint);
        }
    }

    /// <summary>A keyed endpoint deleted and made again under the same key has the same id: what was still owed to the
    /// one deleted must not go to the new one (another URL, other events, made after them).</summary>
    [Fact]
    public async Task AnEndpointMadeAgainUnderItsKey_IsNotSentWhatWasOwedToTheOneDeleted()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var failing = 1;
        receiver.Behave = (_, _) => Task.FromResult((Volatile.Read(ref failing) == 1 ? 500 : 200, TimeSpan.Zero));
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var key = Guid.NewGuid().ToString();
        var body = $"{{\"url\":\"{receiver.Url}\"}}";
        using var first = await client.SendJsonAsync("/v1/webhook-endpoints", body, key);
        var endpointId = (await first.JsonAsync()).GetProperty("id").GetString()!;
        await MakePaymentsAsync(client, merchant, count: 1);
        await PollUntilAsync(() => !receiver.Received.IsEmpty, () => "no attempt yet");

        await DeleteAsync(client, endpointId);
        using var again = await client.SendJsonAsync("/v1/webhook-endpoints", body, key);
        Assert.Equal(endpointId, (await again.JsonAsync()).GetProperty("id").GetString());
        var receivedBefore = receiver.Received.Count;
        Volatile.Write(ref failing, 0);

        // The owed delivery comes due within a second (the fixture's MaxBackoff) and is dropped, not sent.
        var owed = system.ApiServices.GetRequiredService<WebhookDeliveries>();
        long left = -1;
        await PollUntilAsync(() => (left = owed.BacklogAsync(CancellationToken.None).GetAwaiter().GetResult()) == 0, () => $"{left} deliveries or markers still owed");
        Assert.Equal(receivedBefore, receiver.Received.Count);
        await DeleteAsync(client, endpointId);
    }

    /// <summary>A review: whether an owed delivery's endpoint is the one it was owed to compared the endpoint's creation
    /// (the creating replica's clock) with the fan-out (the dispatcher's): an endpoint made just before the fan-out by a
    /// replica whose clock ran ahead lost its retries, silently. The delivery now keeps the endpoint's own creation time.</summary>
    [Fact]
    public void AnOwedDelivery_KnowsItsEndpointByTheEndpointsOwnCreationTime_NotByAnotherClock()
    {
        var fannedOut = DateTimeOffset.Parse("2026-12-07T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var endpoint = new WebhookEndpoint("we_1", "m", "https://example.com/hooks", [], null, fannedOut.AddSeconds(2), []); // a clock 2 s ahead
        var delivery = new WebhookDelivery("m", "we_1", "evt_1", "events/m/1/evt_1", 1, fannedOut, endpoint.CreatedAt);

        Assert.True(delivery.IsOwedTo(endpoint));
        Assert.False(delivery.IsOwedTo(endpoint with { CreatedAt = endpoint.CreatedAt.AddTicks(1) })); // made again under its id
        Assert.False((delivery with { EndpointCreatedAt = null }).IsOwedTo(endpoint)); // owed before the time was kept: as before
        Assert.True((delivery with { EndpointCreatedAt = null }).IsOwedTo(endpoint with { CreatedAt = fannedOut }));
    }

    /// <summary>One merchant with its 16 endpoints (4 deliveries each at once) aimed at a slow receiver could hold all
    /// 64 of the dispatcher's slots, and every other merchant's deliveries waited. A merchant now has at most
    /// <see cref="WebhookOptions.InFlightPerMerchant"/> in flight, counted at its receiver.</summary>
    [Fact]
    public async Task OneMerchant_NeverHasMoreDeliveriesInFlight_ThanItsBound_WhateverItsEndpoints()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Behave = (_, _) => Task.FromResult((200, TimeSpan.FromMilliseconds(1_000)));
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var endpoints = new List<string>();
        for (var index = 0; index < WebhookEndpointStore.MaxEndpointsPerMerchant; index++)
        {
            endpoints.Add((await RegisterAsync(client, receiver.Url)).Id);
        }

        var paymentIds = await MakePaymentsAsync(client, merchant, count: 6);
        var deliveries = paymentIds.Count * endpoints.Count;
        await PollUntilAsync(() => receiver.Received.Count >= deliveries, () => $"received {receiver.Received.Count} of {deliveries}");
        var options = system.ApiServices.GetRequiredService<WebhookOptions>();
        Assert.True(endpoints.Count * options.MaxConcurrencyPerEndpoint > options.InFlightPerMerchant, "The endpoints alone would bound it.");
        Assert.InRange(receiver.MaxInProgress, 1, options.InFlightPerMerchant);
        foreach (var endpointId in endpoints)
        {
            await DeleteAsync(client, endpointId);
        }
    }

    [Fact]
    public async Task ARotatedSecret_KeepsSigningThroughItsOverlap_AndAZeroOverlapDropsItAtOnce()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var (client, merchant) = await NewMerchantAsync();
        using var _ = client;
        var (endpointId, oldSecret) = await RegisterAsync(client, receiver.Url);
        using var rotated = await client.SendJsonAsync($"/v1/webhook-endpoints/{endpointId}/rotate-secret", "{\"overlapSeconds\":3600}", null);
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        var newSecret = (await rotated.JsonAsync()).GetProperty("secret").GetString()!;
        Assert.NotEqual(oldSecret, newSecret);

        var first = (await MakePaymentsAsync(client, merchant, count: 1))[0];
        var delivery = await FirstDeliveryOfAsync(receiver, first);
        Assert.Equal(WebhookVerification.Valid, WebhookSignature.Verify(delivery.Signature, delivery.Body, [oldSecret], DateTimeOffset.UtcNow));
        Assert.Equal(WebhookVerification.Valid, WebhookSignature.Verify(delivery.Signature, delivery.Body, [newSecret], DateTimeOffset.UtcNow));

        // A second rotation within the overlap: the newest two sign, the first ends (rotations used to pile up signatures).
        using var again = await client.SendJsonAsync($"/v1/webhook-endpoints/{endpointId}/rotate-secret", "{\"overlapSeconds\":3600}", null);
        var third = (await again.JsonAsync()).GetProperty("secret").GetString()!;
        var next = (await MakePaymentsAsync(client, merchant, count: 1))[0];
        delivery = await FirstDeliveryOfAsync(receiver, next);
        Assert.Equal(WebhookEndpointStore.MaxSecrets, delivery.Signature!.Split("v1=").Length - 1);
        Assert.Equal(WebhookVerification.Valid, WebhookSignature.Verify(delivery.Signature, delivery.Body, [third], DateTimeOffset.UtcNow));
        Assert.Equal(WebhookVerification.Valid, WebhookSignature.Verify(delivery.Signature, delivery.Body, [newSecret], DateTimeOffset.UtcNow));
        Assert.Equal(WebhookVerification.BadSignature, WebhookSignature.Verify(delivery.Signature, delivery.Body, [oldSecret], DateTimeOffset.UtcNow));

        using var leaked = await client.SendJsonAsync($"/v1/webhook-endpoints/{endpointId}/rotate-secret", "{\"overlapSeconds\":0}", null);
        var latest = (await leaked.JsonAsync()).GetProperty("secret").GetString()!;
        var second = (await MakePaymentsAsync(client, merchant, count: 1))[0];
        delivery = await FirstDeliveryOfAsync(receiver, second);
        Assert.Equal(WebhookVerification.Valid, WebhookSignature.Verify(delivery.Signature, delivery.Body, [latest], DateTimeOffset.UtcNow));
        Assert.Equal(WebhookVerification.BadSignature, WebhookSignature.Verify(delivery.Signature, delivery.Body, [third, newSecret, oldSecret], DateTimeOffset.UtcNow));
        await DeleteAsync(client, endpointId);
    }

    internal async Task<(HttpClient Client, string Merchant)> NewMerchantAsync()
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        return (await system.ClientForAsync(merchant, [.. ApiScopes.Default]), merchant);
    }

    internal static async Task<(string Id, string Secret)> RegisterAsync(HttpClient client, string url)
    {
        using var response = await client.SendJsonAsync("/v1/webhook-endpoints", JsonSerializer.Serialize(new { url }), null);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.JsonAsync();
        return (body.GetProperty("id").GetString()!, body.GetProperty("secret").GetString()!);
    }

    private static async Task DeleteAsync(HttpClient client, string endpointId)
    {
        using var response = await client.DeleteAsync($"/v1/webhook-endpoints/{endpointId}");
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
    }

    /// <summary>Payments that end each way a payment can: completed, and failed for want of funds.</summary>
    private static async Task<List<string>> MakePaymentsAsync(HttpClient client, string merchant, int count)
    {
        var (debtor, creditor, poor) = ($"{merchant}-d", $"{merchant}-c", $"{merchant}-p");
        await client.OpenAccountAsync(debtor, fundsMinor: 1_000_000);
        await client.OpenAccountAsync(creditor);
        await client.OpenAccountAsync(poor);
        var ids = new List<string>();
        for (var index = 0; index < count; index++)
        {
            using var response = await client.PayAsync(index % 3 == 2 ? poor : debtor, creditor, 100 + index);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            ids.Add((await response.JsonAsync()).GetProperty("paymentId").GetString()!);
        }

        return ids;
    }

    private static async Task<List<string>> ListEventsAsync(HttpClient client, int pageSize)
    {
        const int MaxPages = 100;
        var ids = new List<string>();
        string? cursor = null;
        for (var page = 0; page < MaxPages; page++)
        {
            using var response = await client.GetAsync($"/v1/events?limit={pageSize}" + (cursor is null ? "" : "&after=" + Uri.EscapeDataString(cursor)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.JsonAsync();
            ids.AddRange(body.GetProperty("data").EnumerateArray().Select(item => item.GetProperty("id").GetString()!));
            if (!body.GetProperty("hasMore").GetBoolean())
            {
                return ids;
            }

            cursor = body.GetProperty("nextCursor").GetString();
        }

        throw new InvalidOperationException($"More than {MaxPages} pages of events.");
    }

    private static async Task<ReceivedWebhook> FirstDeliveryOfAsync(WebhookReceiver receiver, string paymentId)
    {
        ReceivedWebhook? found = null;
        await PollUntilAsync(() => (found = receiver.Received.FirstOrDefault(delivery =>
            JsonDocument.Parse(delivery.Body).RootElement.GetProperty("data").GetProperty("paymentId").GetString() == paymentId)) is not null,
            () => $"no delivery for {paymentId}");
        return found!;
    }

    private static string PaymentEventId(string paymentId, string type) => Orchestrator.Client.Records.PaymentEvents.IdFor(paymentId, type);

    internal static async Task PollUntilAsync(Func<bool> condition, Func<string> state)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(waited.Elapsed < Bound, $"Not within {Bound.TotalSeconds} s: {state()}");
            await Task.Delay(50);
        }
    }

    /// <summary>Holds a request until one that came in after it has been answered, then lets it be answered: answers out
    /// of the order the requests came in. Records the order requests are answered in.</summary>
    private sealed class Overtaking
    {
        private readonly Lock gate = new();
        private readonly List<(int Arrival, TaskCompletionSource Turn)> held = [];
        private int arrivals;
        private bool open;

        public ConcurrentQueue<(string EventId, int Attempt, int Arrival)> Answers { get; } = new();

        public int Arrive() => Interlocked.Increment(ref arrivals);

        public Task HoldAsync(int arrival)
        {
            var turn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (gate)
            {
                if (open)
                {
                    return Task.CompletedTask;
                }

                held.Add((arrival, turn));
            }

            return turn.Task;
        }

        /// <summary>A request is answered now: those held that came in before it may be answered after it.</summary>
        public void Answered(string eventId, int attempt, int arrival)
        {
            lock (gate)
            {
                Answers.Enqueue((eventId, attempt, arrival));
                Release(waiting => waiting.Arrival < arrival);
            }
        }

        public void Open()
        {
            lock (gate)
            {
                open = true;
                Release(_ => true);
            }
        }

        private void Release(Func<(int Arrival, TaskCompletionSource Turn), bool> which)
        {
            foreach (var waiting in held.Where(which).ToArray())
            {
                held.Remove(waiting);
                waiting.Turn.SetResult();
            }
        }
    }
}
