using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Payments.Api.Webhooks;
using Payments.Domain;
using Payments.Etcd;
using Payments.Merchants;
using Payments.Webhooks;

namespace Payments.Api.FunctionalTests;

/// <summary>Managing webhook endpoints as merchants and attackers would: scopes, isolation between merchants, the
/// bound on endpoints, the secret shown once, and clear refusals of bad input.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class WebhookEndpointApiTests(ApiSystemFixture system)
{
    /// <summary>The finding (a review's): each deletion leaves a removal record for 8 days and the bound of 16 counts only
    /// live endpoints, so one key creating and deleting endpoints in a loop wrote ~2.8 GB of records a day until etcd's
    /// quota stopped every merchant's payments. A merchant creates at most 100 endpoints a UTC day: past that 429 with
    /// Retry-After to the next day, nothing created; the next day it may again, and the old day's count is trimmed.</summary>
    [Fact]
    public async Task CreatingAndDeletingInALoop_StopsAtTheDaysBudget_ThenTheNextDayAgain()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 23, 0, 0, TimeSpan.Zero));
        var prefix = $"/functional-budget-{Guid.NewGuid():N}/webhooks/";
        var store = new WebhookEndpointStore(system.Etcd, prefix, clock);
        const string Merchant = "looping-merchant";
        for (var index = 0; index < WebhookEndpointStore.MaxCreationsPerDay; index++)
        {
            var (endpoint, created) = (await store.CreateAsync(Merchant, "https://example.com/hooks", [], null, CancellationToken.None))!.Value;
            Assert.True(created);
            Assert.True(await store.DeleteAsync(Merchant, endpoint.Id, CancellationToken.None));
        }

        var spent = await Assert.ThrowsAsync<WebhookEndpointCreationsSpentException>(
            () => store.CreateAsync(Merchant, "https://example.com/hooks", [], null, CancellationToken.None));
        Assert.Equal(new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero), spent.NextDay);
        Assert.Empty(await store.ListAsync(Merchant, CancellationToken.None));
        Assert.NotNull(await store.CreateAsync("another-merchant", "https://example.com/hooks", [], null, CancellationToken.None)); // its own budget

        clock.Advance(TimeSpan.FromHours(1)); // the next UTC day
        Assert.True((await store.CreateAsync(Merchant, "https://example.com/hooks", [], null, CancellationToken.None))!.Value.Created);
        clock.Advance(TimeSpan.FromDays(2));
        await store.TrimRemovalsAsync(CancellationToken.None);
        Assert.Equal(0, (await system.Etcd.Client.GetRangeAsync(prefix + "created/")).Count);

        // Through the API: the 101st create of the day is 429 with Retry-After, and creates nothing. The replica's clock
        // runs at real speed from noon, so no UTC day ends during the loop whenever the test runs.
        var key = await system.Store.IssueApiKeyAsync($"merchant-{Guid.NewGuid():N}"[..20], CancellationToken.None, [.. ApiScopes.Default]);
        await using var replica = system.StartReplica(web => web.ConfigureServices(services =>
            services.AddSingleton<TimeProvider>(new NoonClock(DateTimeOffset.UtcNow))));
        using var client = replica.CreateClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        for (var index = 0; index < WebhookEndpointStore.MaxCreationsPerDay; index++)
        {
            using var created = await client.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/loop\"}", null);
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            using var deleted = await client.DeleteAsync("/v1/webhook-endpoints/" + (await created.JsonAsync()).GetProperty("id").GetString());
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var refused = await client.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/loop\"}", null);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(ProblemTypes.RateLimited, (await refused.JsonAsync()).GetProperty("type").GetString());
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal(0, (await (await client.GetAsync("/v1/webhook-endpoints")).JsonAsync()).GetProperty("data").GetArrayLength());
    }

    /// <summary>A black-box probe: eight clients of one merchant creating and deleting endpoints at once got 503s, each
    /// create's compare over the merchant's range lost to the others' changes eight rounds running. One replica's
    /// changes of a merchant take turns: none is refused, and every endpoint is counted once.</summary>
    [Fact]
    public async Task ConcurrentCreatesAndDeletes_OfOneMerchant_OnOneReplica_AreNeverRefused()
    {
        var prefix = $"/functional-turns-{Guid.NewGuid():N}/webhooks/";
        var store = new WebhookEndpointStore(system.Etcd, prefix, TimeProvider.System);
        const string Merchant = "busy-merchant";
        const int Clients = 8, Rounds = 6;

        await Task.WhenAll(Enumerable.Range(0, Clients).Select(async client =>
        {
            for (var round = 0; round < Rounds; round++)
            {
                var (endpoint, created) = (await store.CreateAsync(Merchant, $"https://hooks{client}.example.com/r{round}", [], null, CancellationToken.None))!.Value;
                Assert.True(created);
                Assert.True(await store.DeleteAsync(Merchant, endpoint.Id, CancellationToken.None));
            }
        }));

        Assert.Empty(await store.ListAsync(Merchant, CancellationToken.None));
        var counted = (await system.Etcd.Client.GetRangeAsync(prefix + "created/")).Kvs.Sum(kv => long.Parse(kv.Value.ToStringUtf8(), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(Clients * Rounds, counted);
    }

    /// <summary>Review finding: a merchant id from before ids were checked may hold a '/', and the read of merchant
    /// <c>acme</c>'s endpoints (a prefix) took <c>acme/eu</c>'s too: listed to acme, and sent acme's events signed with
    /// acme/eu's secret. Its markers, split on '/', were deleted as unreadable: acme/eu was sent nothing.</summary>
    [Fact]
    public async Task AMerchantsEndpoints_AreNotThoseOfALegacyIdItBegins_AndThatOnesMarkersRead()
    {
        var prefix = $"/functional-legacy-{Guid.NewGuid():N}/";
        var store = new WebhookEndpointStore(system.Etcd, prefix + "webhooks/", TimeProvider.System);
        var (own, _) = (await store.CreateAsync("acme", "https://example.com/acme", [], null, CancellationToken.None))!.Value;
        var (legacy, _) = (await store.CreateAsync("acme/eu", "https://example.com/eu", [], null, CancellationToken.None))!.Value;

        Assert.Equal([own.Id], (await store.ListAsync("acme", CancellationToken.None)).Select(endpoint => endpoint.Id));
        Assert.Equal([own.Id], (await store.ListManyAsync(["acme"], CancellationToken.None))["acme"].Select(endpoint => endpoint.Id));
        Assert.Equal([legacy.Id], (await store.ListAsync("acme/eu", CancellationToken.None)).Select(endpoint => endpoint.Id));
        // Nor are acme/eu's counted against acme's 16 (a diff review): acme fills its own.
        for (var index = 1; index < WebhookEndpointStore.MaxEndpointsPerMerchant; index++)
        {
            Assert.True((await store.CreateAsync("acme", "https://example.com/acme", [], null, CancellationToken.None))!.Value.Created);
        }

        Assert.Null(await store.CreateAsync("acme", "https://example.com/acme", [], null, CancellationToken.None));
        Assert.Equal(WebhookEndpointStore.MaxEndpointsPerMerchant, (await store.ListAsync("acme", CancellationToken.None)).Count);

        var deliveries = new WebhookDeliveries(system.Etcd, prefix + "webhooks/", prefix + "webhooks/outbox/", prefix + "payments/~events/");
        var logKey = prefix + "payments/~events/acme/eu/1764000000000/evt_000000000000000000000001";
        var marker = deliveries.Marker(prefix + "webhooks/outbox/1764000000000/acme/eu/evt_000000000000000000000001",
            Google.Protobuf.ByteString.CopyFromUtf8("payment.completed " + logKey));
        Assert.Equal(("acme/eu", "evt_000000000000000000000001", logKey), (marker.MerchantId, marker.EventId, marker.LogKey));
        Assert.Throws<InvalidDataException>(() => deliveries.Marker(prefix + "webhooks/outbox/1764000000000/acme/evt_000000000000000000000001",
            Google.Protobuf.ByteString.CopyFromUtf8("payment.completed " + logKey))); // acme's marker naming acme/eu's event
    }

    /// <summary>Shipping sends what changed since its checkpoint, so endpoints made before they were shipped reached the
    /// other region only when next rotated: each is now written once more, unchanged, page after page, and a marker of
    /// the region's own ends that for good.</summary>
    [Fact]
    public async Task EndpointsMadeBeforeTheyWereShipped_AreWrittenOnceMore_ThenNeverAgain()
    {
        var store = new WebhookEndpointStore(system.Etcd, $"/functional-ship-{Guid.NewGuid():N}/webhooks/", TimeProvider.System);
        var keys = new List<string>();
        var merchants = Enumerable.Range(0, (WebhookEndpointStore.ShipExistingPageSize / 4) + 1).Select(index => $"old-merchant-{index:D3}").ToArray();
        foreach (var merchant in merchants) // more than a page: four endpoints each
        {
            for (var index = 0; index < 4; index++)
            {
                var (endpoint, _) = (await store.CreateAsync(merchant, "https://example.com/hooks", [], null, CancellationToken.None))!.Value;
                keys.Add(store.KeyOf(merchant, endpoint.Id));
            }
        }

        var before = await Task.WhenAll(keys.Select(async key => (await system.Etcd.Client.GetAsync(key)).Kvs.Single()));
        Assert.Equal(keys.Count, await store.ShipExistingAsync(CancellationToken.None));
        var after = await Task.WhenAll(keys.Select(async key => (await system.Etcd.Client.GetAsync(key)).Kvs.Single()));
        Assert.All(before.Zip(after), pair =>
        {
            Assert.True(pair.Second.ModRevision > pair.First.ModRevision, "not written again: it would not ship");
            Assert.Equal(pair.First.Value, pair.Second.Value);
        });

        Assert.Equal(0, await store.ShipExistingAsync(CancellationToken.None));
        Assert.Equal(after.Select(kv => kv.ModRevision), await Task.WhenAll(keys.Select(async key => (await system.Etcd.Client.GetAsync(key)).Kvs.Single().ModRevision)));
        Assert.Equal(4, (await store.ListAsync(merchants[0], CancellationToken.None)).Count);
    }

    [Fact]
    public async Task AnEndpoint_IsTheOwnersAlone_ItsSecretShownOnce_AndTheCountBounded()
    {
        using var owner = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        using var other = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        var (id, secret) = await WebhookDeliveryTests.RegisterAsync(owner, "https://hooks.example.com/payments");
        Assert.StartsWith(WebhookSignature.SecretPrefix, secret);

        using var listed = await owner.GetAsync("/v1/webhook-endpoints");
        var list = await listed.JsonAsync();
        Assert.Equal(id, list.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.DoesNotContain(secret, list.ToString());
        Assert.DoesNotContain(secret, (await (await owner.GetAsync($"/v1/webhook-endpoints/{id}")).JsonAsync()).ToString());

        // The body is optional: an empty one (Content-Type sent, nothing in it) rotates with the default overlap.
        using (var empty = new HttpRequestMessage(HttpMethod.Post, $"/v1/webhook-endpoints/{id}/rotate-secret") { Content = new StringContent("", System.Text.Encoding.UTF8, "application/json") })
        {
            using var rotated = await owner.SendAsync(empty);
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        // A chunked body without a Content-Type (what .NET's StreamContent sends) is a body: refused for its type, not
        // taken for none — read as none, its overlapSeconds 0 was ignored and the old secret kept signing for a day.
        var rotatedAt = (await (await owner.GetAsync($"/v1/webhook-endpoints/{id}")).JsonAsync()).GetProperty("secretCreatedAt").GetString();
        using (var untyped = new HttpRequestMessage(HttpMethod.Post, $"/v1/webhook-endpoints/{id}/rotate-secret") { Content = new ByteArrayContent("{\"overlapSeconds\":0}"u8.ToArray()) })
        {
            untyped.Headers.TransferEncodingChunked = true;
            using var untypedAnswer = await owner.SendAsync(untyped);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, untypedAnswer.StatusCode);
            Assert.EndsWith("/unsupported-media-type", (await untypedAnswer.JsonAsync()).GetProperty("type").GetString());
        }

        Assert.Equal(rotatedAt, (await (await owner.GetAsync($"/v1/webhook-endpoints/{id}")).JsonAsync()).GetProperty("secretCreatedAt").GetString());

        foreach (var response in new[]
                 {
                     await other.GetAsync($"/v1/webhook-endpoints/{id}"),
                     await other.DeleteAsync($"/v1/webhook-endpoints/{id}"),
                     await other.SendJsonAsync($"/v1/webhook-endpoints/{id}/rotate-secret", "{}", null),
                 })
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.EndsWith("/webhook-endpoint-not-found", (await response.JsonAsync()).GetProperty("type").GetString());
        }

        for (var more = 1; more < WebhookEndpointStore.MaxEndpointsPerMerchant; more++)
        {
            await WebhookDeliveryTests.RegisterAsync(owner, $"https://hooks.example.com/{more}");
        }

        using var refused = await owner.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/one-too-many\"}", null);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.EndsWith("/webhook-endpoint-limit-reached", (await refused.JsonAsync()).GetProperty("type").GetString());
    }

    /// <summary>Found by a probe: a DELETE's body was not read, so one the API refuses everywhere else (text, a coding)
    /// deleted the endpoint. It is read as any other: refused (415, 400 for a field), nothing deleted; none, or {}, is fine.</summary>
    [Theory]
    [InlineData("text/plain", null, "not json", HttpStatusCode.UnsupportedMediaType)]
    [InlineData("application/json", "gzip", "{}", HttpStatusCode.UnsupportedMediaType)]
    [InlineData("application/json", null, "{\"force\":true}", HttpStatusCode.BadRequest)]
    [InlineData("application/json", null, "{}", HttpStatusCode.NoContent)]
    [InlineData(null, null, null, HttpStatusCode.NoContent)]
    public async Task ADeletionsBody_IsReadAsAnyOther_AndARefusedOneDeletesNothing(string? type, string? coding, string? body, HttpStatusCode expected)
    {
        using var owner = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        var (id, _) = await WebhookDeliveryTests.RegisterAsync(owner, "https://hooks.example.com/deleted-or-not");
        using var delete = new HttpRequestMessage(HttpMethod.Delete, $"/v1/webhook-endpoints/{id}");
        if (body is not null)
        {
            delete.Content = new StringContent(body, System.Text.Encoding.UTF8);
            delete.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(type!);
            if (coding is not null)
            {
                delete.Content.Headers.ContentEncoding.Add(coding);
            }
        }

        using var answer = await owner.SendAsync(delete);

        Assert.Equal(expected, answer.StatusCode);
        using var after = await owner.GetAsync($"/v1/webhook-endpoints/{id}");
        Assert.Equal(expected == HttpStatusCode.NoContent ? HttpStatusCode.NotFound : HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task ConcurrentRegistrations_NeverPassTheBound_AndEveryEndpointCreatedIsListed()
    {
        // The count and the create were two steps: a burst of creates all counted fewer than 16 and all succeeded, and
        // the endpoints past what a list reads were never listed (nor sent anything).
        using var client = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        const int Burst = 3 * WebhookEndpointStore.MaxEndpointsPerMerchant;
        var answers = await Task.WhenAll(Enumerable.Range(0, Burst).Select(async index =>
        {
            using var response = await client.SendJsonAsync("/v1/webhook-endpoints", $"{{\"url\":\"https://hooks.example.com/burst-{index}\"}}", null);
            return response.StatusCode;
        }));

        var created = answers.Count(status => status == HttpStatusCode.Created);
        Assert.All(answers, status => Assert.Contains(status, new[] { HttpStatusCode.Created, HttpStatusCode.Conflict, HttpStatusCode.ServiceUnavailable }));
        Assert.InRange(created, 1, WebhookEndpointStore.MaxEndpointsPerMerchant);
        Assert.Equal(created, (await (await client.GetAsync("/v1/webhook-endpoints")).JsonAsync()).GetProperty("data").GetArrayLength());

        // Filled one by one to the bound, and not one past it.
        for (var more = created; more < WebhookEndpointStore.MaxEndpointsPerMerchant; more++)
        {
            await WebhookDeliveryTests.RegisterAsync(client, $"https://hooks.example.com/fill-{more}");
        }

        using var refused = await client.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/one-too-many\"}", null);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal(WebhookEndpointStore.MaxEndpointsPerMerchant, (await (await client.GetAsync("/v1/webhook-endpoints")).JsonAsync()).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task ARetriedRegistration_WithAnIdempotencyKey_GetsTheSameEndpoint_NotASecondOne()
    {
        using var client = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        const string Body = "{\"url\":\"https://hooks.example.com/retried\"}";
        var key = Guid.NewGuid().ToString();
        using var first = await client.SendJsonAsync("/v1/webhook-endpoints", Body, key);
        using var again = await client.SendJsonAsync("/v1/webhook-endpoints", Body, key);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await again.Content.ReadAsStringAsync());
        var location = "/v1/webhook-endpoints/" + (await first.JsonAsync()).GetProperty("id").GetString(); // a probe: 201 named no resource
        Assert.Equal((location, location), (first.Headers.Location?.OriginalString, again.Headers.Location?.OriginalString));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(location)).StatusCode);
        Assert.Equal(1, (await (await client.GetAsync("/v1/webhook-endpoints")).JsonAsync()).GetProperty("data").GetArrayLength());
        using var other = await client.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/other\"}", key);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
    }

    /// <summary>A deposit's or payment's Idempotency-Key is not compared with an endpoint create's (docs/api.md): the
    /// create read the key's record as an earlier create's and answered 422 idempotency-key-reuse. A create from before
    /// endpoints took their key's id, its answer stored under the key, still refuses another body.</summary>
    [Fact]
    public async Task ADepositsKey_IsFreeForAnEndpoint_WhileAnEarlierCreatesStoredAnswerStillRefusesAnotherBody()
    {
        var merchant = $"hooks-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant, [.. ApiScopes.Default]);
        var account = $"acct-{Guid.NewGuid():N}"[..20];
        await client.OpenAccountAsync(account);
        var key = Guid.NewGuid().ToString();
        using var deposit = await client.SendJsonAsync($"/v1/accounts/{account}/deposits", "{\"amountMinor\":100,\"currency\":\"USD\"}", key);
        Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        using var created = await client.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/deposit-key\"}", key);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        // An earlier create's record, as the API wrote it before the upgrade: another body under its key is 422.
        var keys = new IdempotencyStore(system.Etcd, ApiSystemFixture.KeyPrefix + "idempotency/", TimeProvider.System);
        var oldKey = IdempotencyKey.Parse(Guid.NewGuid().ToString());
        var earlierBody = Encoding.UTF8.GetBytes("{\"url\":\"https://hooks.example.com/earlier\"}");
        var claim = Assert.IsType<IdempotencyBegin.Started>(await keys.BeginAsync(merchant, oldKey,
            IdempotencyStore.Fingerprint("POST", "/v1/webhook-endpoints", Convert.ToBase64String(earlierBody)), CancellationToken.None)).Claim;
        Assert.True(await keys.CompleteAsync(claim, 201, "{\"id\":\"we_0123456789abcdef01234567\",\"url\":\"https://hooks.example.com/earlier\"}", "application/json", CancellationToken.None));
        using var other = await client.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/other\"}", oldKey.Value);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        Assert.Equal(1, (await (await client.GetAsync("/v1/webhook-endpoints")).JsonAsync()).GetProperty("data").GetArrayLength());
    }

    /// <summary>The endpoint's id is its Idempotency-Key's: a retry finds it however the first attempt ended. Before,
    /// the key's claim decided, and a claim released by a failure after the write (or lapsed after a crash) let the
    /// retry create a second endpoint, sent every event too. The key's record kept the 201 with the secret for 24 h
    /// (a second copy of it in etcd), and kept a 400 too, so the corrected body was refused 422.</summary>
    [Fact]
    public async Task AKeyNamesItsEndpoint_WhateverHappenedToTheFirstAttempt_AndNoSecretIsKeptWithTheKey()
    {
        var merchant = $"hooks-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant, [.. ApiScopes.Default]);
        var key = Guid.NewGuid().ToString();
        using var invalid = await client.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"ftp://hooks.example.com/x\"}", key);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);

        const string Body = "{\"url\":\"https://hooks.example.com/keyed\",\"events\":[\"payment.completed\"]}";
        using var first = await client.SendJsonAsync("/v1/webhook-endpoints", Body, key);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var created = await first.JsonAsync();
        var secret = created.GetProperty("secret").GetString()!;

        // Nothing under the key holds the secret (there was a second copy of it there, for 24 h).
        var records = await system.Etcd.Client.GetRangeAsync($"{ApiSystemFixture.KeyPrefix}idempotency/{Convert.ToHexString(Encoding.UTF8.GetBytes(merchant))}/");
        Assert.DoesNotContain(records.Kvs, kv => kv.Value.ToStringUtf8().Contains(secret, StringComparison.Ordinal));

        using var retried = await client.SendJsonAsync("/v1/webhook-endpoints", Body, key);
        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        Assert.Equal(created.GetProperty("id").GetString(), (await retried.JsonAsync()).GetProperty("id").GetString());
        Assert.Equal(secret, (await retried.JsonAsync()).GetProperty("secret").GetString());
        Assert.Equal(1, (await (await client.GetAsync("/v1/webhook-endpoints")).JsonAsync()).GetProperty("data").GetArrayLength());

        // Once the secret was rotated, a retry of the create shows the endpoint without it: the current secret is a
        // rotation's answer alone (an Idempotency-Key is no credential).
        using var rotated = await client.SendJsonAsync($"/v1/webhook-endpoints/{created.GetProperty("id").GetString()}/rotate-secret", "{}", null);
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        using var afterRotation = await client.SendJsonAsync("/v1/webhook-endpoints", Body, key);
        Assert.Equal(HttpStatusCode.Created, afterRotation.StatusCode);
        Assert.False((await afterRotation.JsonAsync()).TryGetProperty("secret", out _));
    }

    /// <summary>A rotation retried with its Idempotency-Key (its answer was lost) answers again; before, the retry
    /// rotated once more, keeping only the lost answer's secret beside the new one and ending at once the secret the
    /// receiver still verified with.</summary>
    [Fact]
    public async Task ARotationRetriedWithItsKey_DoesNotRotateAgain_AndTheSecretInUseKeepsItsOverlap()
    {
        var merchant = $"hooks-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant, [.. ApiScopes.Default]);
        var (id, inUse) = await WebhookDeliveryTests.RegisterAsync(client, "https://hooks.example.com/rotated");
        var key = Guid.NewGuid().ToString();
        using var rotated = await client.SendJsonAsync($"/v1/webhook-endpoints/{id}/rotate-secret", "{\"overlapSeconds\":86400}", key);
        using var retried = await client.SendJsonAsync($"/v1/webhook-endpoints/{id}/rotate-secret", "{\"overlapSeconds\":86400}", key);

        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        var newSecret = (await rotated.JsonAsync()).GetProperty("secret").GetString();
        Assert.NotEqual(inUse, newSecret);
        Assert.Equal(newSecret, (await retried.JsonAsync()).GetProperty("secret").GetString());
        // Both still sign: the one in use through its overlap, the new one from now.
        var stored = await system.ApiServices.GetRequiredService<WebhookEndpointStore>().GetAsync(merchant, id, CancellationToken.None);
        Assert.Equal([newSecret!, inUse], stored!.SigningSecrets(DateTimeOffset.UtcNow));

        // The finding: the same key with another overlap (a retry with 0 after a leak) replayed the rotation that kept
        // the old secret signing for a day, answered 200. It is another request: 422, and nothing changes. No body is
        // the default overlap: the same request as the first.
        using var leaked = await client.SendJsonAsync($"/v1/webhook-endpoints/{id}/rotate-secret", "{\"overlapSeconds\":0}", key);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, leaked.StatusCode);
        Assert.Equal(Payments.Domain.ProblemTypes.IdempotencyKeyReuse, (await leaked.JsonAsync()).GetProperty("type").GetString());
        var afterLeak = await system.ApiServices.GetRequiredService<WebhookEndpointStore>().GetAsync(merchant, id, CancellationToken.None);
        Assert.Equal([newSecret!, inUse], afterLeak!.SigningSecrets(DateTimeOffset.UtcNow));
        using var noBody = new HttpRequestMessage(HttpMethod.Post, $"/v1/webhook-endpoints/{id}/rotate-secret");
        noBody.Headers.Add("Idempotency-Key", key);
        using var replayed = await client.SendAsync(noBody);
        Assert.Equal(HttpStatusCode.OK, replayed.StatusCode);
        Assert.Equal(newSecret, (await replayed.JsonAsync()).GetProperty("secret").GetString());
    }

    /// <summary>Found by a probe: rotations under keys Q1 then Q2, then a retry of Q1 rotated again (only the last
    /// rotation's key was kept), ending at once the secret Q2 had made; two clients retrying their own rotations swapped
    /// secrets back and forth. A retry of an earlier rotation is 409 and rotates nothing; the last one still replays.</summary>
    [Fact]
    public async Task ARetryOfAnEarlierRotation_AfterAnotherRotation_Is409_AndRotatesNothing()
    {
        var merchant = $"hooks-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant, [.. ApiScopes.Default]);
        var (id, _) = await WebhookDeliveryTests.RegisterAsync(client, "https://hooks.example.com/swapped");
        var (first, second) = (Guid.NewGuid().ToString(), Guid.NewGuid().ToString());
        async Task<HttpResponseMessage> RotateAsync(string? key, int overlap = 3600) =>
            await client.SendJsonAsync($"/v1/webhook-endpoints/{id}/rotate-secret", $"{{\"overlapSeconds\":{overlap}}}", key);
        using var byFirst = await RotateAsync(first);
        using var unkeyed = await RotateAsync(null); // a rotation without a key between counts as another too
        using var bySecond = await RotateAsync(second);
        var secret = (await bySecond.JsonAsync()).GetProperty("secret").GetString()!;
        var before = (await system.ApiServices.GetRequiredService<WebhookEndpointStore>().GetAsync(merchant, id, CancellationToken.None))!.SigningSecrets(DateTimeOffset.UtcNow);

        using var retriedFirst = await RotateAsync(first);
        Assert.Equal(HttpStatusCode.Conflict, retriedFirst.StatusCode);
        Assert.Equal(Payments.Domain.ProblemTypes.RotationSuperseded, (await retriedFirst.JsonAsync()).GetProperty("type").GetString());
        // Its key with another overlap is no retry but another request (docs/api.md: 422), a probe found it 409.
        using var reusedFirst = await RotateAsync(first, overlap: 60);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reusedFirst.StatusCode);
        Assert.Equal(Payments.Domain.ProblemTypes.IdempotencyKeyReuse, (await reusedFirst.JsonAsync()).GetProperty("type").GetString());
        // And the OpenAPI document says so (a review: it did not, so a generated client had no type for this answer).
        using var document = await system.AnonymousClient().GetAsync("/openapi/v1.json");
        Assert.True((await document.JsonAsync()).GetProperty("paths").GetProperty("/v1/webhook-endpoints/{endpointId}/rotate-secret").GetProperty("post")
            .GetProperty("responses").TryGetProperty("409", out _), "409 is not documented for POST /v1/webhook-endpoints/{endpointId}/rotate-secret");
        using var retriedSecond = await RotateAsync(second);
        Assert.Equal(HttpStatusCode.OK, retriedSecond.StatusCode);
        Assert.Equal(secret, (await retriedSecond.JsonAsync()).GetProperty("secret").GetString());
        var after = (await system.ApiServices.GetRequiredService<WebhookEndpointStore>().GetAsync(merchant, id, CancellationToken.None))!.SigningSecrets(DateTimeOffset.UtcNow);
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task AKeyWithoutTheScope_CannotManageEndpoints_AndOneWithoutPaymentsRead_CannotListEvents()
    {
        using var payer = await system.NewMerchantClientAsync(ApiScopes.PaymentsWrite, ApiScopes.PaymentsRead);
        using var refused = await payer.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/x\"}", null);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.EndsWith("/insufficient-scope", (await refused.JsonAsync()).GetProperty("type").GetString());
        using var hooksOnly = await system.NewMerchantClientAsync(ApiScopes.WebhooksManage);
        using var events = await hooksOnly.GetAsync("/v1/events");
        Assert.Equal(HttpStatusCode.Forbidden, events.StatusCode);
        // Nor point the events (payment data, what payments:read guards) at a host of its choosing.
        using var registered = await hooksOnly.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/x\"}", null);
        Assert.Equal(HttpStatusCode.Forbidden, registered.StatusCode);
        Assert.Equal(ApiScopes.PaymentsRead, (await registered.JsonAsync()).GetProperty("requiredScope").GetString());
        // Nor get a signing secret by rotating one (it could sign payment events the merchant's receiver trusts).
        var merchant = $"merchant-{Guid.NewGuid():N}"[..20];
        using var owner = await system.ClientForAsync(merchant, [.. ApiScopes.Default]);
        using var created = await owner.SendJsonAsync("/v1/webhook-endpoints", "{\"url\":\"https://hooks.example.com/y\"}", null);
        var endpointId = (await created.JsonAsync()).GetProperty("id").GetString();
        using var hooksOnlyOfOwner = await system.ClientForAsync(merchant, ApiScopes.WebhooksManage);
        using var rotated = await hooksOnlyOfOwner.SendJsonAsync($"/v1/webhook-endpoints/{endpointId}/rotate-secret", "{}", null);
        Assert.Equal(HttpStatusCode.Forbidden, rotated.StatusCode);
        Assert.Equal(ApiScopes.PaymentsRead, (await rotated.JsonAsync()).GetProperty("requiredScope").GetString());
        using var anonymous = system.AnonymousClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/webhook-endpoints")).StatusCode);
    }

    [Theory]
    [InlineData("{\"url\":\"ftp://hooks.example.com/x\"}", "url")]
    [InlineData("{\"url\":\"not a url\"}", "url")]
    [InlineData("{\"url\":\"https://user:pass@hooks.example.com/x\"}", "url")]
    [InlineData("{}", "url")]
    [InlineData("{\"url\":\"https://hooks.example.com/x\",\"events\":[\"payment.refunded\"]}", "events")]
    // A black-box probe: a blank description was stored, shown as nothing in a list of endpoints.
    [InlineData("{\"url\":\"https://hooks.example.com/x\",\"description\":\"   \"}", "description")]
    [InlineData("{\"url\":\"https://hooks.example.com/x\",\"description\":\"\"}", "description")]
    [InlineData("{\"url\":\"https://hooks.example.com/x\",\"description\":\"\\uffff\"}", "description")]
    public async Task BadEndpointInput_IsRefusedWithTheFieldNamed_AndCreatesNothing(string body, string field)
    {
        using var client = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        using var response = await client.SendJsonAsync("/v1/webhook-endpoints", body, null);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty(field, out _));
        Assert.Equal(0, (await (await client.GetAsync("/v1/webhook-endpoints")).JsonAsync()).GetProperty("data").GetArrayLength());
    }

    [Theory]
    [InlineData("2026-12-04T10:00:00Z")]
    [InlineData("2026-12-04t12:00:00.123+02:00")]
    [InlineData("1999-01-01T00:00:00-05:00")]
    // The black-box probe: RFC 3339 allows any number of fraction digits (Go's RFC3339Nano sends 9) and leap seconds.
    [InlineData("2026-12-06T14:25:10.12345678+00:00")]
    [InlineData("2026-12-06T14:25:10.123456789Z")]
    [InlineData("2016-12-31T23:59:60Z")]
    public async Task EventQueries_TakeRfc3339TimesWithTheirOffset(string since)
    {
        using var client = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        using var response = await client.GetAsync("/v1/events?since=" + Uri.EscapeDataString(since));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(System.Text.Json.JsonValueKind.Array, (await response.JsonAsync()).GetProperty("data").ValueKind);
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=101", "limit")]
    [InlineData("after=../../ledger", "after")]
    [InlineData("after=9999999999999/evt_6e43b3001ae1d5b47196f5ff", "after")] // a probe: an empty last page until 2286
    [InlineData("since=yesterday", "since")]
    [InlineData("since=12/04/2026", "since")]
    [InlineData("since=2026-12-04T10:00:00", "since")] // no offset: whose 10 o'clock?
    [InlineData("since=2026-12-04T10:00:61Z", "since")]
    [InlineData("since=2026-12-04T10:00:00.Z", "since")]
    [InlineData("since=2286-11-20T17:46:40Z", "since")] // past 13-digit time keys: it listed from the first event
    [InlineData("since=2026-12-04T10:00:00Z&since=2026-12-05T10:00:00Z", "since")]
    [InlineData("type=payment.refunded", "type")]
    [InlineData("after=0000000000001/evt_000000000000000000000000&since=2026-01-01T00:00:00Z", "after")]
    // A black-box probe: Stripe's spelling was ignored and the first page came again, a consumer replaying forever.
    [InlineData("starting_after=0000000000001/evt_000000000000000000000000", "query")]
    [InlineData("cursor=x&limit=5", "query")]
    [InlineData("%E2%80%AE=1", "query")]
    public async Task BadEventQueries_AreRefusedWithTheFieldNamed(string query, string field)
    {
        using var client = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        using var response = await client.GetAsync("/v1/events?" + query);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty(field, out _));
    }

    /// <summary>60 characters: a label DNS takes, five of which make a name it does not (over 253).</summary>
    private const string Label60 = "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij";

    [Theory]
    [InlineData("https://" + Label60 + "." + Label60 + "." + Label60 + "." + Label60 + ".com/p", false, true)]
    [InlineData("https://" + Label60 + "." + Label60 + "." + Label60 + "." + Label60 + "." + Label60 + ".com/p", false, false)]
    [InlineData("https://hooks.example.com/p", false, true)]
    [InlineData("https://hooks.example.com:443/p", false, true)]
    [InlineData("https://b\u00fccher.example.com/p", false, true)] // an IDN, sent as xn--bcher-kva
    [InlineData("https://xn--bcher-kva.example.com/p", false, true)]
    [InlineData("https://hooks-1.ex-ample.com./p", false, true)]
    [InlineData("https://-a.com/p", false, false)] // found by a probe: no resolver or certificate carries these names
    [InlineData("https://a-.com/p", false, false)]
    [InlineData("https://exa_mple.com/p", false, false)]
    [InlineData("https://xn--.com/p", false, false)]
    [InlineData("https://xn--a.com/p", false, false)]
    [InlineData("https://hooks.123/p", false, false)]
    [InlineData("https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com/p", false, false)] // 64 characters
    // Deliveries leave the cluster on 443 alone (the chart's NetworkPolicy); no other service of a public host.
    [InlineData("https://hooks.example.com:8443/p", false, false)]
    [InlineData("https://hooks.example.com:25/p", false, false)]
    [InlineData("https://93.184.216.34:22/p", false, false)]
    [InlineData("http://hooks.example.com/p", false, false)]
    [InlineData("https://127.0.0.1/p", false, false)]
    [InlineData("https://10.1.2.3/p", false, false)]
    [InlineData("https://169.254.169.254/latest/meta-data", false, false)]
    [InlineData("https://[::1]/p", false, false)]
    [InlineData("https://[fd00::1]/p", false, false)]
    [InlineData("https://localhost/p", false, false)]
    [InlineData("https://payments-api.payments.svc/p", false, false)]
    [InlineData("https://payments-api.payments.svc.cluster.local./p", false, false)]
    [InlineData("https://metadata.google.internal/computeMetadata/v1", false, false)]
    [InlineData("https://payments-api/p", false, false)]
    [InlineData("https://0x7f000001/p", false, false)] // 127.0.0.1 in hex: Uri normalises it
    [InlineData("https://2130706433/p", false, false)] // and in decimal
    [InlineData("https://[::ffff:127.0.0.1]/p", false, false)]
    // IPv6 forms that embed an IPv4 address (compatible, translated, 6to4, Teredo), and digits IDNA maps to ASCII.
    [InlineData("https://[::ffff:0:a9fe:a9fe]/p", false, false)]
    [InlineData("https://[::a9fe:a9fe]/p", false, false)]
    [InlineData("https://[::10.0.0.1]/p", false, false)]
    [InlineData("https://[2002:a9fe:a9fe::1]/p", false, false)]
    [InlineData("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/p", false, false)]
    [InlineData("https://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/p", false, false)]
    // A probe: compatibility forms IDNA maps to ASCII — circled letters (example.com), parenthesised and circled digits
    // (an address) — were taken, and deliveries went to another name than the one shown. Lowercase letters of any script stay.
    [InlineData("https://\u24d4\u24e7\u24d0\u24dc\u24df\u24db\u24d4.com/p", false, false)]
    [InlineData("https://\u246f\u2468.\u2461\u2464\u2463.\u246f\u2468.\u2461\u2464\u2463/p", false, false)]
    [InlineData("https://hooks.b\u00fccher.example/p", false, true)]
    // A review: the first rule refused modifier letters and the joiners IDNA allows (ゲーム.jp, 佐々木.jp, col·legi.cat)
    // and took mathematical letters and ligatures IDNA folds to ASCII (𝐞𝐱𝐚𝐦𝐩𝐥𝐞.com, ﬁnance.com, ℓ).
    [InlineData("https://\u30b2\u30fc\u30e0.jp/p", false, true)]
    [InlineData("https://\u4f50\u3005\u6728.jp/p", false, true)]
    [InlineData("https://col\u00b7legi.cat/p", false, true)]
    [InlineData("https://\U0001d41e\U0001d431\U0001d41a\U0001d426\U0001d429\U0001d425\U0001d41e.com/p", false, false)]
    [InlineData("https://\ufb01nance.com/p", false, false)]
    [InlineData("https://hooks.\u2113.example/p", false, false)]
    [InlineData("https://[2606:4700::6810:84e5]/p", false, false)] // public, but deliveries leave over IPv4
    [InlineData("https://hooks.example.com/p\r\nX-Injected: 1", false, false)]
    [InlineData("https://hooks.example.com/a b", false, false)]
    [InlineData("https://hooks.exa\u00admple.com/p", false, false)] // a soft hyphen, dropped by IDNA
    [InlineData("https://hooks.example.com/p\u200b", false, false)]
    // Found by a black-box probe: tag characters (surrogate pairs, neither half a format character), glyphs that
    // show nothing, a variation selector, a grapheme joiner.
    [InlineData("https://hooks.example.com/hook\U000E0073\U000E0065", false, false)]
    [InlineData("https://hooks.example.com\U000E0073/hook", false, false)]
    [InlineData("https://hooks.exa\u3164mple.com/", false, false)]
    [InlineData("https://hooks.example.com/a\u034Fb", false, false)]
    [InlineData("https://hooks.example.com/a\uFE0Fb", false, false)]
    [InlineData("https://hooks.example.com/\uFFFF", false, false)] // a noncharacter
    // Development (the local system, tests) admits this machine's loopback only, http too.
    [InlineData("http://127.0.0.1:5000/p", true, true)]
    [InlineData("http://localhost:5000/p", true, true)]
    [InlineData("https://[::1]:5000/p", true, true)]
    [InlineData("http://hooks.example.com/p", true, false)]
    [InlineData("https://169.254.169.254/latest/meta-data", true, false)]
    [InlineData("http://169.254.169.254/latest/meta-data", true, false)]
    [InlineData("https://10.1.2.3/p", true, false)]
    [InlineData("http://192.168.1.1/p", true, false)]
    [InlineData("https://metadata.google.internal/computeMetadata/v1", true, false)]
    public void Targets_ArePublicHttpsHosts_UnlessDevelopmentAllowsLoopback(string url, bool allowLoopback, bool accepted)
    {
        Assert.Equal(accepted, WebhookTargets.Problem(url, allowLoopback) is null);
    }

    [Fact]
    public async Task AConnection_ToAHostThatResolvesOnlyToPrivateAddresses_IsRefusedAtConnectTime()
    {
        // A public-looking name that resolves to loopback (as a rebinding attacker's DNS would): refused by the address.
        var error = await Assert.ThrowsAsync<HttpRequestException>(async () =>
            await WebhookTargets.ConnectAsync(new System.Net.DnsEndPoint("localhost", 9), allowLoopback: false, CancellationToken.None));
        Assert.Contains("no public IPv4 address", error.Message);
        // A public address on another port than 443 (an endpoint registered before the port rule): refused before connecting.
        var port = await Assert.ThrowsAsync<HttpRequestException>(async () =>
            await WebhookTargets.ConnectAsync(new System.Net.DnsEndPoint("93.184.216.34", 8443), allowLoopback: true, CancellationToken.None));
        Assert.Contains("port 8443", port.Message);
        // Names are looked up as absolute names, never under the pod's search domains (ndots:5 would try
        // "ledger.payments" as ledger.payments.<namespace>.svc.cluster.local first).
        Assert.Equal("ledger.payments.", WebhookTargets.LookupName("ledger.payments"));
        Assert.Equal("hooks.example.com.", WebhookTargets.LookupName("hooks.example.com."));
        Assert.Equal("93.184.216.34", WebhookTargets.LookupName("93.184.216.34"));
        Assert.Equal("localhost", WebhookTargets.LookupName("localhost"));
        Assert.False(WebhookTargets.IsPublic(IPAddress.Parse("::ffff:10.0.0.1")));
        Assert.False(WebhookTargets.IsPublic(IPAddress.Parse("100.64.0.1")));
        Assert.True(WebhookTargets.IsPublic(IPAddress.Parse("93.184.216.34")));
        // At connect time too (a DNS name's AAAA record): IPv6 forms that embed an IPv4 address are not public.
        Assert.All(new[] { "::a9fe:a9fe", "::ffff:0:a9fe:a9fe", "2002:a9fe:a9fe::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2" },
            address => Assert.False(WebhookTargets.IsPublic(IPAddress.Parse(address)), address));
        Assert.True(WebhookTargets.IsPublic(IPAddress.Parse("2606:4700::6810:84e5")));
        Assert.True(WebhookTargets.IsLoopback(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.False(WebhookTargets.IsLoopback(IPAddress.Parse("169.254.169.254")));
        // A dual-stack receiver (a review): deliveries leave over IPv4 alone, as the chart's NetworkPolicy lets them; its
        // AAAA first had every attempt spend the delivery's 10 s on a connection the policy drops.
        IPAddress[] dualStack = [IPAddress.Parse("2606:4700::6810:84e5"), IPAddress.Parse("93.184.216.34"), IPAddress.Parse("10.0.0.1"), IPAddress.Parse("::1")];
        Assert.Equal([IPAddress.Parse("93.184.216.34")], WebhookTargets.Deliverable(dualStack, allowLoopback: false));
        Assert.Equal([IPAddress.Parse("93.184.216.34"), IPAddress.Loopback, IPAddress.IPv6Loopback],
            WebhookTargets.Deliverable([IPAddress.Parse("93.184.216.34"), IPAddress.Loopback, IPAddress.IPv6Loopback], allowLoopback: true));
    }

    [Fact]
    public void ASignature_VerifiesOnlyTheSameBody_WithTheSecret_WithinTheTolerance()
    {
        var body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { id = "evt_1", type = "payment.completed" }));
        var (secret, other) = (WebhookSignature.NewSecret(), WebhookSignature.NewSecret());
        var at = DateTimeOffset.Parse("2026-12-03T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var header = WebhookSignature.Sign([secret], at, body);
        Assert.Equal(WebhookVerification.Valid, WebhookSignature.Verify(header, body, [secret], at.AddMinutes(4)));
        Assert.Equal(WebhookVerification.BadSignature, WebhookSignature.Verify(header, body, [other], at));
        var tampered = (byte[])body.Clone();
        tampered[^2] ^= 1;
        Assert.Equal(WebhookVerification.BadSignature, WebhookSignature.Verify(header, tampered, [secret], at));
        Assert.Equal(WebhookVerification.OutsideTolerance, WebhookSignature.Verify(header, body, [secret], at.AddMinutes(6)));
        Assert.Equal(WebhookVerification.Malformed, WebhookSignature.Verify("v1=abc", body, [secret], at));
        Assert.Equal(WebhookVerification.Malformed, WebhookSignature.Verify(null, body, [secret], at));
        // Re-signed with a changed timestamp but the old signature: the timestamp is part of what is signed.
        var replayed = "t=" + at.AddMinutes(10).ToUnixTimeSeconds() + header[header.IndexOf(',', StringComparison.Ordinal)..];
        Assert.Equal(WebhookVerification.BadSignature, WebhookSignature.Verify(replayed, body, [secret], at.AddMinutes(10)));
        // The id a receiver de-duplicates on is the signed body's (the Event-Id header is not signed: a review).
        Assert.Equal("evt_1", WebhookSignature.EventIdOf(body));
        Assert.Equal("evt_2", WebhookSignature.EventIdOf("{\"data\":{\"id\":\"pay_1\",\"x\":[1,{\"id\":3}]},\"id\":\"evt_2\"}"u8));
        Assert.Null(WebhookSignature.EventIdOf("not json"u8));
        Assert.Null(WebhookSignature.EventIdOf("{\"id\":7}"u8));
    }

    [Fact]
    public void Retries_BackOffExponentially_UpToTheCap_AndAFailingDeliveryIsTriedForMoreThanADay()
    {
        var first = WebhookDispatcher.FirstBackoff;
        var cap = new WebhookOptions().MaxBackoff;
        Assert.Equal(first, WebhookDispatcher.Backoff(1, first, cap, random: 0));
        Assert.Equal(first * 8, WebhookDispatcher.Backoff(4, first, cap, random: 0));
        Assert.Equal(cap, WebhookDispatcher.Backoff(40, first, cap, random: 0));
        Assert.Equal(cap * 0.8, WebhookDispatcher.Backoff(40, first, cap, random: 1));
        Assert.True(new WebhookOptions().RetryFor >= TimeSpan.FromHours(24));
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { RetryFor = TimeSpan.FromHours(23) }.Validate());
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { EventRetention = TimeSpan.FromHours(24) }.Validate());
        // Retention equal to the retries left a delivery whose first attempt came late less than its window.
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { RetryFor = TimeSpan.FromHours(24), EventRetention = TimeSpan.FromHours(24) }.Validate());
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { RetryFor = TimeSpan.FromHours(72), EventRetention = TimeSpan.FromHours(95) }.Validate());
        new WebhookOptions { RetryFor = TimeSpan.FromHours(72), EventRetention = TimeSpan.FromHours(96) }.Validate();
        // And maximums, the chart's (an audit: a retention of years was taken, and etcd holds every event that long).
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { RetryFor = TimeSpan.FromDays(31), EventRetention = TimeSpan.FromDays(40) }.Validate());
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { EventRetention = TimeSpan.FromDays(91) }.Validate());
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { MaxBackoff = TimeSpan.FromDays(4) }.Validate());
        new WebhookOptions { RetryFor = WebhookOptions.MaxRetryFor, EventRetention = WebhookOptions.MaxEventRetention }.Validate();
    }

    /// <summary>Real time, moved to today's noon (UTC) when made.</summary>
    private sealed class NoonClock(DateTimeOffset made) : TimeProvider
    {
        private readonly TimeSpan shift = new DateTimeOffset(made.UtcDateTime.Date, TimeSpan.Zero) + TimeSpan.FromHours(12) - made;

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + shift;
    }
}
