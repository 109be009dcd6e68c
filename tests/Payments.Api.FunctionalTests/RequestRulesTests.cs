using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Payments.Domain;
using Payments.Etcd;

namespace Payments.Api.FunctionalTests;

/// <summary>What a black-box probe found in how requests are read: parameters given twice, parameters on reads that
/// take none, a body without a type, and a rule added since a payment was accepted. Each fails on the code before it.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class RequestRulesTests(ApiSystemFixture system)
{
    [Theory]
    [InlineData("/v1/payments/pay_000000000000000000000000?wait=1&wait=1", "wait")]
    [InlineData("/v1/payments/pay_000000000000000000000000?status=pending&status=pending", "status")]
    [InlineData("/v1/events?limit=1&limit=2", "limit")]
    public async Task AParameterGivenTwice_IsRefusedAsSuch_NotWithTheRuleForItsValue(string path, string field)
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var message = (await response.JsonAsync()).GetProperty("errors").GetProperty(field).GetString();
        Assert.Equal($"{field} is given 2 times; give it once.", message);
    }

    /// <summary>A probe: query names were matched ignoring case ("?WAIT=3" waited, "?Status=" was read as status), and
    /// status without wait was ignored — a misspelt wait answered at once with the status the client named. Names match
    /// exactly, as body fields do, and status alone is refused.</summary>
    [Theory]
    [InlineData("/v1/payments/pay_000000000000000000000000?WAIT=1", "query", "Unknown query parameter: 'WAIT'")]
    [InlineData("/v1/payments/pay_000000000000000000000000?wait=1&Status=pending", "query", "Unknown query parameter: 'Status'")]
    [InlineData("/v1/events?Limit=1", "query", "Unknown query parameter: 'Limit'")]
    [InlineData("/v1/payments/pay_000000000000000000000000?status=pending", "status", "status is read only with wait")]
    public async Task AQueryNameInAnotherCase_OrStatusWithoutWait_IsRefused(string path, string field, string message)
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(message, (await response.JsonAsync()).GetProperty("errors").GetProperty(field).GetString(), StringComparison.Ordinal);
    }

    /// <summary>A read that takes no parameter refuses one (it listed every webhook endpoint for <c>?limit=5</c>, as if
    /// paged); a write still ignores one (see Validate.RefuseQueryWhereNoneIsTakenAsync).</summary>
    [Fact]
    public async Task AReadThatTakesNoParameter_RefusesOne_AndAWriteIgnoresIt()
    {
        using var client = await system.NewMerchantClientAsync();
        using var opened = await client.PostAsync("/v1/accounts?label=x", Json("""{"accountId":"query-rules","currency":"EUR"}"""));
        Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
        foreach (var path in new[] { "/v1/accounts/query-rules?x=1", "/v1/webhook-endpoints?limit=5" })
        {
            using var response = await client.GetAsync(path);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var problem = await response.JsonAsync();
            Assert.EndsWith("/validation-failed", problem.GetProperty("type").GetString());
            Assert.EndsWith("this endpoint takes none.", problem.GetProperty("errors").GetProperty("query").GetString());
        }

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/accounts/query-rules")).StatusCode);
    }

    [Fact]
    public async Task APostWithoutABodyOrItsType_IsToldWhatToSend()
    {
        using var client = await system.NewMerchantClientAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/accounts");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Contains("Content-Type: application/json", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    /// <summary>A payment accepted under rules that refuse its body now (here a blank reference, refused since a probe)
    /// is answered again on its retry with its key, not refused: a 400 would tell the client that the payment did not
    /// happen while it goes on. The key's record is written as the API wrote it then (its store, its fingerprint).</summary>
    [Fact]
    public async Task TheRetryOfAPaymentAcceptedBeforeARuleRefusedItsBody_GetsItsAnswerAgain()
    {
        var merchant = $"rules-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant);
        var body = Encoding.UTF8.GetBytes("""{"debtorAccountId":"a","creditorAccountId":"b","amountMinor":5,"currency":"EUR","reference":""}""");
        const string Accepted = """{"paymentId":"pay_0123456789abcdef01234567","status":"pending"}""";
        var store = system.ApiServices.GetRequiredService<IdempotencyStore>();
        var key = IdempotencyKey.Parse("accepted-before-the-rule");
        var fingerprint = IdempotencyStore.Fingerprint("POST", "/v1/payments", Convert.ToBase64String(body));
        var begun = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(merchant, key, fingerprint, CancellationToken.None));
        Assert.True(await store.CompleteAsync(begun.Claim, 202, Accepted, "application/json", CancellationToken.None));

        using var retry = await PostAsync(client, body, key.Value);
        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.Equal(Accepted, await retry.Content.ReadAsStringAsync());
        using var fresh = await PostAsync(client, body, "a-new-key");
        Assert.Equal(HttpStatusCode.BadRequest, fresh.StatusCode);
        Assert.Contains("blank", (await fresh.JsonAsync()).GetProperty("errors").GetProperty("reference").GetString(), StringComparison.Ordinal);
    }

    /// <summary>The same for what is refused before the key is read otherwise: a deposit's amount or currency (a lower
    /// maximum, a currency dropped since: its retry was refused 400 while the money was in the account, and a merchant
    /// depositing again under a new key funded it twice), an account id no account can have, and a payment body that
    /// does not parse under today's rules (a field since unknown). Each retry gets the stored answer; a new key gets the
    /// refusal.</summary>
    [Theory]
    [InlineData("/v1/accounts/acc-rules/deposits", """{"amountMinor":9223372036854775807,"currency":"EUR"}""", 201, HttpStatusCode.BadRequest)]
    [InlineData("/v1/accounts/acc-rules/deposits", """{"amountMinor":5,"currency":"ZZZ"}""", 201, HttpStatusCode.BadRequest)]
    [InlineData("/v1/accounts/acc%20rules/deposits", """{"amountMinor":5,"currency":"EUR"}""", 201, HttpStatusCode.NotFound)]
    [InlineData("/v1/payments", """{"debtorAccountId":"a","creditorAccountId":"b","amountMinor":5,"currency":"EUR","reference":"r","retired":1}""", 202, HttpStatusCode.BadRequest)]
    public async Task TheRetryOfAWriteAcceptedBeforeARuleRefusedIt_GetsItsAnswerAgain(string path, string json, int answered, HttpStatusCode refusedNow)
    {
        var merchant = $"rules-{Guid.NewGuid():N}"[..20];
        using var client = await system.ClientForAsync(merchant);
        var body = Encoding.UTF8.GetBytes(json);
        const string Accepted = """{"stored":"the first answer"}""";
        var store = system.ApiServices.GetRequiredService<IdempotencyStore>();
        var key = IdempotencyKey.Parse("accepted-before-the-rule");
        var endpoint = Uri.UnescapeDataString(path);
        var fingerprint = IdempotencyStore.Fingerprint("POST", endpoint, Convert.ToBase64String(body));
        var begun = Assert.IsType<IdempotencyBegin.Started>(await store.BeginAsync(merchant, key, fingerprint, CancellationToken.None));
        Assert.True(await store.CompleteAsync(begun.Claim, answered, Accepted, "application/json", CancellationToken.None));

        using var retry = await PostAsync(client, body, key.Value, path);
        Assert.Equal((HttpStatusCode)answered, retry.StatusCode);
        Assert.Equal(Accepted, await retry.Content.ReadAsStringAsync());
        using var fresh = await PostAsync(client, body, "a-new-key", path);
        Assert.Equal(refusedNow, fresh.StatusCode);
    }

    private static async Task<HttpResponseMessage> PostAsync(HttpClient client, byte[] body, string idempotencyKey, string path = "/v1/payments")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("Idempotency-Key", idempotencyKey);
        return await client.SendAsync(request);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
