using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Payments.Etcd;
using Payments.Etcd.Regions;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>A region that is not the active one: not ready, writes refused with a clear problem and nothing written;
/// it takes writes once its epoch is mirrored, and stops again on demotion (ARCHITECTURE §2 invariant 6).</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class RegionWriteGateTests(ApiSystemFixture system)
{
    private static readonly TimeSpan ViewBound = TimeSpan.FromSeconds(10);

    /// <summary>Webhook endpoints are shipped from the active region only, and the API's view of the epoch is polled:
    /// a deletion made just after a demotion was answered 204 and never reached the region serving the merchant, where
    /// the endpoint kept receiving events. Every change of an endpoint now carries the region's fence.</summary>
    [Fact]
    public async Task AnEndpointIsNotChanged_ByARegionDemotedSinceItsLastLook_AndStaysAsItWas()
    {
        var (prefix, mirror, watcher) = await RegionHoldingEpochTwoAsync();
        var store = new Payments.Api.Webhooks.WebhookEndpointStore(system.Etcd, prefix + "webhooks/", TimeProvider.System) { RegionFence = watcher.CurrentFence };
        var (endpoint, created) = (await store.CreateAsync("fenced-merchant", "https://example.com/hooks", [], null, CancellationToken.None))!.Value;
        Assert.True(created); // while the region holds its epoch

        await mirror.ReleaseAsync(CancellationToken.None); // demoted; the watcher has not looked again
        await Assert.ThrowsAsync<Payments.Ledger.Contracts.RegionNotWritableException>(() => store.DeleteAsync("fenced-merchant", endpoint.Id, CancellationToken.None));
        await Assert.ThrowsAsync<Payments.Ledger.Contracts.RegionNotWritableException>(
            () => store.RotateSecretAsync("fenced-merchant", endpoint.Id, TimeSpan.Zero, CancellationToken.None));
        await Assert.ThrowsAsync<Payments.Ledger.Contracts.RegionNotWritableException>(
            () => store.CreateAsync("fenced-merchant", "https://example.com/other", [], null, CancellationToken.None));
        var kept = Assert.Single(await store.ListAsync("fenced-merchant", CancellationToken.None));
        Assert.Equal(endpoint.Id, kept.Id);
        Assert.Equal(endpoint.Secrets.Select(secret => secret.Secret), kept.Secrets.Select(secret => secret.Secret));
    }

    /// <summary>Found in review: merchants and keys are shipped from the active region only, but their writes carried
    /// no fence: an operator's revocation reaching the API just after a switchover (its view of the epoch is polled)
    /// was answered 204 and never reached the region now serving the key, where it kept working. Every write of the
    /// merchant store now carries the region's fence; a listing in the standby is still served.</summary>
    [Fact]
    public async Task AKeyIsNotRevoked_ByARegionDemotedSinceItsLastLook_AndStaysListed()
    {
        var (prefix, mirror, watcher) = await RegionHoldingEpochTwoAsync();
        var store = new MerchantStore(system.Etcd, prefix + "api/") { RegionFence = watcher.CurrentFence };
        await store.CreateMerchantAsync("fenced-merchant", null, CancellationToken.None);
        var (_, issued) = await store.IssueKeyAsync("fenced-merchant", ApiScopes.Default, CancellationToken.None);
        Assert.NotNull(issued); // while the region holds its epoch

        await mirror.ReleaseAsync(CancellationToken.None); // demoted; the watcher has not looked again
        await Assert.ThrowsAsync<Payments.Ledger.Contracts.RegionNotWritableException>(
            () => store.RevokeKeyAsync("fenced-merchant", issued.Record.KeyId, CancellationToken.None));
        await Assert.ThrowsAsync<Payments.Ledger.Contracts.RegionNotWritableException>(
            () => store.RotateKeyAsync("fenced-merchant", issued.Record.KeyId, TimeSpan.Zero, CancellationToken.None));
        await Assert.ThrowsAsync<Payments.Ledger.Contracts.RegionNotWritableException>(
            () => store.IssueKeyAsync("fenced-merchant", ApiScopes.Default, CancellationToken.None));
        var listed = Assert.Single((await store.ListKeysAsync("fenced-merchant", CancellationToken.None))!);
        Assert.Equal((issued.Record.KeyId, null), (listed.Record.KeyId, listed.Record.ExpiresAt));

        // A claim writes in its compare's failure branch (the merchant's own namespaced form, when another merchant
        // holds the plain id): the fence among its compares sent it there, and it wrote (diff review). Nothing now.
        Assert.True(await mirror.HoldAsync(3, TimeSpan.FromSeconds(30), CancellationToken.None));
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.Equal("shared-id", (await store.ClaimAccountAsync("shared-id", "other-merchant", null, long.MaxValue, CancellationToken.None)).LedgerId);
        await mirror.ReleaseAsync(CancellationToken.None);
        await Assert.ThrowsAsync<Payments.Ledger.Contracts.RegionNotWritableException>(
            () => store.ClaimAccountAsync("shared-id", "fenced-merchant", "fenced-merchant~shared-id", long.MaxValue, CancellationToken.None));
        Assert.Null((await store.AccountFactsAsync(["fenced-merchant~shared-id"], CancellationToken.None))[0].Owner);
    }

    [Fact]
    public async Task StandbyRegion_RefusesWrites_UntilItsEpochIsMirrored_AndAgainAfterDemotion()
    {
        var prefix = $"/functional-region-{Guid.NewGuid():N}/";
        await using var api = await system.CreateRegionalApiAsync(prefix);
        var client = api.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Bearer", await new MerchantStore(system.Etcd, prefix + "api/").IssueApiKeyAsync("regional-merchant", CancellationToken.None));
        var mirror = new RegionEpochMirror(system.Etcd, prefix);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/readyz")).StatusCode);
        // The kubelet's readiness (the chart) does not follow the region: a standby's pods were never ready, and every
        // rollout and drain there stalled. It asks only that the replica can answer (its keys loaded).
        var serving = Stopwatch.StartNew();
        while ((await client.GetAsync("/servingz")).StatusCode != HttpStatusCode.OK)
        {
            Assert.True(serving.Elapsed < ViewBound, "/servingz did not answer 200 in the standby region");
            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }
        var refused = await client.PostAsync("/v1/accounts", Json("""{"accountId":"standby-1","currency":"EUR"}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Equal("https://daprpayments.dev/problems/region-not-writable", (await refused.JsonAsync()).GetProperty("type").GetString());
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/accounts/standby-1")).StatusCode); // nothing written
        // The operator's writes too (shipped from the active region only, a revocation made here never reached the
        // region serving the key) — after the operator's token is checked; reads are served.
        var admin = api.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiSystemFixture.AdminToken);
        var adminRefused = await admin.PostAsync("/admin/v1/merchants", Json("""{"merchantId":"standby-merchant"}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, adminRefused.StatusCode);
        Assert.Equal("https://daprpayments.dev/problems/region-not-writable", (await adminRefused.JsonAsync()).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/admin/v1/merchants/standby-merchant")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.CreateClient().PostAsync("/admin/v1/merchants", Json("""{"merchantId":"x"}"""))).StatusCode);

        Assert.True(await mirror.HoldAsync(1, TimeSpan.FromSeconds(30), CancellationToken.None)); // promoted
        await WaitForReadyzAsync(client, HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsync("/v1/accounts", Json("""{"accountId":"active-1","currency":"EUR"}"""))).StatusCode);

        await mirror.ReleaseAsync(CancellationToken.None); // demoted
        await WaitForReadyzAsync(client, HttpStatusCode.ServiceUnavailable);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.PostAsync("/v1/accounts", Json("""{"accountId":"demoted-1","currency":"EUR"}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/accounts/active-1")).StatusCode); // reads still served
    }

    /// <summary>A region handed over by a planned switchover (every upgrade) still delivers the events it raised while
    /// active and owes: its dispatcher stopped with the demotion, and a receiver that was down then never got them — the
    /// other region has neither its outbox nor its owed deliveries. Nothing else writes to a passive region's outbox.</summary>
    [Fact]
    public async Task ARegionHandedOver_StillDeliversTheEventsItOwes()
    {
        var prefix = $"/functional-region-{Guid.NewGuid():N}/";
        await using var api = await system.CreateRegionalApiAsync(prefix);
        await using var receiver = await WebhookReceiver.StartAsync();
        var up = 0;
        receiver.Behave = (_, _) => Task.FromResult((Volatile.Read(ref up) == 1 ? 200 : 503, TimeSpan.Zero));
        var client = api.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Bearer", await new MerchantStore(system.Etcd, prefix + "api/").IssueApiKeyAsync("owing-merchant", CancellationToken.None));
        var mirror = new RegionEpochMirror(system.Etcd, prefix);
        Assert.True(await mirror.HoldAsync(1, TimeSpan.FromSeconds(30), CancellationToken.None)); // active
        await WaitForReadyzAsync(client, HttpStatusCode.OK);
        await WebhookDeliveryTests.RegisterAsync(client, receiver.Url);

        // A payment finishing here, as the saga records it: the record, its event and the outbox marker at once.
        var records = new Payments.Orchestrator.Client.Records.PaymentRecordStore(system.Etcd, prefix + "payments/") { OutboxPrefix = prefix + "webhooks/outbox/" };
        var order = new Payments.Orchestrator.Client.Models.PaymentOrder($"pay_owed_{Guid.NewGuid():N}"[..24], "owing-merchant", "debtor", "creditor", 100, "EUR", null);
        await records.CreateAsync(Payments.Orchestrator.Client.Records.PaymentRecord.Accepted(order, DateTimeOffset.UtcNow), CancellationToken.None);
        await records.RecordOutcomeAsync(order.PaymentId, Payments.Orchestrator.Client.Models.PaymentOutcome.Completed(), DateTimeOffset.UtcNow, CancellationToken.None);
        var eventId = Payments.Orchestrator.Client.Records.PaymentEvents.IdFor(order.PaymentId, Payments.Orchestrator.Client.Records.PaymentEvents.Completed);
        await WebhookDeliveryTests.PollUntilAsync(() => receiver.Received.Any(delivery => delivery.EventId == eventId), () => "no attempt yet");

        await mirror.BeginHandOverAsync(1, DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30), CancellationToken.None); // switched over, the delivery still owed
        await WaitForReadyzAsync(client, HttpStatusCode.ServiceUnavailable);
        Volatile.Write(ref up, 1); // the receiver is back
        await WebhookDeliveryTests.PollUntilAsync(() => { lock (receiver.Acknowledged) { return receiver.Acknowledged.Contains(eventId); } },
            () => $"{eventId} not delivered by the demoted region ({receiver.Received.Count} attempts)");
    }

    /// <summary>What decides whether a passive region delivers: its last epoch ended by a planned switchover (all it
    /// wrote was shipped first), not by a loss (what it wrote last may never have reached the region that took over,
    /// which may have decided those payments otherwise), nor an abandoned switchover.</summary>
    [Fact]
    public async Task OnlyARegionWhoseLastEpochWasHandedOver_CountsAsHandedOver()
    {
        var mirror = new RegionEpochMirror(system.Etcd, $"/functional-region-{Guid.NewGuid():N}/");
        var hold = TimeSpan.FromSeconds(30);
        Assert.False(await mirror.LastEpochHandedOverAsync(CancellationToken.None)); // never active
        Assert.True(await mirror.HoldAsync(1, hold, CancellationToken.None));
        Assert.False(await mirror.LastEpochHandedOverAsync(CancellationToken.None)); // active
        var handOver = await mirror.BeginHandOverAsync(1, DateTimeOffset.UtcNow + hold, CancellationToken.None);
        Assert.True(await mirror.LastEpochHandedOverAsync(CancellationToken.None)); // switched over
        await mirror.EndHandOverAsync(handOver, CancellationToken.None);
        Assert.False(await mirror.LastEpochHandedOverAsync(CancellationToken.None)); // the switchover abandoned

        Assert.True(await mirror.HoldAsync(2, hold, CancellationToken.None));
        await mirror.BeginHandOverAsync(2, DateTimeOffset.UtcNow + hold, CancellationToken.None);
        Assert.True(await mirror.HoldAsync(3, hold, CancellationToken.None)); // active again, later
        await mirror.ReleaseAsync(CancellationToken.None); // then lost: the marker of epoch 2 does not cover epoch 3
        Assert.False(await mirror.LastEpochHandedOverAsync(CancellationToken.None));
    }

    /// <summary>Review finding: a region that was lost kept its webhook outbox and owed deliveries, not sent while
    /// passive, and sent them all when it was made writable again (a fail-back): events of changes that may never have
    /// reached the region that took over, which may have decided those payments otherwise. They go when it takes an
    /// epoch after another region held one; a region that lapsed and took the record back (no other epoch between),
    /// or whose last epoch was handed over, keeps them: they are its own, or were shipped first.</summary>
    [Fact]
    public async Task ALostRegion_TakingAnEpochAfterAnotherRegionHeldOne_DropsItsWebhookWork_AndOnlyThen()
    {
        var prefix = $"/functional-region-{Guid.NewGuid():N}/";
        var mirror = new RegionEpochMirror(system.Etcd, prefix);
        var hold = TimeSpan.FromSeconds(30);
        var pending = new[] { "webhooks/outbox/1764000000000/pay_1/completed", "webhooks/outbox/1764000000001/pay_2/failed", "webhooks/due/1764000000500/we_1/evt_1" };
        var kept = new[] { "webhooks/endpoints/m/we_1", "payments/pay_1" }; // shipped families: not the region's work in progress
        async Task PutAllAsync()
        {
            foreach (var key in pending.Concat(kept))
            {
                await system.Etcd.Kv.PutAsync(new Etcdserverpb.PutRequest { Key = EtcdBytes.Key(prefix + key), Value = EtcdBytes.Key("{}") });
            }
        }

        async Task<string[]> RemainingAsync() =>
            [.. (await system.Etcd.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = EtcdBytes.Key(prefix + "webhooks/"), RangeEnd = EtcdBytes.PrefixEnd(prefix + "webhooks/"), KeysOnly = true }))
                .Kvs.Select(kv => kv.Key.ToStringUtf8()[prefix.Length..])];

        Assert.True(await mirror.HoldAsync(1, hold, CancellationToken.None));
        await PutAllAsync();
        await mirror.ReleaseAsync(CancellationToken.None); // lapsed
        Assert.True(await mirror.HoldAsync(2, hold, CancellationToken.None)); // took the record back: nobody between
        Assert.Equal((0L, 4), (mirror.LastDropped, (await RemainingAsync()).Length));

        await mirror.BeginHandOverAsync(2, DateTimeOffset.UtcNow + hold, CancellationToken.None); // switched over
        Assert.True(await mirror.HoldAsync(4, hold, CancellationToken.None)); // and back: everything was shipped first
        Assert.Equal((0L, 4), (mirror.LastDropped, (await RemainingAsync()).Length));

        await mirror.ReleaseAsync(CancellationToken.None); // lost; the other region held epoch 5
        Assert.True(await mirror.HoldAsync(6, hold, CancellationToken.None)); // fail-back
        Assert.Equal(3L, mirror.LastDropped);
        Assert.Equal(["webhooks/endpoints/m/we_1"], await RemainingAsync());
        Assert.NotNull((await system.Etcd.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = EtcdBytes.Key(prefix + "payments/pay_1") })).Kvs.SingleOrDefault());
        Assert.True(await mirror.HoldAsync(6, hold, CancellationToken.None)); // a renewal drops nothing
        Assert.Equal(0L, mirror.LastDropped);
    }

    private static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    /// <summary>A region of its own prefix holding epoch 2, and a watcher that has seen it (writable).</summary>
    private async Task<(string Prefix, RegionEpochMirror Mirror, RegionEpochWatcher Watcher)> RegionHoldingEpochTwoAsync()
    {
        var prefix = $"/functional-region-{Guid.NewGuid():N}/";
        var mirror = new RegionEpochMirror(system.Etcd, prefix);
        Assert.True(await mirror.HoldAsync(2, TimeSpan.FromSeconds(30), CancellationToken.None));
        var watcher = new RegionEpochWatcher(system.Etcd, prefix, TimeProvider.System);
        await watcher.RefreshAsync(CancellationToken.None);
        Assert.True(watcher.IsWritable);
        return (prefix, mirror, watcher);
    }

    /// <summary>The API's view of the mirror is polled (every 500 ms): wait for it, bounded.</summary>
    private static async Task WaitForReadyzAsync(HttpClient client, HttpStatusCode expected)
    {
        var waited = Stopwatch.StartNew();
        while ((await client.GetAsync("/readyz")).StatusCode != expected)
        {
            Assert.True(waited.Elapsed < ViewBound, $"/readyz did not become {expected} within {ViewBound}.");
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
    }
}
