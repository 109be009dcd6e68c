using System.Globalization;
using System.Net;
using System.Text.Json;
using Json.Schema;

namespace Payments.Api.FunctionalTests;

/// <summary>The merchants' OpenAPI document says what the API does, so a client generated from it works: real answers
/// validate against the schemas the document gives for them (with a JSON Schema 2020-12 validator: OpenAPI 3.1's
/// schemas are JSON Schema), the request bodies it allows are accepted, and the query parameters it documents are the
/// ones the API checks, with the same bounds. Fails on the document before: it required reference, reason and
/// review, which answers leave out when they have none; it offered quoted amounts, which the API refuses; and it named
/// neither the Idempotency-Key header nor the wait and events parameters.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class OpenApiConformanceTests(ApiSystemFixture system)
{
    /// <summary>Status waits per payment at most, each up to 30 s: the saga ends in well under that.</summary>
    private const int MaxWaits = 4;

    [Fact]
    public async Task RealAnswers_MatchTheirSchemas_AndTheBodiesTheDocumentAllowsAreAccepted()
    {
        var document = await DocumentAsync();
        using var client = await system.NewMerchantClientAsync();
        var debtor = "oa-d-" + Guid.NewGuid().ToString("N")[..8];
        var creditor = "oa-c-" + Guid.NewGuid().ToString("N")[..8];

        await SendAsync(document, client, "/v1/accounts", "/v1/accounts", $"{{\"accountId\":\"{debtor}\",\"currency\":\"USD\"}}", null, HttpStatusCode.Created);
        // Optional members may be sent as null (generated clients do).
        await SendAsync(document, client, "/v1/accounts", "/v1/accounts",
            $"{{\"accountId\":\"{creditor}\",\"currency\":\"USD\",\"overdraftLimitMinor\":null}}", null, HttpStatusCode.Created);
        await SendAsync(document, client, "/v1/accounts/{accountId}/deposits", $"/v1/accounts/{debtor}/deposits",
            "{\"amountMinor\":1000,\"currency\":\"USD\"}", Guid.NewGuid().ToString(), HttpStatusCode.Created);
        var accepted = await SendAsync(document, client, "/v1/payments", "/v1/payments",
            $"{{\"debtorAccountId\":\"{debtor}\",\"creditorAccountId\":\"{creditor}\",\"amountMinor\":250,\"currency\":\"USD\",\"reference\":null}}",
            Guid.NewGuid().ToString(), HttpStatusCode.Accepted);
        var paymentId = accepted.GetProperty("paymentId").GetString()!;

        var payment = accepted;
        for (var wait = 0; wait < MaxWaits && payment.GetProperty("status").GetString() is "pending"; wait++)
        {
            payment = await GetAsync(document, client, "/v1/payments/{paymentId}", $"/v1/payments/{paymentId}?wait=30&status=pending", HttpStatusCode.OK);
        }

        // Without a reference, a reason or a review, the answer has none of them: the document must not require them.
        Assert.Equal("completed", payment.GetProperty("status").GetString());
        Assert.False(payment.TryGetProperty("reference", out _), payment.ToString());
        await GetAsync(document, client, "/v1/accounts/{accountId}", "/v1/accounts/" + creditor, HttpStatusCode.OK);
        await GetAsync(document, client, "/v1/payments/{paymentId}", "/v1/payments/pay_0000000000000000000000ff", HttpStatusCode.NotFound);

        await SendAsync(document, client, "/v1/webhook-endpoints", "/v1/webhook-endpoints",
            "{\"url\":\"https://hooks.example.com/openapi\",\"events\":null,\"description\":null}", null, HttpStatusCode.Created);
        await GetAsync(document, client, "/v1/webhook-endpoints", "/v1/webhook-endpoints", HttpStatusCode.OK);
        // The status is one of the five the API names: a generated client can make an enum of them.
        var statuses = document.GetProperty("components").GetProperty("schemas").GetProperty("PaymentResponse")
            .GetProperty("properties").GetProperty("status").GetProperty("enum").EnumerateArray().Select(value => value.GetString());
        Assert.Equal(Payments.Domain.PaymentStatus.All, statuses);
        // The events page has its items' schema (validated above): the payment as GET shows it, without a reference.
        var events = await GetAsync(document, client, "/v1/events", "/v1/events?limit=100", HttpStatusCode.OK);
        var completed = Assert.Single(events.GetProperty("data").EnumerateArray(), item => item.GetProperty("type").GetString() == "payment.completed");
        Assert.False(completed.GetProperty("data").TryGetProperty("reference", out _), completed.GetRawText());
        var types = document.GetProperty("components").GetProperty("schemas").GetProperty("PaymentEvent")
            .GetProperty("properties").GetProperty("type").GetProperty("enum").EnumerateArray().Select(value => value.GetString());
        Assert.Equal(Payments.Orchestrator.Client.Records.PaymentEvents.Types, types);
    }

    /// <summary>The black-box probe: an event's data is the payment "as GET /v1/payments/{id} shows it", but the
    /// events of a reviewed payment left out its review (who decided, and when). They carry it now, as GET does, in the
    /// document's schema.</summary>
    [Fact]
    public async Task AReviewedPaymentsEvents_CarryItsReview_AsGetShowsIt()
    {
        var document = await DocumentAsync();
        var merchant = $"merchant-{Guid.NewGuid():N}"[..20];
        using var creator = await system.ClientForAsync(merchant);
        using var reviewer = await system.ClientForAsync(merchant, Payments.Merchants.ApiScopes.PaymentsApprove);
        var (debtor, creditor) = ($"{merchant}-d", $"{merchant}-c");
        await creator.OpenAccountAsync(debtor, fundsMinor: ApiSystemFixture.ReviewThresholdMinor * 2);
        await creator.OpenAccountAsync(creditor);
        var paymentId = (await (await creator.PayAsync(debtor, creditor, ApiSystemFixture.ReviewThresholdMinor + 1)).JsonAsync())
            .GetProperty("paymentId").GetString()!;
        Assert.Equal("awaiting_approval", (await creator.WaitForStatusAsync(paymentId, "awaiting_approval")).GetProperty("status").GetString());
        using var rejected = await reviewer.SendJsonAsync($"/v1/payments/{paymentId}/reject", "{}", null);
        Assert.Equal(HttpStatusCode.Accepted, rejected.StatusCode);
        var payment = await creator.WaitForStatusAsync(paymentId);
        Assert.Equal("failed", payment.GetProperty("status").GetString());

        var events = await GetAsync(document, creator, "/v1/events", "/v1/events?limit=100", HttpStatusCode.OK);
        var failed = Assert.Single(events.GetProperty("data").EnumerateArray(), item => item.GetProperty("type").GetString() == "payment.failed");
        Assert.Equal(payment.GetProperty("review").GetRawText(), failed.GetProperty("data").GetProperty("review").GetRawText());
        Assert.Equal("rejected", failed.GetProperty("data").GetProperty("review").GetProperty("decision").GetString());
        var held = Assert.Single(events.GetProperty("data").EnumerateArray(), item => item.GetProperty("type").GetString() == "payment.awaiting_approval");
        Assert.False(held.GetProperty("data").TryGetProperty("review", out _), held.GetRawText()); // not decided then
    }

    /// <summary>The black-box probe: the document named none of the rules the handlers check (unknown members refused,
    /// the amount's bounds, the texts' lengths, an account id's form), so a generated client could not check them first.
    /// It names them now, and each is the handler's: a body one past the document's bound is refused.</summary>
    [Fact]
    public async Task RequestBodies_NameTheRulesTheHandlersCheck()
    {
        var document = await DocumentAsync();
        JsonElement Body(string path) => document.GetProperty("paths").GetProperty(path).GetProperty("post").GetProperty("requestBody")
            .GetProperty("content").GetProperty("application/json").GetProperty("schema");
        var payment = Body("/v1/payments");
        Assert.False(payment.GetProperty("additionalProperties").GetBoolean());
        var members = payment.GetProperty("properties");
        Assert.Equal("1", members.GetProperty("amountMinor").GetProperty("minimum").GetRawText());
        Assert.Equal(Payments.Domain.MoneyLimits.CeilingMinor.ToString(System.Globalization.CultureInfo.InvariantCulture),
            members.GetProperty("amountMinor").GetProperty("maximum").GetRawText());
        Assert.Equal("^[A-Z]{3}$", members.GetProperty("currency").GetProperty("pattern").GetString());
        Assert.Equal(64, members.GetProperty("debtorAccountId").GetProperty("maxLength").GetInt32());
        Assert.Equal(560, members.GetProperty("reference").GetProperty("maxLength").GetInt32());
        var endpoint = Body("/v1/webhook-endpoints").GetProperty("properties");
        Assert.Equal(2048, endpoint.GetProperty("url").GetProperty("maxLength").GetInt32());
        Assert.Equal(4, endpoint.GetProperty("events").GetProperty("maxItems").GetInt32());
        Assert.False(Body("/v1/accounts").GetProperty("additionalProperties").GetBoolean());

        using var client = await system.NewMerchantClientAsync();
        using var tooMuch = await client.SendJsonAsync("/v1/payments",
            $"{{\"debtorAccountId\":\"a\",\"creditorAccountId\":\"b\",\"amountMinor\":{Payments.Domain.MoneyLimits.CeilingMinor + 1},\"currency\":\"USD\"}}", Guid.NewGuid().ToString());
        Assert.Equal(HttpStatusCode.BadRequest, tooMuch.StatusCode);
        using var tooLong = await client.SendJsonAsync("/v1/accounts", $"{{\"accountId\":\"{new string('a', 65)}\",\"currency\":\"USD\"}}", null);
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
    }

    [Fact]
    public async Task DocumentedQueryParameters_AreCheckedWithTheDocumentsBounds()
    {
        var document = await DocumentAsync();
        using var client = await system.NewMerchantClientAsync();
        await client.OpenAccountAsync("oa-q-d", fundsMinor: 100);
        await client.OpenAccountAsync("oa-q-c");
        var paymentId = (await (await client.PayAsync("oa-q-d", "oa-q-c", 10)).JsonAsync()).GetProperty("paymentId").GetString()!;
        // A finished payment answers a wait at once, so the longest documented wait costs no time.
        await client.WaitForStatusAsync(paymentId);

        var checkedParameters = new List<string>();
        foreach (var (template, path) in new[] { ("/v1/payments/{paymentId}", "/v1/payments/" + paymentId), ("/v1/events", "/v1/events") })
        {
            var operation = document.GetProperty("paths").GetProperty(template).GetProperty("get");
            foreach (var parameter in operation.GetProperty("parameters").EnumerateArray().Where(p => p.GetProperty("in").GetString() == "query"))
            {
                var name = parameter.GetProperty("name").GetString()!;
                var (allowed, refused) = Values(parameter.GetProperty("schema"));
                var along = name == "status" ? "&wait=0" : string.Empty; // status is read only with wait (as documented)
                foreach (var value in allowed)
                {
                    using var answer = await client.GetAsync($"{path}?{name}={Uri.EscapeDataString(value)}{along}");
                    Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{template} ?{name}={value}: {(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}");
                }

                foreach (var value in refused)
                {
                    using var answer = await client.GetAsync($"{path}?{name}={Uri.EscapeDataString(value)}{along}");
                    Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
                    Assert.True((await answer.JsonAsync()).GetProperty("errors").TryGetProperty(name, out _), $"{template} ?{name}={value}");
                }

                checkedParameters.Add(name);
            }
        }

        Assert.Equal(["wait", "status", "since", "type", "limit"], checkedParameters.Where(name => name != "after"));

        // The header the document requires is the one the API refuses to do without.
        var create = document.GetProperty("paths").GetProperty("/v1/payments").GetProperty("post").GetProperty("parameters").EnumerateArray()
            .Single(p => p.GetProperty("name").GetString() == "Idempotency-Key");
        Assert.Equal("header", create.GetProperty("in").GetString());
        Assert.True(create.GetProperty("required").GetBoolean());
        using var without = await client.SendJsonAsync("/v1/payments",
            "{\"debtorAccountId\":\"oa-q-d\",\"creditorAccountId\":\"oa-q-c\",\"amountMinor\":1,\"currency\":\"USD\"}", null);
        Assert.Equal(HttpStatusCode.BadRequest, without.StatusCode);
    }

    /// <summary>Values a parameter's schema allows, and values it refuses, from its bounds, its enum and its format.</summary>
    private static (List<string> Allowed, List<string> Refused) Values(JsonElement schema)
    {
        var (allowed, refused) = (new List<string>(), new List<string>());
        if (schema.TryGetProperty("minimum", out var minimum))
        {
            allowed.Add(minimum.GetInt64().ToString(CultureInfo.InvariantCulture));
            refused.Add((minimum.GetInt64() - 1).ToString(CultureInfo.InvariantCulture));
        }

        if (schema.TryGetProperty("maximum", out var maximum))
        {
            allowed.Add(maximum.GetInt64().ToString(CultureInfo.InvariantCulture));
            refused.Add((maximum.GetInt64() + 1).ToString(CultureInfo.InvariantCulture));
        }

        if (schema.TryGetProperty("enum", out var values))
        {
            allowed.AddRange(values.EnumerateArray().Select(value => value.GetString()!));
            refused.Add("not-one-of-them");
        }

        if (schema.TryGetProperty("format", out var format) && format.GetString() == "date-time")
        {
            allowed.Add("2026-12-01T00:00:00Z");
            refused.Add("yesterday");
        }

        return (allowed, refused);
    }

    private async Task<JsonElement> DocumentAsync()
    {
        using var response = await system.AnonymousClient().GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.JsonAsync();
    }

    /// <summary>Posts <paramref name="body"/> after checking the document allows it, and checks the answer against the
    /// schema the document gives for its status.</summary>
    private static async Task<JsonElement> SendAsync(
        JsonElement document, HttpClient client, string template, string path, string body, string? idempotencyKey, HttpStatusCode expected)
    {
        var operation = document.GetProperty("paths").GetProperty(template).GetProperty("post");
        using (var sent = JsonDocument.Parse(body))
        {
            AssertValid(document, operation.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema"),
                sent.RootElement, $"request body of POST {template}");
        }

        using var response = await client.SendJsonAsync(path, body, idempotencyKey);
        return await AnswerAsync(document, operation, response, $"POST {template}", expected);
    }

    private static async Task<JsonElement> GetAsync(JsonElement document, HttpClient client, string template, string path, HttpStatusCode expected)
    {
        using var response = await client.GetAsync(path);
        return await AnswerAsync(document, document.GetProperty("paths").GetProperty(template).GetProperty("get"), response, $"GET {template}", expected);
    }

    private static async Task<JsonElement> AnswerAsync(JsonElement document, JsonElement operation, HttpResponseMessage response, string what, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{what}: {(int)response.StatusCode} {text}");
        var documented = operation.GetProperty("responses").GetProperty(((int)expected).ToString(CultureInfo.InvariantCulture)).GetProperty("content");
        var mediaType = response.Content.Headers.ContentType!.MediaType!;
        Assert.True(documented.TryGetProperty(mediaType, out var media), $"{what}: {mediaType} is not documented for {(int)expected}");
        var answer = JsonDocument.Parse(text).RootElement.Clone();
        AssertValid(document, media.GetProperty("schema"), answer, $"answer {(int)expected} of {what}");
        return answer;
    }

    /// <summary>Validates <paramref name="instance"/> against a schema of the document, its components as $defs.</summary>
    private static void AssertValid(JsonElement document, JsonElement schema, JsonElement instance, string what)
    {
        var components = document.GetProperty("components").GetProperty("schemas").GetRawText();
        var text = "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$defs\":" + components + ",\"allOf\":[" + schema.GetRawText() + "]}";
        using var root = JsonDocument.Parse(text.Replace("#/components/schemas/", "#/$defs/", StringComparison.Ordinal));
        var built = JsonSchema.Build(root.RootElement, new BuildOptions { SchemaRegistry = new SchemaRegistry() },
            new Uri("https://daprpayments.test/openapi/" + Guid.NewGuid().ToString("N")));
        var results = built.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(results.IsValid, $"{what} does not match the document: {instance}\n{JsonSerializer.Serialize(results)}");
    }
}
