using System.Net;
using Payments.Domain;
using Payments.Etcd;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

[Collection(ApiSystemCollection.Name)]
public sealed class IdempotencyAndIsolationTests(ApiSystemFixture system)
{
    [Fact]
    public async Task SameKeyAndBody_ReturnsTheFirstResponseAgain_AndOtherBodyIs422()
    {
        var client = await system.NewMerchantClientAsync();
        var (debtor, creditor) = await AccountsAsync(client);
        var key = Guid.NewGuid().ToString();

        var first = await client.PayAsync(debtor, creditor, 100, key);
        var again = await client.PayAsync(debtor, creditor, 100, key);
        var other = await client.PayAsync(debtor, creditor, 101, key);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(first.StatusCode, again.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await again.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        Assert.EndsWith("/idempotency-key-reuse", (await other.JsonAsync()).GetProperty("type").GetString());
        var paymentId = (await first.JsonAsync()).GetProperty("paymentId").GetString()!;
        Assert.Equal("completed", (await client.WaitForStatusAsync(paymentId)).GetProperty("status").GetString());
        Assert.Equal(100, await client.BalanceAsync(creditor));
    }

    /// <summary>The finding: routing matches a path in any case and with a trailing slash, but the key's fingerprint
    /// took the path as sent, so a retry through a client or proxy that spelled it otherwise got 422
    /// idempotency-key-reuse for the very request it repeated.</summary>
    [Fact]
    public async Task ARetryToTheSamePathSpelledOtherwise_IsTheSameRequest()
    {
        var client = await system.NewMerchantClientAsync();
        var (debtor, creditor) = await AccountsAsync(client, fundsMinor: 0);
        var body = $"{{\"debtorAccountId\":\"{debtor}\",\"creditorAccountId\":\"{creditor}\",\"amountMinor\":70,\"currency\":\"USD\"}}";
        var (paymentKey, depositKey) = (Guid.NewGuid().ToString(), Guid.NewGuid().ToString());
        const string Deposit = "{\"amountMinor\":300,\"currency\":\"USD\"}";

        var deposits = new List<HttpResponseMessage>();
        foreach (var path in new[] { $"/v1/accounts/{debtor}/deposits", $"/V1/ACCOUNTS/{debtor}/Deposits/" })
        {
            deposits.Add(await client.SendJsonAsync(path, Deposit, depositKey));
        }

        var payments = new List<HttpResponseMessage>();
        foreach (var path in new[] { "/v1/payments", "/V1/Payments", "/v1/payments/" })
        {
            payments.Add(await client.SendJsonAsync(path, body, paymentKey));
        }

        Assert.All(deposits, answer => Assert.Equal(HttpStatusCode.Created, answer.StatusCode));
        Assert.All(payments, answer => Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode));
        var paymentIds = await Task.WhenAll(payments.Select(async answer => (await answer.JsonAsync()).GetProperty("paymentId").GetString()));
        Assert.Single(paymentIds.Distinct());
        Assert.Equal("completed", (await client.WaitForStatusAsync(paymentIds[0]!)).GetProperty("status").GetString());
        Assert.Equal(230, await client.BalanceAsync(debtor));
        Assert.Equal(70, await client.BalanceAsync(creditor));
    }

    /// <summary>The finding: a body refused for its form was stored as the key's answer (under a 25 h lease), with
    /// the caller's input echoed in it, so one key could fill etcd with refusals, and the client's fixed retry got 422
    /// idempotency-key-reuse for a day. Now such a request is answered before its key is touched.</summary>
    [Fact]
    public async Task ABodyRefusedForItsForm_StoresNothing_AndTheFixedBodyRunsUnderTheSameKey()
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        var client = await system.ClientForAsync(merchant, [.. ApiScopes.Default]);
        var (debtor, creditor) = await AccountsAsync(client);
        var paymentKey = Guid.NewGuid().ToString();
        var depositKey = Guid.NewGuid().ToString();
        var longCurrency = new string('A', 12_000);

