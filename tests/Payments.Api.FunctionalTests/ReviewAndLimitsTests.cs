using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Payments.Merchants;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 12, four-eyes review and abuse limits, through the public edge. Each fails on the code before it:
/// any key of a merchant approved its payments and no approver was recorded; keyless floods, payments in flight and
/// a key's rate across replicas had no bound.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class ReviewAndLimitsTests(ApiSystemFixture system) : IAsyncLifetime
{
    private WebApplication? edge;

    public async Task InitializeAsync() => edge = await EdgeHost.StartAsync(system.BaseAddress);

    public Task DisposeAsync() => InProcessApp.StopAsync(edge);

    [Fact]
    public async Task TheKeyThatCreatedAPayment_CannotApproveIt_AReviewersKeyCan_AndTheDecisionIsRecorded()
    {
        using var admin = MerchantKeysTests.Admin(system.BaseAddress);
        var merchant = MerchantKeysTests.NewMerchantId();
        await MerchantKeysTests.CreateMerchantAsync(admin, merchant);
        var (creatorKey, creatorKeyId) = await MerchantKeysTests.IssueAsync(admin, merchant, [.. ApiScopes.All]);
        var (reviewerKey, reviewerId) = await MerchantKeysTests.IssueAsync(admin, merchant, ApiScopes.PaymentsRead, ApiScopes.PaymentsApprove);
        var (secondReviewerKey, _) = await MerchantKeysTests.IssueAsync(admin, merchant, ApiScopes.PaymentsApprove);
        using var creator = EdgeHost.Client(edge!, creatorKey);
        using var reviewer = EdgeHost.Client(edge!, reviewerKey);
        using var secondReviewer = EdgeHost.Client(edge!, secondReviewerKey);
        var (debtor, creditor) = ($"{merchant}-d", $"{merchant}-c");
        await creator.OpenAccountAsync(debtor, fundsMinor: ApiSystemFixture.ReviewThresholdMinor * 2);
        await creator.OpenAccountAsync(creditor);
        var paymentId = (await (await creator.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1)).JsonAsync()).GetProperty("paymentId").GetString()!;
        await creator.WaitForStatusAsync(paymentId, "awaiting_approval");

        using var selfApproval = await creator.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{}", null);
        Assert.Equal(HttpStatusCode.Forbidden, selfApproval.StatusCode);
        Assert.EndsWith("/same-key-review", (await selfApproval.JsonAsync()).GetProperty("type").GetString());
        // A rotation of the creator's key is the same credential in the same hands: four eyes still refuses it.
        using var rotated = await admin.PostAsJsonAsync($"/admin/v1/merchants/{merchant}/keys/{creatorKeyId}/rotate", new { overlapSeconds = 0 });
        Assert.Equal(HttpStatusCode.Created, rotated.StatusCode);
        using var rotatedCreator = EdgeHost.Client(edge!, (await rotated.JsonAsync()).GetProperty("key").GetString()!);
        using var rotatedApproval = await rotatedCreator.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{}", null);
        Assert.Equal(HttpStatusCode.Forbidden, rotatedApproval.StatusCode);
        var refusal = await rotatedApproval.JsonAsync();
        Assert.EndsWith("/same-key-review", refusal.GetProperty("type").GetString());
        // A probe: the detail named the successor as the key that created the payment.
        Assert.StartsWith($"Payment '{paymentId}' was created with API key {creatorKeyId}, which this key (", refusal.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // The finding: a decision's body was never read — {"decision":"reject"} sent to approve was approved, and any
        // Content-Type passed. A body is read as any other: a field is 400, another type 415, and nothing is decided.
        using var withField = await reviewer.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{\"decision\":\"reject\"}", null);
        Assert.Equal(HttpStatusCode.BadRequest, withField.StatusCode);
        Assert.EndsWith("/malformed-request", (await withField.JsonAsync()).GetProperty("type").GetString());
        using var html = new HttpRequestMessage(HttpMethod.Post, $"/v1/payments/{paymentId}/reject") { Content = new StringContent("<b>", System.Text.Encoding.UTF8, "text/html") };
        using var asHtml = await reviewer.SendAsync(html);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, asHtml.StatusCode);
        using (var still = await rotatedCreator.GetAsync($"/v1/payments/{paymentId}"))
        {
            Assert.Equal("awaiting_approval", (await still.JsonAsync()).GetProperty("status").GetString()); // nothing decided
        }

        using var bodiless = new HttpRequestMessage(HttpMethod.Post, $"/v1/payments/{paymentId}/approve");

        using var approval = await reviewer.SendAsync(bodiless); // no body at all is as good as {}
        Assert.Equal(HttpStatusCode.Accepted, approval.StatusCode);
        Assert.Contains((await approval.JsonAsync()).GetProperty("status").GetString(), new[] { "pending", "completed" }); // no longer awaiting a reviewer
        // Its answer lost, the reviewer sends the same decision again: answered as the first was, not as a conflict.
        using var retried = await reviewer.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{}", null);
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        Assert.Contains((await retried.JsonAsync()).GetProperty("status").GetString(), new[] { "pending", "completed" });
        using var overruled = await secondReviewer.SendJsonAsync($"/v1/payments/{paymentId}/reject", "{}", null);
        Assert.Equal(HttpStatusCode.Conflict, overruled.StatusCode);
        Assert.EndsWith("/payment-already-decided", (await overruled.JsonAsync()).GetProperty("type").GetString());

        var final = await rotatedCreator.WaitForStatusAsync(paymentId); // the first key ended with its rotation
        Assert.Equal("completed", final.GetProperty("status").GetString());
        var review = final.GetProperty("review");
        Assert.Equal(("approved", reviewerId), (review.GetProperty("decision").GetString(), review.GetProperty("decidedBy").GetString()));
        Assert.True(review.GetProperty("decidedAt").GetDateTimeOffset() <= DateTimeOffset.UtcNow);
    }

    /// <summary>The merchants' OpenAPI document needs no key and is built anew per request: it was not limited at all,
    /// so anyone could keep the replicas building it. It spends the address's budget for requests without a key.</summary>
    [Fact]
    public async Task TheOpenApiDocument_SpendsTheAddressesBudget()
    {
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:UnauthenticatedRequestsPerSecondPerAddress", "2"));
        using var anonymous = new HttpClient { BaseAddress = replica.ClientOptions.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/openapi/v1.json")).StatusCode);
        HttpResponseMessage? limited = null;
        for (var request = 0; request < 30 && limited is null; request++)
        {
            var response = await anonymous.GetAsync("/openapi/v1.json");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
            }
        }

        Assert.NotNull(limited);
        Assert.EndsWith("/rate-limited", (await limited.JsonAsync()).GetProperty("type").GetString());
    }

    [Fact]
    public async Task RequestsWithoutAValidKey_AreLimitedPerAddress_Before_AnyLookup()
    {
        var keptFromBefore = await system.Store.IssueApiKeyAsync(MerchantKeysTests.NewMerchantId(), CancellationToken.None);
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:UnauthenticatedRequestsPerSecondPerAddress", "2"));
        var replicaEdge = await EdgeHost.StartAsync(replica.ClientOptions.BaseAddress);
        try
        {
            var replicaKeys = replica.Services.GetRequiredService<MerchantStore>();
            var loading = Stopwatch.StartNew();
            while (!replicaKeys.IsMirroring)
            {
                Assert.True(loading.Elapsed < TimeSpan.FromSeconds(30), "The replica never held its keys.");
                await Task.Delay(10);
            }

            // Valid keys spend nothing: ten keys new to this replica (as after its restart) all get through.
            for (var merchant = 0; merchant < 10; merchant++)
            {
                using var valid = EdgeHost.Client(replicaEdge, await system.Store.IssueApiKeyAsync(MerchantKeysTests.NewMerchantId(), CancellationToken.None));
                Assert.Equal(HttpStatusCode.NotFound, (await valid.GetAsync("/v1/accounts/any")).StatusCode);
            }

            using var anonymous = EdgeHost.Client(replicaEdge, $"dp_test_{Guid.NewGuid():N}");
            var statuses = new List<HttpStatusCode>();
            HttpResponseMessage? limited = null;
            for (var request = 0; request < 30 && limited is null; request++)
            {
                var response = await anonymous.GetAsync("/v1/accounts/any");
                statuses.Add(response.StatusCode);
                limited = response.StatusCode == HttpStatusCode.TooManyRequests ? response : null;
            }

            // A burst of twice the rate is answered 401; past it, 429 with when to come back.
            Assert.NotNull(limited);
            Assert.All(statuses.SkipLast(1), status => Assert.Equal(HttpStatusCode.Unauthorized, status));
            Assert.EndsWith("/rate-limited", (await limited.JsonAsync()).GetProperty("type").GetString());
            Assert.NotNull(limited.Headers.RetryAfter);

            // Every client behind an ingress shares its address, hence this budget: a flood of made-up keys must not
            // lock out a valid key this replica has never seen a request with (it holds them all from its start).
            using var kept = EdgeHost.Client(replicaEdge, keptFromBefore);
            for (var round = 0; round < 5; round++)
            {
                var spent = 0;
                while ((await anonymous.GetAsync("/v1/accounts/any")).StatusCode != HttpStatusCode.TooManyRequests)
                {
                    Assert.True(++spent < 20, "The bucket never ran out again."); // it regains 2 a second
                }

                Assert.Equal(HttpStatusCode.NotFound, (await kept.GetAsync("/v1/accounts/any")).StatusCode);
            }
        }
        finally
        {
            await InProcessApp.StopAsync(replicaEdge);
        }
    }

    /// <summary>The budget was checked before the lookup and spent after it: made-up keys sent all at once each passed
    /// the check before any spent, so etcd's reads grew with the requests in flight (here 200), not with the budget.
    /// Lookups in flight are bounded per address now.</summary>
    [Fact]
    public async Task MadeUpKeysSentAllAtOnce_CostEtcdReadsBoundedByTheBudget_NotByTheRequestsInFlight()
    {
        const int Requests = 200;
        string[] range = ["grpc_method=\"Range\"", "grpc_service=\"etcdserverpb.KV\""];
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:UnauthenticatedRequestsPerSecondPerAddress", "2"));
        using var direct = replica.CreateClient(); // one client address for all, as behind an ingress
        var before = await system.Cluster.SumMetricAsync("grpc_server_handled_total", range, CancellationToken.None);
        var waited = Stopwatch.StartNew();

        var answers = await Task.WhenAll(Enumerable.Range(0, Requests).Select(async _ =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/accounts/any");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", $"dp_test_{Guid.NewGuid():N}");
            using var response = await direct.SendAsync(request);
            return response.StatusCode;
        }));
        var reads = await system.Cluster.SumMetricAsync("grpc_server_handled_total", range, CancellationToken.None) - before;

        Assert.All(answers, status => Assert.Contains(status, new[] { HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests }));
        // The burst (4), the lookups in flight (4), the refill meanwhile (2/s), and the system's own background reads.
        var bound = 4 + Payments.Api.Security.ApiKeyMiddleware.MaxLookupsInFlightPerAddress + (2 * Math.Ceiling(waited.Elapsed.TotalSeconds));
        Assert.InRange(answers.Count(status => status == HttpStatusCode.Unauthorized), 1, bound);
        Assert.True(reads < Requests / 4, $"{reads} etcd range requests for {Requests} made-up keys sent at once");
    }

    /// <summary>A decision after the approval deadline was recorded and answered 202, then the saga failed the payment
    /// as approval-deadline-passed — or, its saga lost, a resumed run honoured the recorded approval and moved money
    /// after the deadline. Refused now, with nothing recorded. So is one just before it (a probe: decided within 50 ms
    /// of the deadline, answered 202, its event reached the saga after the saga's wait ended): within the margin the
    /// decision needs to reach the saga.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ADecisionAfterTheApprovalDeadline_OrWithinItsMargin_Is409_AndRecordsNothing(bool withinMargin)
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var replica = system.StartReplica(web => web.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));
        var (merchant, creator, reviewerEdge) = await CreatorAndReviewerAsync(replica);
        await using var throughEdge = creator;
        await using var reviewerThroughEdge = reviewerEdge;
        var (client, reviewer) = (throughEdge.Http, reviewerThroughEdge.Http);
        var (debtor, creditor) = ($"{merchant}-d", $"{merchant}-c");
        await client.OpenAccountAsync(debtor, fundsMinor: ApiSystemFixture.ReviewThresholdMinor * 2);
        await client.OpenAccountAsync(creditor);
        var paymentId = (await (await client.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1)).JsonAsync()).GetProperty("paymentId").GetString()!;
        await client.WaitForStatusAsync(paymentId, "awaiting_approval");

        var timeout = replica.Services.GetRequiredService<Payments.Api.Apis.ApiOptions>().ApprovalTimeout;
        clock.Advance(withinMargin ? timeout - (Payments.Api.Apis.ApiOptions.DecisionMargin(timeout) / 2) : timeout); // the replica's clock only: the saga still waits
        using var late = await reviewer.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{}", null);

        Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
        Assert.Equal(Payments.Domain.ProblemTypes.PaymentNotAwaitingApproval, (await late.JsonAsync()).GetProperty("type").GetString());
        var payment = await (await client.GetAsync($"/v1/payments/{paymentId}")).JsonAsync();
        Assert.False(payment.TryGetProperty("review", out var review) && review.ValueKind != System.Text.Json.JsonValueKind.Null, payment.ToString());
    }

    /// <summary>Each refusal was kept as its Idempotency-Key's answer, an etcd record for a day: a key at its rate
    /// sending new keys with an unknown account filled etcd's quota within hours. A merchant's refusals are kept up to
    /// a budget a minute; past it a refusal is answered alike and not kept, so its retry runs again — which, the
    /// account opened since, goes through (the refusal moved nothing). A new minute, a new budget.</summary>
    [Fact]
    public async Task RefusalsPastTheMerchantsBudgetAMinute_AreAnsweredButNotKept_AndTheirRetryRunsAgain()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:RefusalsKeptPerMerchantPerMinute", "2")
            .ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));
        var merchant = MerchantKeysTests.NewMerchantId();
        using var client = replica.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None));
        var (debtor, creditor) = ($"{merchant}-d", $"{merchant}-later");
        await client.OpenAccountAsync(debtor, fundsMinor: 1_000);

        var refused = new List<HttpStatusCode>();
        foreach (var key in new[] { "r1", "r2", "r3" })
        {
            refused.Add((await client.PayAsync(debtor, creditor, 10, key)).StatusCode);
        }

        Assert.All(refused, status => Assert.Equal(HttpStatusCode.NotFound, status));
        await client.OpenAccountAsync(creditor);
        Assert.Equal(HttpStatusCode.NotFound, (await client.PayAsync(debtor, creditor, 10, "r1")).StatusCode); // kept: replayed
        Assert.Equal(HttpStatusCode.Accepted, (await client.PayAsync(debtor, creditor, 10, "r3")).StatusCode); // not kept: ran again

        clock.Advance(TimeSpan.FromMinutes(1)); // a new budget: kept again
        Assert.Equal(HttpStatusCode.NotFound, (await client.PayAsync(debtor, $"{merchant}-never", 10, "r4")).StatusCode);
        await client.OpenAccountAsync($"{merchant}-never");
        Assert.Equal(HttpStatusCode.NotFound, (await client.PayAsync(debtor, $"{merchant}-never", 10, "r4")).StatusCode);
    }

    [Fact]
    public async Task AMerchantsPaymentsInFlight_AreCapped_With429AndRetryAfter_AndTheRetryGoesThroughLater()
    {
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:MaxPaymentsInFlightPerMerchant", "2"));
        var (merchant, creator, reviewerEdge) = await CreatorAndReviewerAsync(replica);
        await using var throughEdge = creator;
        await using var reviewerThroughEdge = reviewerEdge;
        var (client, reviewer) = (throughEdge.Http, reviewerThroughEdge.Http);
        var (debtor, creditor) = ($"{merchant}-d", $"{merchant}-c");
        await client.OpenAccountAsync(debtor, fundsMinor: ApiSystemFixture.ReviewThresholdMinor * 4);
        await client.OpenAccountAsync(creditor);
        // Two payments held for review stay in flight.
        var held = new List<string>();
        for (var index = 0; index < 2; index++)
        {
            held.Add((await (await client.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1)).JsonAsync()).GetProperty("paymentId").GetString()!);
        }

        using var capped = await client.PayAsync(debtor, creditor, 10, key: "third");
        Assert.Equal(HttpStatusCode.TooManyRequests, capped.StatusCode);
        Assert.EndsWith("/too-many-payments-in-flight", (await capped.JsonAsync()).GetProperty("type").GetString());
        Assert.NotNull(capped.Headers.RetryAfter);

        // One of them ends; the same request, retried with its Idempotency-Key, is accepted (the 429 was not kept).
        // A reviewer can decide once the saga waits for one (409 before): wait for that, bounded, first.
        await client.WaitForStatusAsync(held[0], "awaiting_approval");
        Assert.Equal(HttpStatusCode.Accepted, (await reviewer.SendJsonAsync($"/v1/payments/{held[0]}/reject", "{}", null)).StatusCode);
        await client.WaitForStatusAsync(held[0]);
        using var retried = await client.PayAsync(debtor, creditor, 10, key: "third");
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
    }

    [Fact]
    public async Task ReadinessProbes_AreAnsweredFromTheBackgroundProbe_CostingEtcdNoReadEach()
    {
        const int Probes = 300;
        string[] range = ["grpc_method=\"Range\"", "grpc_service=\"etcdserverpb.KV\""];
        using var probe = new HttpClient { BaseAddress = system.BaseAddress };
        // Run first after the fixture started, the background probe may not have answered yet: wait (bounded) for it.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while ((await probe.GetAsync("/readyz")).StatusCode != HttpStatusCode.OK)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "/readyz did not answer 200 within 30 s");
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }

        var before = await system.Cluster.SumMetricAsync("grpc_server_handled_total", range, CancellationToken.None);
        Assert.True(before > 0, "etcd reports the range requests it handled");
        for (var request = 0; request < Probes; request++)
        {
            Assert.Equal(HttpStatusCode.OK, (await probe.GetAsync("/readyz")).StatusCode);
        }

        var reads = await system.Cluster.SumMetricAsync("grpc_server_handled_total", range, CancellationToken.None) - before;

        // A read per probe would be 300 or more; what remains is the system's own background work meanwhile.
        Assert.True(reads < Probes / 2, $"{reads} etcd range requests during {Probes} readiness probes");
    }

    [Fact]
    public async Task AKeysQuota_IsSharedAcrossReplicas_EachTakingItsShare()
    {
        // 10 requests/s for the key across 5 replicas: this replica's bucket holds 2/s (bursts of 4), not 10 (20).
        await using var replica = system.StartReplica(web =>
        {
            web.UseSetting("Payments:RequestsPerSecondPerKey", "10");
            web.UseSetting("Payments:Replicas", "5");
        });
        var key = await system.Store.IssueApiKeyAsync(MerchantKeysTests.NewMerchantId(), CancellationToken.None);
        await using var throughEdge = await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, key);
        var client = throughEdge.Http;

        var statuses = new List<HttpStatusCode>();
        for (var request = 0; request < 20; request++)
        {
            statuses.Add((await client.GetAsync("/v1/accounts/none")).StatusCode);
        }

        // Every request of the unshared burst (20) would pass; with the share, at most a few seconds' worth do.
        Assert.True(statuses.Count(status => status == HttpStatusCode.TooManyRequests) >= 10, string.Join(",", statuses));
    }

    /// <summary>A new merchant on <paramref name="replica"/>, through the edge: a key that creates payments, and a
    /// reviewer's key (payments:approve).</summary>
    private async Task<(string Merchant, EdgeClient Creator, EdgeClient Reviewer)> CreatorAndReviewerAsync(WebApplicationFactory<Program> replica)
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        var key = await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None);
        var reviewerKey = await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None, ApiScopes.PaymentsApprove);
        return (merchant, await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, key),
            await EdgeHost.ClientThroughAsync(replica.ClientOptions.BaseAddress, reviewerKey));
    }
}
