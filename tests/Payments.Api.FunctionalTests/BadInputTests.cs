using System.Net;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Payments.Domain;

namespace Payments.Api.FunctionalTests;

/// <summary>Every caller mistake gets its documented 4xx problem+json with a stable type, never a 500 or a stack
/// trace, and leaves the ledger exactly as it was.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class BadInputTests(ApiSystemFixture system)
{
    private const string Debtor = "{debtor}";
    private const string Creditor = "{creditor}";
    private const string Euro = "{euro}";
    private const string Stranger = "{stranger}";

    public static TheoryData<string, string, string?, string, int, string> Cases => new()
    {
        // name, path, idempotency key (null: none), body, expected status, expected type suffix
        { "malformed json", "/v1/payments", "k", "{\"debtorAccountId\":", 400, "malformed-request" },
        { "not an object", "/v1/payments", "k", "[1,2]", 400, "malformed-request" },
        { "amount as string", "/v1/payments", "k", Pay("\"1250\""), 400, "malformed-request" },
        { "amount as decimal", "/v1/payments", "k", Pay("12.50"), 400, "malformed-request" },
        // A whole number past 64 bits is past the amount's bound, as 10^16 is: the field's rule says so (docs/api.md).
        { "amount overflows long", "/v1/payments", "k", Pay("99999999999999999999999"), 400, "validation-failed" },
        { "amount overflows long, negative", "/v1/payments", "k", Pay("-9223372036854775809"), 400, "validation-failed" },
        { "amount with an exponent", "/v1/payments", "k", Pay("1e30"), 400, "malformed-request" },
        { "unknown field", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"amount\":5}", 400, "malformed-request" },
        { "field name in another case", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"AmountMinor\":5,\"currency\":\"USD\"}", 400, "malformed-request" },
        { "duplicate field", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\"}", 400, "malformed-request" },
        { "trailing comma", "/v1/payments", "k", Pay("5").Replace("}", ",}", StringComparison.Ordinal), 400, "malformed-request" },
        { "zero amount", "/v1/payments", "k", Pay("0"), 400, "validation-failed" },
        { "negative amount", "/v1/payments", "k", Pay("-5"), 400, "validation-failed" },
        { "amount above the maximum", "/v1/payments", "k", Pay("2000000000000000000"), 400, "validation-failed" },
        { "missing amount", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"currency\":\"USD\"}", 400, "validation-failed" },
        { "lower-case currency", "/v1/payments", "k", Pay("5", "usd"), 400, "validation-failed" },
        { "unknown currency", "/v1/payments", "k", Pay("5", "XYZ"), 400, "validation-failed" },
        { "missing currency", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5}", 400, "validation-failed" },
        { "same debtor and creditor", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Debtor + "\",\"amountMinor\":5,\"currency\":\"USD\"}", 400, "validation-failed" },
        { "account id with slash", "/v1/payments", "k", "{\"debtorAccountId\":\"a/b\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\"}", 400, "validation-failed" },
        { "overlong reference", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"reference\":\"" + new string('r', 141) + "\"}", 400, "validation-failed" },
        { "reference with a NUL", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"reference\":\"a\\u0000b\"}", 400, "validation-failed" },
        { "reference with a right-to-left override", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"reference\":\"inv\\u202Egnp.exe\"}", 400, "validation-failed" },
        { "reference with a zero-width space", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"reference\":\"a\\u200Bb\"}", 400, "validation-failed" },
        { "reference of one character and 600 combining marks", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"reference\":\"a" + string.Concat(Enumerable.Repeat("\\u0301", 600)) + "\"}", 400, "validation-failed" },
        // Found by a probe: blank references were taken and echoed, while a blank description was refused.
        { "empty reference", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"reference\":\"\"}", 400, "validation-failed" },
        { "blank reference", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\",\"reference\":\"   \"}", 400, "validation-failed" },
        { "non-existent debtor", "/v1/payments", "k", "{\"debtorAccountId\":\"ghost\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\"}", 404, "account-not-found" },
        { "non-existent creditor", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"ghost\",\"amountMinor\":5,\"currency\":\"USD\"}", 404, "account-not-found" },
        { "another merchant's creditor", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Stranger + "\",\"amountMinor\":5,\"currency\":\"USD\"}", 404, "account-not-found" },
        { "currency mismatch with the accounts", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Euro + "\",\"amountMinor\":5,\"currency\":\"EUR\"}", 422, "currency-mismatch" },
        { "missing idempotency key", "/v1/payments", null, Pay("5"), 400, "idempotency-key-missing" },
        { "empty idempotency key", "/v1/payments", "", Pay("5"), 400, "idempotency-key-invalid" },
        { "empty body", "/v1/payments", "k", "", 400, "malformed-request" },
        { "whitespace body", "/v1/payments", "k", "  ", 400, "malformed-request" },
        { "overlong idempotency key", "/v1/payments", new string('k', 256), Pay("5"), 400, "idempotency-key-invalid" },
        { "oversized body", "/v1/payments", "k", "{\"reference\":\"" + new string('x', 20_000) + "\"}", 413, "payload-too-large" },
        { "deposit: zero amount", "/v1/accounts/" + Debtor + "/deposits", "k", "{\"amountMinor\":0,\"currency\":\"USD\"}", 400, "validation-failed" },
        { "deposit: currency mismatch", "/v1/accounts/" + Debtor + "/deposits", "k", "{\"amountMinor\":5,\"currency\":\"EUR\"}", 422, "currency-mismatch" },
        { "deposit: missing key", "/v1/accounts/" + Debtor + "/deposits", null, "{\"amountMinor\":5,\"currency\":\"USD\"}", 400, "idempotency-key-missing" },
        { "deposit: unknown account", "/v1/accounts/ghost/deposits", "k", "{\"amountMinor\":5,\"currency\":\"USD\"}", 404, "account-not-found" },
        { "open: lower-case currency", "/v1/accounts", null, "{\"accountId\":\"new-1\",\"currency\":\"eur\"}", 400, "validation-failed" },
        { "open: negative overdraft", "/v1/accounts", null, "{\"accountId\":\"new-2\",\"currency\":\"EUR\",\"overdraftLimitMinor\":-1}", 400, "validation-failed" },
        { "open: bad account id", "/v1/accounts", null, "{\"accountId\":\"@external-funding.USD\",\"currency\":\"USD\"}", 400, "validation-failed" },
        { "open: existing id, other currency", "/v1/accounts", null, "{\"accountId\":\"" + Debtor + "\",\"currency\":\"EUR\"}", 409, "account-exists" },
        { "open: a namespaced ledger id", "/v1/accounts", null, "{\"accountId\":\"m~" + Stranger + "\",\"currency\":\"USD\"}", 400, "validation-failed" },
        { "pay: a namespaced ledger id", "/v1/payments", "k", "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"m~" + Creditor + "\",\"amountMinor\":5,\"currency\":\"USD\"}", 400, "validation-failed" },
    };

    /// <summary>The black-box probe: one character of 601 UTF-16 units (a letter and 600 combining marks) was told it
    /// "must be at most 140 characters"; the rule it broke is the bound on units, and that is what it is told now.</summary>
    [Fact]
    public void FreeTextOverItsUnits_IsToldTheUnitsBound_NotACharacterCount()
    {
        var errors = new Dictionary<string, string>();
        Payments.Api.Apis.Validate.Text("reference", "a" + new string('\u0301', 600), Payments.Api.Apis.PaymentsApi.MaxReferenceLength, errors);
        Assert.Contains("560 UTF-16 code units", errors["reference"], StringComparison.Ordinal);
        Assert.Contains("this one has 601", errors["reference"], StringComparison.Ordinal);
        errors.Clear();
        Payments.Api.Apis.Validate.Text("reference", new string('r', 141), Payments.Api.Apis.PaymentsApi.MaxReferenceLength, errors);
        Assert.Equal("reference must be at most 140 characters.", errors["reference"]);
    }

    /// <summary>Free text keeps what written text needs — emoji sequences joined by U+200D, Persian with U+200C,
    /// subdivision flags made of tag characters, 140 emoji — and refuses what hides or reorders what is shown.</summary>
    [Theory]
    [InlineData("\U0001F469\u200D\U0001F4BB", true)]
    [InlineData("\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645", true)]
    [InlineData("\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", true)]
    [InlineData("a\u200Bb", false)]
    [InlineData("inv\u202Egnp.exe", false)]
    [InlineData("a\u2066b", false)]
    [InlineData("a\uFEFFb", false)]
    [InlineData("a\u0000b", false)]
    [InlineData("line\u2028break", false)]
    // Found by a black-box probe: joiners and tags only where written text needs them, and glyphs that show nothing.
    [InlineData("Invoice 42\U000E0073\U000E0065\U000E006E\U000E0064", false)] // an instruction spelled in tags
    [InlineData("\U0001F3F4\U000E0073\U000E0065\U000E006E\U000E0064\U000E0066\U000E0075\U000E006E\U000E0064\U000E007F", false)] // tags past a flag's
    [InlineData("a\u200Db", false)]
    [InlineData("a\u200Cb", false)]
    [InlineData("\u200D\U0001F4BB", false)]
    [InlineData("a\u3164b", false)]
    [InlineData("a\u115Fb", false)]
    [InlineData("a\u2800b", false)]
    [InlineData("a\u034Fb", false)]
    [InlineData("\uFE0F", false)]
    [InlineData("a\uFE0Fb", false)]
    [InlineData("\u2764\uFE0F", true)] // a red heart, emoji presentation
    [InlineData("1\uFE0F\u20E3", true)] // keycap one
    [InlineData("\U0001F44B\U0001F3FD", true)] // a waving hand with a skin tone
    [InlineData("\U0001F468\U0001F3FD\u200D\U0001F4BB", true)] // a technologist with a skin tone
    [InlineData("\u0915\u094D\u200D\u0937", true)] // Devanagari with a joiner
    [InlineData("\u203C\uFE0F", true)] // double exclamation, an emoji that is punctuation
    [InlineData("\u1820\u180B\u1821", true)] // Mongolian with a free variation selector
    [InlineData("a\u180Bb", false)]
    // Found by a black-box probe: noncharacters, which no font draws, a whole reference of them invisible.
    [InlineData("\uFFFF", false)]
    [InlineData("a\uFDD0b", false)]
    [InlineData("\U0010FFFF", false)] // the last code point
    [InlineData("a\U0001FFFEb", false)]
    // But a character newer than .NET's tables (the Saudi riyal sign, Unicode 17) and private use (the Apple logo) pass.
    [InlineData("100 \u20C1", true)]
    [InlineData("Pay \uF8FF", true)]
    public void FreeText_KeepsWrittenText_AndRefusesHiddenCharacters(string text, bool accepted)
    {
        var errors = new Dictionary<string, string>();
        Payments.Api.Apis.Validate.Text("reference", text, Payments.Api.Apis.PaymentsApi.MaxReferenceLength, errors);
        Assert.Equal(accepted, errors.Count == 0);
        errors.Clear();
        Payments.Api.Apis.Validate.Text("reference", string.Concat(Enumerable.Repeat("\U0001F600", 140)), Payments.Api.Apis.PaymentsApi.MaxReferenceLength, errors);
        Assert.Empty(errors);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadInput_GetsItsProblem_AndChangesNothing(string name, string path, string? key, string body, int status, string type)
    {
        var client = await system.NewMerchantClientAsync();
        var (debtor, creditor) = await IdempotencyAndIsolationTests.AccountsAsync(client);
        var euro = $"e-{Guid.NewGuid():N}";
        await client.OpenAccountAsync(euro, "EUR");
        var stranger = $"s-{Guid.NewGuid():N}";
        await (await system.NewMerchantClientAsync()).OpenAccountAsync(stranger);
        var before = await StateAsync(client, debtor, creditor);

        string Fill(string text) => text.Replace(Debtor, debtor, StringComparison.Ordinal).Replace(Creditor, creditor, StringComparison.Ordinal)
            .Replace(Euro, euro, StringComparison.Ordinal).Replace(Stranger, stranger, StringComparison.Ordinal);
        using var request = new HttpRequestMessage(HttpMethod.Post, Fill(path)) { Content = new StringContent(Fill(body), Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key == "k" ? Guid.NewGuid().ToString() : key);
        }

        var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(status == (int)response.StatusCode, $"{name}: expected {status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.JsonAsync();
        Assert.EndsWith("/" + type, problem.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()));
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal); // no stack trace
        Assert.DoesNotContain("System.", text, StringComparison.Ordinal); // nor our types' names
        Assert.DoesNotContain("Payments.", text, StringComparison.Ordinal);
        // Nor the JSON reader's advice to whoever wrote the server (found by a black-box probe).
        Assert.DoesNotContain("reader options", text, StringComparison.Ordinal);
        Assert.DoesNotContain("isFinalBlock", text, StringComparison.Ordinal);
        Assert.Equal(before, await StateAsync(client, debtor, creditor));
    }

    /// <summary>A 404 names the id it did not find, cut to a length that identifies any valid id: a path of thousands
    /// of characters came back whole in the detail.</summary>
    [Theory]
    [InlineData("/v1/payments/")]
    [InlineData("/v1/accounts/")]
    public async Task ANotFoundDetail_EchoesAtMostAShortPrefixOfTheId(string route)
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.GetAsync(route + new string('x', 3_000));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var detail = (await response.JsonAsync()).GetProperty("detail").GetString()!;
        Assert.InRange(detail.Length, 1, 160);
        Assert.Contains(new string('x', 64) + "…", detail, StringComparison.Ordinal);
    }

    /// <summary>The finding: a 404's detail repeated a line break or a bidirectional override from the path as it
    /// was, which rewrote what a dashboard or a log showed of the answer. They are shown as \uXXXX.</summary>
    [Theory]
    [InlineData("/v1/accounts/a%0Ab", "a\\u000Ab")]
    [InlineData("/v1/payments/pay_%E2%80%AEx", "pay_\\u202Ex")]
    [InlineData("/v1/accounts/a%E2%80%A8b", "a\\u2028b")]
    [InlineData("/v1/accounts/a%F3%A0%80%81b", "a\\U000E0001b")]
    public async Task ANotFoundDetail_ShowsHiddenCharactersEscaped(string path, string shown)
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var detail = (await response.JsonAsync()).GetProperty("detail").GetString()!;
        Assert.Contains(shown, detail, StringComparison.Ordinal);
        Assert.DoesNotContain(detail, character => char.IsControl(character) || character is '\u202E' or '\u2028' || char.IsSurrogate(character));
    }

    /// <summary>Two Idempotency-Key header lines (HttpClient would join them into one value, so the request is written
    /// by hand): refused saying to send one. The detail said the key "must not be empty".</summary>
    [Fact]
    public async Task TwoIdempotencyKeys_AreRefused_SayingToSendOne()
    {
        var key = await system.Store.IssueApiKeyAsync($"merchant-{Guid.NewGuid():N}"[..20], CancellationToken.None);
        const string Body = "{\"debtorAccountId\":\"a\",\"creditorAccountId\":\"b\",\"amountMinor\":1,\"currency\":\"USD\"}";
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(system.BaseAddress.Host, system.BaseAddress.Port);
        await using var stream = tcp.GetStream();
        var request = $"POST /v1/payments HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nIdempotency-Key: k-one\r\n"
            + $"Idempotency-Key: k-two\r\nContent-Type: application/json\r\nContent-Length: {Body.Length}\r\nConnection: close\r\n\r\n{Body}";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        Assert.Contains("/idempotency-key-invalid", answer, StringComparison.Ordinal);
        Assert.Contains("Send the Idempotency-Key header once", answer, StringComparison.Ordinal);
    }

    /// <summary>Two keys joined into one header value (what the edge, HttpClient and other proxies do with two lines)
    /// get the same answer as two lines: send one. The detail said the key may hold no spaces.</summary>
    [Fact]
    public async Task TwoIdempotencyKeysJoinedByAProxy_AreRefused_SayingToSendOne()
    {
        using var client = await system.NewMerchantClientAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
        {
            Content = new StringContent("{\"debtorAccountId\":\"a\",\"creditorAccountId\":\"b\",\"amountMinor\":1,\"currency\":\"USD\"}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Idempotency-Key", ["k-one", "k-two"]);
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.EndsWith("/idempotency-key-invalid", problem.GetProperty("type").GetString());
        Assert.Contains("Send the Idempotency-Key header once", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    /// <summary>The finding (black-box probe): a malformed Idempotency-Key was refused only where a key is required;
    /// opening an account with a 300-character key answered 201, a review decision and a deletion ran, a read answered,
    /// all with the key silently unread. docs/api.md says any request with an invalid one is 400; nothing runs.</summary>
    [Theory]
    [InlineData("POST", "/v1/accounts", "{\"accountId\":\"{account}\",\"currency\":\"USD\"}")]
    [InlineData("GET", "/v1/accounts/{account}", null)]
    [InlineData("DELETE", "/v1/webhook-endpoints/we_nothing", null)]
    [InlineData("POST", "/v1/payments/pay_nothing/approve", null)]
    public async Task AMalformedIdempotencyKey_Is400_OnEveryRoute_AndNothingRuns(string method, string path, string? body)
    {
        using var client = await system.NewMerchantClientAsync();
        var account = $"ik-{Guid.NewGuid():N}"[..20];
        foreach (var key in new[] { new string('k', 256), "a b", string.Empty })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path.Replace("{account}", account, StringComparison.Ordinal));
            if (body is not null)
            {
                request.Content = new StringContent(body.Replace("{account}", account, StringComparison.Ordinal), Encoding.UTF8, "application/json");
            }

            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal(ProblemTypes.IdempotencyKeyInvalid, (await response.JsonAsync()).GetProperty("type").GetString());
        }

        using var opened = await client.GetAsync($"/v1/accounts/{account}");
        Assert.Equal(HttpStatusCode.NotFound, opened.StatusCode); // the refused opens opened nothing
    }

    /// <summary>The finding: the ingress redirected plain HTTP to https, and clients follow a redirect silently, so a
    /// merchant configured with http:// sent its key in cleartext on every request and never knew. Where TLS is
    /// required the API refuses such a request (what the entrance says it came over), before its key is looked at.</summary>
    [Fact]
    public async Task ARequestThatCameOverPlainHttp_Is403HttpsRequired_WhereTlsIsRequired()
    {
        await using var replica = system.StartReplica(web => web.UseSetting("Payments:RequireHttps", "true"));
        var key = await system.Store.IssueApiKeyAsync($"merchant-{Guid.NewGuid():N}"[..20], CancellationToken.None, Payments.Merchants.ApiScopes.PaymentsRead);
        using var client = new HttpClient { BaseAddress = replica.ClientOptions.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);

        async Task<HttpResponseMessage> GetAsync(string path, string? scheme)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (scheme is not null)
            {
                request.Headers.Add("X-Forwarded-For", "203.0.113.9"); // the entrance says who and how
                request.Headers.Add("X-Forwarded-Proto", scheme);
            }

            return await client.SendAsync(request);
        }

        using var plain = await GetAsync("/v1/events", "http");
        using var admin = await GetAsync("/admin/v1/merchants", "http");
        using var secure = await GetAsync("/v1/events", "https");
        using var probe = await GetAsync("/healthz", "http"); // probes carry no credential
        using var inside = await GetAsync("/v1/events", null); // not through the entrance: helm test's pod, a port-forward

        foreach (var refused in new[] { plain, admin })
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal(ProblemTypes.HttpsRequired, (await refused.JsonAsync()).GetProperty("type").GetString());
        }

        Assert.Equal(HttpStatusCode.OK, secure.StatusCode);
        Assert.Equal(HttpStatusCode.OK, probe.StatusCode);
        Assert.Equal(HttpStatusCode.OK, inside.StatusCode);
    }

    /// <summary>An id no payment can have is 404 at once: it was read from etcd, and a wait on it left its id among the
    /// replica's change signals (up to 10,000 of them, 8 KB each, from one key at its request rate).</summary>
    [Fact]
    public async Task AnIdNoPaymentCanHave_Is404_WithoutAWaitersPlace()
    {
        await using var replica = system.StartReplica();
        var key = await system.Store.IssueApiKeyAsync(
            $"merchant-{Guid.NewGuid():N}"[..20], CancellationToken.None, Payments.Merchants.ApiScopes.PaymentsRead, Payments.Merchants.ApiScopes.PaymentsApprove);
        using var client = new HttpClient { BaseAddress = replica.ClientOptions.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        var waits = replica.Services.GetRequiredService<Payments.Api.Apis.PaymentStatusWaits>();
        var before = waits.SignalsHeld;

        foreach (var id in new[] { "pay_" + new string('a', 4000), new string('x', 4000), "pay_a-b", "pay_%C3%A9" })
        {
            using var read = await client.GetAsync($"/v1/payments/{id}?wait=1");
            using var approve = await client.PostAsync($"/v1/payments/{id}/approve", new StringContent("{}", Encoding.UTF8, "application/json"));
            foreach (var answer in new[] { read, approve })
            {
                Assert.True(answer.StatusCode == HttpStatusCode.NotFound, $"{answer.StatusCode} for {id[..Math.Min(id.Length, 20)]}");
                Assert.EndsWith("/payment-not-found", (await answer.JsonAsync()).GetProperty("type").GetString());
            }
        }

        Assert.Equal(before, waits.SignalsHeld);
    }

    [Fact]
    public async Task NoSuchRouteOrMethod_IsOurProblem_WhateverTheClientAccepts()
    {
        var client = await system.NewMerchantClientAsync();
        using var delete = new HttpRequestMessage(HttpMethod.Delete, "/v1/accounts/x");
        delete.Headers.TryAddWithoutValidation("Accept", "text/html");
        using var noMethod = await client.SendAsync(delete);
        using var nowhere = new HttpRequestMessage(HttpMethod.Get, "/v1/nowhere");
        nowhere.Headers.TryAddWithoutValidation("Accept", "text/html");
        using var noRoute = await client.SendAsync(nowhere);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, noMethod.StatusCode);
        Assert.Contains("GET", noMethod.Content.Headers.Allow);
        Assert.Equal(HttpStatusCode.NotFound, noRoute.StatusCode);
        foreach (var (answer, type) in new[] { (noMethod, "/method-not-allowed"), (noRoute, "/not-found") })
        {
            Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
            Assert.EndsWith(type, (await answer.JsonAsync()).GetProperty("type").GetString());
        }
    }

    /// <summary>HEAD is GET without the body (RFC 9110 §9.3.2) — monitors and link checkers send it — through the same
    /// key and scope checks; a route without GET still answers 405.</summary>
    [Fact]
    public async Task Head_AnswersLikeGet_WithoutABody()
    {
        var client = await system.NewMerchantClientAsync();
        var account = $"head-{Guid.NewGuid():N}"[..20];
        await client.OpenAccountAsync(account, "EUR");

        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v1/accounts/{account}"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("application/json", head.Content.Headers.ContentType?.MediaType);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        using var missing = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/v1/accounts/no-such-account"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var anonymous = await system.AnonymousClient().SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v1/accounts/{account}"));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var health = await system.AnonymousClient().SendAsync(new HttpRequestMessage(HttpMethod.Head, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var postOnly = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/v1/payments"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, postOnly.StatusCode);
    }

    /// <summary>A UTF-8 byte order mark (which RFC 8259 lets a parser ignore, and some Windows tools write) is the same
    /// request without it, for its Idempotency-Key too. A body in UTF-16 (with a mark or without) or with bytes that are
    /// not UTF-8 is not application/json in UTF-8: 415, as docs/api.md says (the black-box probe found a 400 for the
    /// first, and for the second "not of the field's type" of a string field), and nothing is deposited.</summary>
    [Fact]
    public async Task AUtf8ByteOrderMark_IsIgnored_AndOtherEncodings_Are415()
    {
        var client = await system.NewMerchantClientAsync();
        var account = $"bom-{Guid.NewGuid():N}"[..20];
        await client.OpenAccountAsync(account, "EUR");
        const string Deposit = """{"amountMinor":250,"currency":"EUR"}""";
        var key = Guid.NewGuid().ToString("N");

        using var withMark = await DepositAsync([.. Encoding.UTF8.GetPreamble(), .. Encoding.UTF8.GetBytes(Deposit)]);
        using var without = await DepositAsync(Encoding.UTF8.GetBytes(Deposit));
        Assert.Equal(HttpStatusCode.Created, withMark.StatusCode);
        Assert.Equal(HttpStatusCode.Created, without.StatusCode);
        Assert.Equal((await withMark.JsonAsync()).GetProperty("depositId").GetString(), (await without.JsonAsync()).GetProperty("depositId").GetString());

        key = Guid.NewGuid().ToString("N");
        byte[][] notUtf8 =
        [
            [.. Encoding.Unicode.GetPreamble(), .. Encoding.Unicode.GetBytes(Deposit)],
            Encoding.Unicode.GetBytes(Deposit),
            Encoding.BigEndianUnicode.GetBytes(Deposit),
            [.. Encoding.UTF8.GetBytes("""{"amountMinor":250,"currency":"EU"""), 0xFF, .. Encoding.UTF8.GetBytes("\"}")],
            [.. Encoding.UTF8.GetBytes("""{"amountMinor":250,"currency":"EU"""), 0xC0, 0x80, .. Encoding.UTF8.GetBytes("\"}")],
        ];
        foreach (var body in notUtf8)
        {
            using var refused = await DepositAsync(body);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);
            var problem = await refused.JsonAsync();
            Assert.Equal(ProblemTypes.UnsupportedMediaType, problem.GetProperty("type").GetString());
            Assert.Contains("UTF-8", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(250, (await (await client.GetAsync($"/v1/accounts/{account}")).JsonAsync()).GetProperty("balanceMinor").GetInt64());

        async Task<HttpResponseMessage> DepositAsync(byte[] body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{account}/deposits") { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            request.Headers.Add("Idempotency-Key", key);
            return await client.SendAsync(request);
        }
    }

    /// <summary>The black-box probe's findings on what a malformed body is told: the parser's own location format
    /// ("Path: $ | LineNumber: 0 | BytePositionInLine: 36."), "not of the field's type" for a top-level array and for
    /// a string holding half a surrogate pair. Each is now said in the API's words, with where it went wrong.</summary>
    [Theory]
    [InlineData("{\"accountId\":\"x3\",\"currency\":\"EUR\"} garbage", "The body is not valid JSON (line 1, byte 37): 'g' is invalid after a single JSON value")]
    [InlineData("[{\"accountId\":\"x3\",\"currency\":\"EUR\"}]", "The body must be a JSON object.")]
    [InlineData("  \"text\"", "The body must be a JSON object.")]
    [InlineData("{\"accountId\":\"ab\\ud800cd\",\"currency\":\"EUR\"}", "The text at $.accountId is not valid Unicode")]
    public async Task AMalformedBody_IsToldWhatIsWrong_InTheApisWords(string body, string detail)
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.PostAsync("/v1/accounts", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.Equal(ProblemTypes.MalformedRequest, problem.GetProperty("type").GetString());
        var said = problem.GetProperty("detail").GetString()!;
        Assert.StartsWith(detail, said, StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", said, StringComparison.Ordinal);
        Assert.DoesNotContain("BytePositionInLine", said, StringComparison.Ordinal);
    }

    /// <summary>A probe: the caller's own text came back in a detail as it was sent — an unknown property's name with a
    /// bidirectional override, a currency with a line break, and a 10,000-character name whole (called "not of the
    /// field's type" when it held an apostrophe). Echoes are cut and show hidden characters as \uXXXX.</summary>
    [Theory]
    [InlineData("{\"accountId\":\"e1\",\"currency\":\"EUR\",\"\\u202egnp.exe\":1}", "malformed-request", "The property '\\u202Egnp.exe' is not part of this request.")]
    [InlineData("{\"accountId\":\"e1\",\"currency\":\"\\u202e\\n\\u200bEUR\"}", "validation-failed", "'\\u202E\\u000A\\u200BEUR' is not")]
    [InlineData("{\"accountId\":\"e1\",\"currency\":\"EUR\",\"'LONG\":1}", "malformed-request", "is not part of this request.")]
    public async Task TheCallersTextInADetail_IsCut_AndShowsHiddenCharactersEscaped(string body, string type, string shown)
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.PostAsync("/v1/accounts", new StringContent(body.Replace("LONG", new string('x', 10_000), StringComparison.Ordinal), Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.Equal($"https://daprpayments.dev/problems/{type}", problem.GetProperty("type").GetString());
        // What a dashboard shows: the decoded texts (the JSON itself escapes non-ASCII whether or not the API did).
        var said = string.Join("\n", [problem.GetProperty("detail").GetString(),
            .. problem.TryGetProperty("errors", out var errors) ? errors.EnumerateObject().Select(error => error.Value.GetString()) : []]);
        Assert.Contains(shown, said, StringComparison.Ordinal);
        Assert.InRange(problem.GetRawText().Length, 1, 1_000);
        Assert.DoesNotContain(said.Replace("\n", "", StringComparison.Ordinal), character => char.IsControl(character) || character is '\u202E' or '\u200B');
    }

    /// <summary>A deposit to an account id no account can have is 404 before its Idempotency-Key is touched: it was
    /// stored as the key's answer, so the client that fixed the path and sent it again with the same key got 422
    /// idempotency-key-reuse.</summary>
    [Fact]
    public async Task ADepositToAnImpossibleAccountId_StoresNothingUnderItsKey()
    {
        var client = await system.NewMerchantClientAsync();
        var account = $"fix-{Guid.NewGuid():N}"[..20];
        await client.OpenAccountAsync(account, "EUR");
        var key = Guid.NewGuid().ToString("N");

        using var wrong = await DepositAsync("%C3%A9");
        Assert.Equal(HttpStatusCode.NotFound, wrong.StatusCode);
        Assert.EndsWith("/account-not-found", (await wrong.JsonAsync()).GetProperty("type").GetString());
        using var fixedPath = await DepositAsync(account);
        Assert.Equal(HttpStatusCode.Created, fixedPath.StatusCode);
        Assert.Equal(300, (await (await client.GetAsync($"/v1/accounts/{account}")).JsonAsync()).GetProperty("balanceMinor").GetInt64());

        async Task<HttpResponseMessage> DepositAsync(string accountId)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{accountId}/deposits")
            {
                Content = new StringContent("""{"amountMinor":300,"currency":"EUR"}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("Idempotency-Key", key);
            return await client.SendAsync(request);
        }
    }

    /// <summary>Exactly application/json, in UTF-8: another media type that merely starts the same, or another
    /// charset (whose bytes read as UTF-8 would store other text than the client sent), is 415 and opens nothing.</summary>
    [Theory]
    [InlineData("text/plain", false, null)]
    [InlineData("application/jsonp", false, null)]
    [InlineData("application/json-seq", false, null)]
    [InlineData("application/json; charset=iso-8859-1", false, "charset=iso-8859-1")]
    [InlineData("application/json; charset=utf-16", false, "charset=utf-16")]
    [InlineData("application/json; charset=utf-8; charset=latin1", false, "charset=latin1")] // every charset named, not the first
    [InlineData("application/json; charset=", false, null)]
    [InlineData("application/json; charset=UTF-8", true, null)]
    [InlineData("application/json;charset=\"utf-8\"", true, null)]
    [InlineData("Application/JSON", true, null)]
    public async Task ContentType_MustBeJsonInUtf8(string contentType, bool accepted, string? detail)
    {
        var client = await system.NewMerchantClientAsync();
        var account = $"ct-{Guid.NewGuid():N}"[..20];
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/accounts")
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes($$"""{"accountId":"{{account}}","currency":"EUR"}""")),
        };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        using var response = await client.SendAsync(request);
        if (accepted)
        {
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            return;
        }

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.EndsWith("/unsupported-media-type", problem.GetProperty("type").GetString());
        if (detail is not null)
        {
            Assert.Contains(detail, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/v1/accounts/{account}")).StatusCode);
    }

    /// <summary>A coded body is refused with 415 (RFC 9110), not read as JSON: a plain body claiming br was taken, and a
    /// gzip body was read as its compressed bytes (400). Nothing is opened either way.</summary>
    [Theory]
    [InlineData("br", false)]
    [InlineData("gzip", true)]
    [InlineData("identity, gzip", true)]
    [InlineData("identity, identity", false)]
    public async Task ACompressedBody_Is415_AndOpensNothing(string coding, bool compress)
    {
        var client = await system.NewMerchantClientAsync();
        var account = $"ce-{Guid.NewGuid():N}"[..20];
        var json = Encoding.UTF8.GetBytes($$"""{"accountId":"{{account}}","currency":"EUR"}""");
        if (compress)
        {
            using var packed = new MemoryStream();
            await using (var gzip = new System.IO.Compression.GZipStream(packed, System.IO.Compression.CompressionLevel.Fastest))
            {
                await gzip.WriteAsync(json);
            }

            json = packed.ToArray();
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/accounts") { Content = new ByteArrayContent(json) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        request.Content.Headers.TryAddWithoutValidation("Content-Encoding", coding);
        using var response = await client.SendAsync(request);

        Assert.Equal(compress || coding != "identity, identity" ? HttpStatusCode.UnsupportedMediaType : HttpStatusCode.Created, response.StatusCode);
        if (response.StatusCode == HttpStatusCode.Created)
        {
            return; // identity, however often named, is no coding: opened
        }

        Assert.Contains("Content-Encoding", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("identity", response.Headers.GetValues("Accept-Encoding").Single()); // what is accepted (RFC 9110 §15.5.16)
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/v1/accounts/{account}")).StatusCode);
    }

    [Fact]
    public async Task OpenApiDocument_IsServed()
    {
        var response = await system.AnonymousClient().GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var document = await response.JsonAsync();
        // No server address: it named the internal replica that served the document.
        Assert.True(!document.TryGetProperty("servers", out var servers) || servers.GetArrayLength() == 0, servers.ToString());
        // What a generated client needs: the body it sends, the answers it gets (202, not 200), how it authenticates.
        var create = document.GetProperty("paths").GetProperty("/v1/payments").GetProperty("post");
        var body = create.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema");
        Assert.Contains("debtorAccountId", Schema(document, body).GetProperty("properties").EnumerateObject().Select(property => property.Name));
        var responses = create.GetProperty("responses").EnumerateObject().Select(answer => answer.Name).ToArray();
        Assert.Contains("202", responses);
        Assert.DoesNotContain("200", responses);
        Assert.Contains("422", responses);
        Assert.True(create.GetProperty("responses").GetProperty("400").GetProperty("content").TryGetProperty("application/problem+json", out _));
        // What a client retries by, and the members a problem carries besides RFC 9457's, are in the document too.
        Assert.True(create.GetProperty("responses").GetProperty("429").GetProperty("headers").TryGetProperty("Retry-After", out _));
        Assert.True(create.GetProperty("responses").GetProperty("503").GetProperty("headers").TryGetProperty("Retry-After", out _));
        Assert.True(create.GetProperty("responses").GetProperty("401").GetProperty("headers").TryGetProperty("WWW-Authenticate", out _));
        // A probe: the 201s' Location (docs/api.md: part of the contract) was not in the document.
        foreach (var created in new[] { "/v1/accounts", "/v1/webhook-endpoints" })
        {
            Assert.True(document.GetProperty("paths").GetProperty(created).GetProperty("post").GetProperty("responses").GetProperty("201").GetProperty("headers")
                .TryGetProperty("Location", out _), $"POST {created}: no Location on 201");
        }

        var problem = document.GetProperty("components").GetProperty("schemas").GetProperty("ProblemDetails").GetProperty("properties");
        Assert.True(problem.TryGetProperty("errors", out _) && problem.TryGetProperty("requiredScope", out _));
        Assert.Equal("bearer", document.GetProperty("components").GetProperty("securitySchemes").GetProperty("merchantApiKey").GetProperty("scheme").GetString());
        Assert.True(document.GetProperty("paths").GetProperty("/v1/webhook-endpoints/{endpointId}").GetProperty("delete").GetProperty("responses").TryGetProperty("204", out _));
        // A client generated for merchants holds no operator routes: those are in the operator's document, behind the token.
        Assert.DoesNotContain(document.GetProperty("paths").EnumerateObject(), path => path.Name.StartsWith("/admin", StringComparison.OrdinalIgnoreCase));
        // HEAD is answered on every GET route, but not listed: it would repeat each GET's operation.
        Assert.DoesNotContain(document.GetProperty("paths").EnumerateObject(), path => path.Value.TryGetProperty("head", out _));
    }

    /// <summary>The finding: a document name the API does not have was the OpenAPI library's text/plain 404; like any
    /// route that does not exist it is problem+json not-found.</summary>
    [Theory]
    [InlineData("/openapi/v2.json")]
    [InlineData("/openapi/x.json")]
    public async Task AnOpenApiDocumentThatDoesNotExist_Is404ProblemJson(string path)
    {
        using var response = await system.AnonymousClient().GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(ProblemTypes.NotFound, (await response.JsonAsync()).GetProperty("type").GetString());
    }

    /// <summary>Found by a probe: two Authorization headers, even both with the same valid key, were read as one
    /// unknown key ("k, Bearer k") and told "The API key is unknown, revoked or expired". Now told to send it once.</summary>
    [Fact]
    public async Task TwoAuthorizationHeaders_Are401_ToldToSendOne()
    {
        var key = await system.Store.IssueApiKeyAsync($"merchant-{Guid.NewGuid():N}"[..20], CancellationToken.None);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/events");
        request.Headers.TryAddWithoutValidation("Authorization", ["Bearer " + key, "Bearer " + key]);

        using var response = await system.AnonymousClient().SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        var problem = await response.JsonAsync();
        Assert.Equal(ProblemTypes.Unauthorized, problem.GetProperty("type").GetString());
        Assert.Contains("Authorization header once", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    /// <summary>Found by a probe: an offset's '+' sent unencoded reads as a space, and the answer did not say why.</summary>
    [Fact]
    public async Task ASinceWithItsPlusUnencoded_IsToldToSendItAsPercent2B()
    {
        using var client = await system.NewMerchantClientAsync();
        using var response = await client.GetAsync("/v1/events?since=2026-12-06T17:00:00+01:00");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("%2B", (await response.JsonAsync()).GetProperty("errors").GetProperty("since").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/openapi/admin.json")]
    [InlineData("/OpenAPI/Admin.json")]
    public async Task TheOperatorsOpenApiDocument_NeedsTheOperatorsToken(string path)
    {
        using var anonymous = await system.AnonymousClient().GetAsync(path);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(ProblemTypes.Unauthorized, (await anonymous.JsonAsync()).GetProperty("type").GetString());
        using var merchant = await system.NewMerchantClientAsync();
        using var asMerchant = await merchant.GetAsync(path);
        Assert.Equal(HttpStatusCode.Unauthorized, asMerchant.StatusCode);

        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiSystemFixture.AdminToken);
        using var asOperator = await system.AnonymousClient().SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, asOperator.StatusCode);
        var document = await asOperator.JsonAsync();
        var paths = document.GetProperty("paths").EnumerateObject().Select(entry => entry.Name).ToArray();
        Assert.Contains("/admin/v1/merchants", paths);
        Assert.DoesNotContain("/v1/payments", paths);

        // The operator's bodies state the rules their handlers check too (a black-box probe found none of them).
        System.Text.Json.JsonElement Members(string route, string method) => document.GetProperty("paths").GetProperty(route).GetProperty(method)
            .GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("properties");
        var created = Members("/admin/v1/merchants", "post");
        Assert.Equal("^[A-Za-z0-9][A-Za-z0-9_-]*$", created.GetProperty("merchantId").GetProperty("pattern").GetString());
        Assert.Equal(200, created.GetProperty("name").GetProperty("maxLength").GetInt32());
        Assert.Equal(1, Members("/admin/v1/merchants/{merchantId}/keys", "post").GetProperty("scopes").GetProperty("minItems").GetInt32());
        Assert.Equal("604800", Members("/admin/v1/merchants/{merchantId}/keys/{keyId}/rotate", "post").GetProperty("overlapSeconds").GetProperty("maximum").GetRawText());
        Assert.Equal("0", Members("/admin/v1/accounts/{accountId}/overdraft", "put").GetProperty("overdraftLimitMinor").GetProperty("minimum").GetRawText());
    }

    /// <summary>The schema itself, following a $ref into components.</summary>
    private static System.Text.Json.JsonElement Schema(System.Text.Json.JsonElement document, System.Text.Json.JsonElement schema) =>
        schema.TryGetProperty("$ref", out var reference)
            ? document.GetProperty("components").GetProperty("schemas").GetProperty(reference.GetString()!.Split('/')[^1])
            : schema;

    private static string Pay(string amount, string currency = "USD") =>
        "{\"debtorAccountId\":\"" + Debtor + "\",\"creditorAccountId\":\"" + Creditor + "\",\"amountMinor\":" + amount + ",\"currency\":\"" + currency + "\"}";

    private static async Task<(long, long, long, long)> StateAsync(HttpClient client, string debtor, string creditor)
    {
        var d = await (await client.GetAsync("/v1/accounts/" + debtor)).JsonAsync();
        var c = await (await client.GetAsync("/v1/accounts/" + creditor)).JsonAsync();
        return (d.GetProperty("balanceMinor").GetInt64(), d.GetProperty("pendingDebitMinor").GetInt64(),
            c.GetProperty("balanceMinor").GetInt64(), c.GetProperty("version").GetInt64());
    }
}