        var badPayment = await client.PayAsync(debtor, creditor, 100, paymentKey, currency: longCurrency);
        var badDeposit = await client.SendJsonAsync($"/v1/accounts/{debtor}/deposits", "{\"amountMinor\":1,\"currency\":\"" + longCurrency + "\"}", depositKey);
        var malformed = await client.SendJsonAsync($"/v1/accounts/{debtor}/deposits", "{\"amountMinor\":", depositKey);

        Assert.Equal(HttpStatusCode.BadRequest, badPayment.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badDeposit.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.True((await badPayment.Content.ReadAsStringAsync()).Length < 1_000, "the answer echoed the whole input");
        var idempotency = new IdempotencyStore(system.Etcd, ApiSystemFixture.KeyPrefix + "idempotency/", TimeProvider.System);
        foreach (var key in new[] { paymentKey, depositKey })
        {
            var stored = await system.Etcd.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = EtcdBytes.Key(idempotency.RecordKey(merchant, IdempotencyKey.Parse(key))) });
            Assert.Empty(stored.Kvs);
        }

        var payment = await client.PayAsync(debtor, creditor, 100, paymentKey);
        var deposit = await client.SendJsonAsync($"/v1/accounts/{debtor}/deposits", "{\"amountMinor\":5,\"currency\":\"USD\"}", depositKey);
        Assert.Equal(HttpStatusCode.Accepted, payment.StatusCode);
        Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
    }

    [Fact]
    public async Task TwentyConcurrentRequestsWithOneKey_CreateExactlyOnePayment()
    {
        var client = await system.NewMerchantClientAsync();
        var (debtor, creditor) = await AccountsAsync(client);
        var key = Guid.NewGuid().ToString();

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => client.PayAsync(debtor, creditor, 250, key)));

        var bodies = await Task.WhenAll(responses.Select(response => response.Content.ReadAsStringAsync()));
        Assert.All(responses, response => Assert.Equal(HttpStatusCode.Accepted, response.StatusCode));
        Assert.Single(bodies.Distinct());
        var paymentId = (await responses[0].JsonAsync()).GetProperty("paymentId").GetString()!;
        await client.WaitForStatusAsync(paymentId);
        Assert.Equal(250, await client.BalanceAsync(creditor));
    }

    [Fact]
    public async Task AnotherMerchant_Gets404_ForAccountsAndPaymentsItDoesNotOwn()
    {
        var alice = await system.NewMerchantClientAsync();
        var mallory = await system.NewMerchantClientAsync([.. ApiScopes.All]);
        var (debtor, creditor) = await AccountsAsync(alice);
        var paymentId = (await (await alice.PayAsync(debtor, creditor, 10)).JsonAsync()).GetProperty("paymentId").GetString()!;

        Assert.Equal(HttpStatusCode.NotFound, (await mallory.GetAsync("/v1/accounts/" + debtor)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await mallory.GetAsync("/v1/payments/" + paymentId)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await mallory.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{}", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await mallory.PayAsync(debtor, creditor, 10)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await mallory.SendJsonAsync($"/v1/accounts/{debtor}/deposits", "{\"amountMinor\":5,\"currency\":\"USD\"}", "k1")).StatusCode);
    }

    [Fact]
    public async Task MissingOrWrongApiKey_Is401_WithAProblem()
    {
        var anonymous = system.AnonymousClient();
        var noKey = await anonymous.GetAsync("/v1/accounts/anything");
        anonymous.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "dp_wrong");
        var wrongKey = await anonymous.GetAsync("/v1/accounts/anything");

        foreach (var response in new[] { noKey, wrongKey })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.EndsWith("/unauthorized", (await response.JsonAsync()).GetProperty("type").GetString());
        }
    }

    [Theory]
    [InlineData("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64")]
    [InlineData("203.0.113.7", "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7")]
    public void RequestsWithoutAValidKey_SpendTheBudgetOfTheirIpv4Address_OrIpv6Slash64(string address, string budget)
    {
        Assert.Equal(budget, Payments.Api.Security.ApiKeyMiddleware.BudgetKey(System.Net.IPAddress.Parse(address)));
    }

    [Fact]
    public async Task TheBearerScheme_IsMatchedInAnyCase_AsRfc9110Says()
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        var key = await system.Store.IssueApiKeyAsync(merchant, CancellationToken.None);
        var client = system.AnonymousClient();
        foreach (var scheme in new[] { "bearer", "BEARER", "Bearer" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/events");
            request.Headers.TryAddWithoutValidation("Authorization", $"{scheme} {key}");
            using var answer = await client.SendAsync(request);
            Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{scheme}: {(int)answer.StatusCode}");
        }
    }

    [Theory]
    [InlineData(true, "completed")]
    [InlineData(false, "failed")]
    public async Task PaymentAboveThreshold_AwaitsApproval_AndFollowsTheDecision(bool approve, string finalStatus)
    {
        var merchant = $"review-{Guid.NewGuid():N}"[..20];
        var client = await system.ClientForAsync(merchant);
        var reviewer = await system.ClientForAsync(merchant, ApiScopes.PaymentsRead, ApiScopes.PaymentsApprove);
        var (debtor, creditor) = await AccountsAsync(client, fundsMinor: ApiSystemFixture.ReviewThresholdMinor * 2);
        var amount = ApiSystemFixture.ReviewThresholdMinor + 1;
        var paymentId = (await (await client.PayAsync(debtor, creditor, amount)).JsonAsync()).GetProperty("paymentId").GetString()!;

        await client.WaitForStatusAsync(paymentId, "awaiting_approval");
        var decision = await reviewer.SendJsonAsync($"/v1/payments/{paymentId}/{(approve ? "approve" : "reject")}", "{}", null);
        var final = await client.WaitForStatusAsync(paymentId);
        var again = await reviewer.SendJsonAsync($"/v1/payments/{paymentId}/approve", "{}", null);

        Assert.Equal(HttpStatusCode.Accepted, decision.StatusCode);
        Assert.Equal(finalStatus, final.GetProperty("status").GetString());
        // The same key's approval again is a retry (202, the status now); after a rejection it is another decision.
        Assert.Equal(approve ? HttpStatusCode.Accepted : HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal(approve ? "completed" : null, approve ? (await again.JsonAsync()).GetProperty("status").GetString() : null);
        Assert.Equal(approve ? amount : 0, await client.BalanceAsync(creditor));
        var debtorAccount = await (await client.GetAsync("/v1/accounts/" + debtor)).JsonAsync();
        Assert.Equal(0, debtorAccount.GetProperty("pendingDebitMinor").GetInt64());
    }

    /// <summary>Issue 12: a payment its debtor cannot fund fails as insufficient-funds at once, without waiting for a
    /// reviewer (nobody approves here: a payment parked for review would not end within the wait).</summary>
    [Fact]
    public async Task PaymentAboveThreshold_ThatTheDebtorCannotFund_FailsBeforeReview()
    {
        var client = await system.NewMerchantClientAsync();
        var (debtor, creditor) = await AccountsAsync(client, fundsMinor: 10);
        var paymentId = (await (await client.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1)).JsonAsync())
            .GetProperty("paymentId").GetString()!;

        var final = await client.WaitForStatusAsync(paymentId);

        Assert.Equal(("failed", "insufficient-funds"), (final.GetProperty("status").GetString(), final.GetProperty("reason").GetString()));
        Assert.Equal(10, await client.BalanceAsync(debtor));
        Assert.Equal(0, await client.BalanceAsync(creditor));
    }

    internal static async Task<(string Debtor, string Creditor)> AccountsAsync(HttpClient client, long fundsMinor = 100_000)
    {
        var debtor = $"d-{Guid.NewGuid():N}";
        var creditor = $"c-{Guid.NewGuid():N}";
        await client.OpenAccountAsync(debtor, fundsMinor: fundsMinor);
        await client.OpenAccountAsync(creditor);
        return (debtor, creditor);
    }
}
