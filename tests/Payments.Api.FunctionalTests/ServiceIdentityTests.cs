using System.Net;
using System.Text;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Orchestrator.Client.Gateway;
using Payments.Risk.Contracts;
using Payments.ServiceDefaults.Security;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 11, as an attacker with a foothold next to the services would probe them over real HTTP: no internal
/// endpoint answers without the app token, each serves only the roles it names, and the ledger lets each caller move
/// money only the way its role needs — with nothing written when it refuses.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class ServiceIdentityTests(ApiSystemFixture system)
{
    /// <summary>No other test moves Swiss francs, so the system accounts' balances are this test's alone to compare.</summary>
    private static readonly Currency Chf = Currency.FromCode("CHF");
    private static readonly string Funding = AccountId.ExternalFunding(Chf).Value;
    private static readonly string InTransit = AccountId.InTransit(Chf).Value;

    [Theory]
    [InlineData(null)]
    [InlineData("not-the-token-but-long-enough-to-look-like-one")]
    public async Task WithoutTheAppToken_EveryInternalEndpoint_Is401ProblemJson(string? token)
    {
        using var ledger = Client(system.LedgerServiceAddress, token, ServiceRoles.Orchestrator);
        using var orchestrator = Client(system.OrchestratorAddress, token, ServiceRoles.Api);
        await using var riskApp = await InProcessApp.StartRiskServiceAsync();
        using var risk = Client(new Uri(InProcessApp.BaseUrl(riskApp)), token, ServiceRoles.Orchestrator);

        HttpResponseMessage[] answers =
        [
            await ledger.PostAsync(LedgerRoutes.Prefix + "accounts", Json("""{"id":"x1","currency":"CHF","overdraftLimitMinor":0}""")),
            await ledger.GetAsync(LedgerRoutes.Prefix + "accounts/x1"),
            await ledger.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit("acct-x", 5))),
            await ledger.PostAsync(LedgerRoutes.Prefix + "batches", Json("""{"transfers":[]}""")),
            await ledger.GetAsync(LedgerRoutes.Prefix + "replication"),
            await ledger.GetAsync(LedgerRoutes.Prefix + "transfers/t-1"),
            await ledger.GetAsync("no/such/route"),
            await orchestrator.GetAsync(HttpPaymentWorkflows.Route + "/p-1"),
            await orchestrator.PostAsync(HttpPaymentWorkflows.Route + "/p-1/approval", Json("""{"approved":true}""")),
            await risk.PostAsync(RiskRoutes.Assess, Json(RiskRequest())),
        ];

        foreach (var answer in answers)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, answer.StatusCode);
            Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
            Assert.Equal(ProblemTypes.Unauthorized, (await answer.JsonAsync()).GetProperty("type").GetString());
        }

        // The probes stay open: the kubelet calls them without credentials.
        Assert.Equal(HttpStatusCode.OK, (await ledger.GetAsync("healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await risk.GetAsync("healthz")).StatusCode);
    }

    [Fact]
    public async Task AKnownCallerOutsideAnEndpointsRoles_Is403_AndOneWithoutItsOwnToken_401()
    {
        // The API calls no risk service, so it holds no token for one; this risk service knows a token as the API's,
        // so that its route's roles are what refuses the API (on Kubernetes those roles are the app's only check).
        var apiTokenForRisk = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await using var riskApp = await InProcessApp.StartRiskServiceAsync(new Dictionary<string, string>
        {
            [$"{ServiceIdentityOptions.Section}:CallerTokens:{ServiceRoles.Api}"] = apiTokenForRisk,
        });
        using var riskAsKnownApi = Client(new Uri(InProcessApp.BaseUrl(riskApp)), apiTokenForRisk, ServiceRoles.Api);
        using var riskAsApi = Client(new Uri(InProcessApp.BaseUrl(riskApp)), Token(ServiceRoles.Risk, ServiceRoles.Api), ServiceRoles.Api);
        using var riskAsSaga = Client(new Uri(InProcessApp.BaseUrl(riskApp)), Token(ServiceRoles.Risk, ServiceRoles.Orchestrator), ServiceRoles.Orchestrator);
        using var riskAsStranger = Client(new Uri(InProcessApp.BaseUrl(riskApp)), Token(ServiceRoles.Risk, "somebody-else"), "somebody-else");
        using var orchestratorAsSaga = Client(system.OrchestratorAddress, Token(ServiceRoles.Orchestrator, ServiceRoles.Orchestrator), ServiceRoles.Orchestrator);
        using var ledgerAsApi = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Api), ServiceRoles.Api);

        // Only the saga assesses (an assessment counts towards the account's velocity): a known caller in another role
        // is refused by the route; no other caller holds a token for the risk service, and its own token (what its
        // sidecar presents) is no caller's.
        await AssertForbiddenAsync(await riskAsKnownApi.PostAsync(RiskRoutes.Assess, Json(RiskRequest())));
        await AssertUnauthorizedAsync(await riskAsApi.PostAsync(RiskRoutes.Assess, Json(RiskRequest())));
        await AssertUnauthorizedAsync(await riskAsStranger.PostAsync(RiskRoutes.Assess, Json(RiskRequest())));
        Assert.Equal(HttpStatusCode.OK, (await riskAsSaga.PostAsync(RiskRoutes.Assess, Json(RiskRequest()))).StatusCode);
        // Only the API starts, reads and decides payments: a caller the orchestrator knows in another role is refused by
        // the routes (on Kubernetes those roles are the app's only check), one it does not know by the token.
        using var orchestratorAsKnownFailover = Client(system.OrchestratorAddress, ApiSystemFixture.FailoverTokenForOrchestrator, ServiceRoles.Failover);
        await AssertForbiddenAsync(await orchestratorAsKnownFailover.GetAsync(HttpPaymentWorkflows.Route + "/p-1"));
        await AssertForbiddenAsync(await orchestratorAsKnownFailover.PostAsync(HttpPaymentWorkflows.Route + "/p-1/approval", Json("""{"approved":true}""")));
        await AssertForbiddenAsync(await orchestratorAsKnownFailover.PostAsync(HttpPaymentWorkflows.Route, Json("{}")));
        await AssertUnauthorizedAsync(await orchestratorAsSaga.PostAsync(HttpPaymentWorkflows.Route + "/p-1/approval", Json("""{"approved":true}""")));
        // Batches are the saga's; replication progress is the failover service's.
        await AssertForbiddenAsync(await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "batches", Json("""{"transfers":[]}""")));
        await AssertForbiddenAsync(await ledgerAsApi.GetAsync(LedgerRoutes.Prefix + "replication"));
        // A transfer is read one by one by a resumed saga, and by the API for deposits only (TheApi_MayOnlyDeposit...);
        // an id the ledger never applied is a 404 and a malformed one a 400 problem.
        using var ledgerAsSaga = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Orchestrator), ServiceRoles.Orchestrator);
        var deposit = Deposit(await OpenAsync(), 7);
        Assert.Equal(HttpStatusCode.OK, (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json(deposit))).StatusCode);
        var depositId = System.Text.Json.JsonDocument.Parse(deposit).RootElement.GetProperty("id").GetString()!;
        var entry = await (await ledgerAsSaga.GetAsync(LedgerRoutes.Prefix + "transfers/" + depositId)).JsonAsync();
        Assert.Equal((depositId, 7L), (entry.GetProperty("transferId").GetString(), entry.GetProperty("amountMinor").GetInt64()));
        var asApi = await (await ledgerAsApi.GetAsync(LedgerRoutes.Prefix + "transfers/" + depositId)).JsonAsync();
        Assert.Equal(depositId, asApi.GetProperty("transferId").GetString());
        // A named 404: a bare one (a ledger without this route) is not taken for "no transfer" (HttpLedger).
        using var absent = await ledgerAsSaga.GetAsync(LedgerRoutes.Prefix + "transfers/never-applied-" + Guid.NewGuid().ToString("N"));
        Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);
        Assert.Equal(ProblemTypes.TransferNotFound, (await absent.JsonAsync()).GetProperty("type").GetString());
        var malformed = await ledgerAsSaga.GetAsync(LedgerRoutes.Prefix + "transfers/" + Uri.EscapeDataString("not valid!"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Equal(ProblemTypes.ValidationFailed, (await malformed.JsonAsync()).GetProperty("type").GetString());
    }

    [Fact]
    public async Task TheApi_MayOnlyDeposit_AndTheSaga_OnlyMoveMoneyThroughInTransit_WithNothingWrittenWhenRefused()
    {
        var alice = await OpenAsync();
        var bob = await OpenAsync();
        using var asApi = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Api), ServiceRoles.Api);
        using var asSaga = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Orchestrator), ServiceRoles.Orchestrator);
        var fundingBefore = await BalanceAsync(AccountId.ExternalFunding(Chf));
        var inTransitBefore = await BalanceAsync(AccountId.InTransit(Chf));

        // The API's one movement: a deposit from external funding.
        Assert.Equal(HttpStatusCode.OK, (await asApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(alice, 1_000)))).StatusCode);
        Assert.Equal(1_000, await BalanceAsync(AccountId.Parse(alice)));

        // Anything else the API asks is refused: customer to customer, out of in-transit, a hold, external funding as creditor.
        await AssertForbiddenAsync(await asApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Single(alice, bob, 400))));
        await AssertForbiddenAsync(await asApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Single(InTransit, bob, 400))));
        await AssertForbiddenAsync(await asApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Hold(alice, InTransit, 400))));
        await AssertForbiddenAsync(await asApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Single(alice, Funding, 400))));
        // Nor open an account with an overdraft: that is the operator's, set afterwards within the money limits.
        var overdrawn = $"od-{Guid.NewGuid():N}"[..20];
        await AssertForbiddenAsync(await asApi.PostAsync(LedgerRoutes.Prefix + "accounts", Json($$"""{"id":"{{overdrawn}}","currency":"CHF","overdraftLimitMinor":500}""")));
        Assert.Equal(HttpStatusCode.NotFound, (await asApi.GetAsync(LedgerRoutes.Prefix + "accounts/" + overdrawn)).StatusCode);
        // System accounts are not readable over the internal API.
        await AssertForbiddenAsync(await asApi.GetAsync(LedgerRoutes.Prefix + "accounts/" + Uri.EscapeDataString(Funding)));

        // The saga cannot mint money from external funding, pay a customer straight, or hold into a customer account.
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(bob, 500))));
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Single(alice, bob, 400))));
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Hold(alice, bob, 400))));
        // A batch with one forbidden transfer is refused whole.
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json(
            $$"""{"transfers":[{{Hold(alice, InTransit, 100)}},{{Deposit(bob, 100)}}]}""")));
        // Nor pay a customer out of in-transit: not alone, and in a batch only with the post of its own payment's hold
        // (a compromised orchestrator could otherwise credit anyone from in-transit, which has no limit).
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Single(InTransit, bob, 400))));
        var payment = $"pay_{Guid.NewGuid():N}"[..28];
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json(
            $$"""{"transfers":[{{Credit(payment + ":credit", bob, 400)}}]}""")));
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json(
            $$"""{"transfers":[{{Credit(payment + ":credit", bob, 400)}},{{Post(payment + ":post", "pay_other:hold")}}]}""")));
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json(
            $$"""{"transfers":[{{Credit(payment + ":refund", bob, 400)}},{{Post(payment + ":post", payment + ":hold")}}]}""")));
        // The client tells such a refusal from an outage (a review: every 4xx was "unavailable, retry", and a ledger
        // stricter than the API, its limits set apart, answered merchants 503 for ever): refused, with the ledger's type.
        var refusedByLedger = await Assert.ThrowsAsync<LedgerRefusedRequestException>(() => new Payments.Ledger.Client.HttpLedger(asApi).TransferAsync(
            new TransferRequest.Single(TransferId.Parse("t-" + Guid.NewGuid().ToString("N")), AccountId.Parse(alice), AccountId.Parse(bob), new Money(400, Currency.FromCode("CHF")), null)
            {
                IssuedAt = DateTimeOffset.UtcNow,
            }, CancellationToken.None));
        Assert.Equal((403, ProblemTypes.Forbidden), (refusedByLedger.Status, refusedByLedger.ProblemType));
        // Nor void a hold in a batch: only alone does the ledger bar a hold that has not arrived yet (a review).
        await AssertForbiddenAsync(await asSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json(
            $$"""{"transfers":[{{Void(payment + ":void", payment + ":hold")}}]}""")));
        // The saga's own shape passes: a hold into in-transit.
        Assert.Equal(HttpStatusCode.OK, (await asSaga.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Hold(alice, InTransit, 100, payment + ":hold")))).StatusCode);
        // The API reads deposits (to find a key's deposit), not the saga's transfers — and learns not even whether one
        // exists (a review: a 403 for an existing one, a 404 for a missing one, told a compromised API the saga's ids).
        var sagas = await asApi.GetAsync(LedgerRoutes.Prefix + "transfers/" + Uri.EscapeDataString(payment + ":hold"));
        var none = await asApi.GetAsync(LedgerRoutes.Prefix + "transfers/" + Uri.EscapeDataString(payment + ":nothing"));
        Assert.Equal((HttpStatusCode.NotFound, HttpStatusCode.NotFound), (sagas.StatusCode, none.StatusCode));
        Assert.Equal((await none.JsonAsync()).GetProperty("type").GetString(), (await sagas.JsonAsync()).GetProperty("type").GetString());
        // Its credit pays out exactly what its hold brought in: 400 out of a hold of 100 is refused with the batch.
        var overpaid = await asSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json(
            $$"""{"transfers":[{{Credit(payment + ":credit", bob, 400)}},{{Post(payment + ":post", payment + ":hold")}}]}"""));
        Assert.Equal(HttpStatusCode.OK, overpaid.StatusCode);
        Assert.Equal(LedgerError.UnfundedPayout, (await overpaid.JsonAsync()).GetProperty("transfers")[0].GetProperty("errorCode").GetString());

        // Nothing a refusal touched moved: only the deposit and the one hold happened.
        var aliceAccount = await system.Ledger.GetAccountAsync(AccountId.Parse(alice), CancellationToken.None);
        Assert.Equal(1_000, aliceAccount!.BalanceMinor);
        Assert.Equal(100, aliceAccount.PendingDebitMinor);
        Assert.Equal(0, await BalanceAsync(AccountId.Parse(bob)));

        // The saga's settle with the hold's own amount goes through.
        Assert.Equal(HttpStatusCode.OK, (await asSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json(
            $$"""{"transfers":[{{Credit(payment + ":credit", bob, 100)}},{{Post(payment + ":post", payment + ":hold")}}]}"""))).StatusCode);
        Assert.Equal(100, await BalanceAsync(AccountId.Parse(bob)));
        Assert.Equal(fundingBefore - 1_000, await BalanceAsync(AccountId.ExternalFunding(Chf)));
        Assert.Equal(inTransitBefore, await BalanceAsync(AccountId.InTransit(Chf)));
    }

    /// <summary>A caller's mistake, from an app allowed to call, gets problem+json with a stable type of ours — never a
    /// bodiless 400/404, a 403 for a wrong method or Content-Type, a 500, or .NET's exception text — and writes nothing.
    /// Found by probing the running services: each case below answered one of those before.</summary>
    [Fact]
    public async Task CallerMistakes_AtTheInternalServices_AreProblemJsonWithOurTypes()
    {
        await using var riskApp = await InProcessApp.StartRiskServiceAsync();
        using var ledgerAsApi = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Api), ServiceRoles.Api);
        using var ledgerAsSaga = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Orchestrator), ServiceRoles.Orchestrator);
        using var orchestrator = Client(system.OrchestratorAddress, Token(ServiceRoles.Orchestrator, ServiceRoles.Api), ServiceRoles.Api);
        using var risk = Client(new Uri(InProcessApp.BaseUrl(riskApp)), Token(ServiceRoles.Risk, ServiceRoles.Orchestrator), ServiceRoles.Orchestrator);
        var account = await OpenAsync();
        // A limit other than 0: a body without one was read as 0 and set.
        await system.Ledger.SetOverdraftLimitAsync(AccountId.Parse(account), 500, CancellationToken.None);
        var payment = "pay_" + Guid.NewGuid().ToString("N")[..24];
        var transfer = "t-" + Guid.NewGuid().ToString("N");

        (HttpResponseMessage Answer, HttpStatusCode Status, string Type)[] cases =
        [
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "accounts", Json("{bad")), HttpStatusCode.BadRequest, ProblemTypes.MalformedRequest),
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "accounts", Json("""{"id":5,"currency":"CHF"}""")), HttpStatusCode.BadRequest, ProblemTypes.MalformedRequest),
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "accounts", new StringContent("{}", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType, ProblemTypes.UnsupportedMediaType),
            // A plain body labelled gzip was read as JSON (a probe): compressed bodies are refused, as by the API.
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "accounts", Gzipped("""{"id":"gz1","currency":"CHF"}""")), HttpStatusCode.UnsupportedMediaType, ProblemTypes.UnsupportedMediaType),
            (await ledgerAsApi.DeleteAsync(LedgerRoutes.Prefix + "accounts/" + account), HttpStatusCode.MethodNotAllowed, ProblemTypes.MethodNotAllowed),
            (await ledgerAsApi.GetAsync(LedgerRoutes.Prefix + "accounts/nobody-" + Guid.NewGuid().ToString("N")), HttpStatusCode.NotFound, ProblemTypes.AccountNotFound),
            (await ledgerAsApi.GetAsync(LedgerRoutes.Prefix + "accounts/bad%20id"), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await ledgerAsApi.GetAsync("no/such/route"), HttpStatusCode.NotFound, ProblemTypes.NotFound),
            // A body without the limit was read as 0, and set it.
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "accounts/" + account + "/overdraft", Json("{}")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "accounts/" + account + "/overdraft", Json("""{"overdraftLimitMinor":"5"}""")), HttpStatusCode.BadRequest, ProblemTypes.MalformedRequest),
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json($$"""{"kind":"single","id":"{{transfer}}","debitAccountId":"{{account}}","creditAccountId":"{{Funding}}","amountMinor":1,"currency":"CHF","issuedAtUnixMs":99999999999999999}""")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json("""{"kind":"post","issuedAtUnixMs":1}""")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            // A field named twice was read as the last (a parser on the way may read the first).
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json($$"""{"kind":"single","kind":"void","id":"{{transfer}}","debitAccountId":"{{Funding}}","creditAccountId":"{{account}}","amountMinor":1,"currency":"CHF","issuedAtUnixMs":1}""")), HttpStatusCode.BadRequest, ProblemTypes.MalformedRequest),
            (await ledgerAsSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json("{}")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await ledgerAsSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json("""{"transfers":[null]}""")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await orchestrator.PostAsync(HttpPaymentWorkflows.Route + "/", Json("{}")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await orchestrator.PostAsync(HttpPaymentWorkflows.Route + "/", Json($$"""{"order":{"paymentId":"{{payment}}","merchantId":"m","debtorAccountId":"a b","creditorAccountId":"c","amountMinor":-1,"currency":"XXX"},"approvalTimeout":"00:10:00"}""")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            // A body without "approved" was a rejection nobody made.
            (await orchestrator.PostAsync(HttpPaymentWorkflows.Route + "/" + payment + "/approval", Json("{}")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            // A reviewer of 900 KB went into the saga's history (a probe).
            (await orchestrator.PostAsync(HttpPaymentWorkflows.Route + "/" + payment + "/approval", Json($$"""{"approved":true,"reviewer":"{{new string('R', 129)}}"}""")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await orchestrator.GetAsync(HttpPaymentWorkflows.Route + "/" + payment), HttpStatusCode.NotFound, ProblemTypes.PaymentNotFound),
            // A decision for a saga that does not exist was 202, and the development engine retried its orphan event
            // without end (a live probe). And a creation time the ledger cannot take left the payment pending for good.
            (await orchestrator.PostAsync(HttpPaymentWorkflows.Route + "/" + payment + "/approval", Json("""{"approved":true,"reviewer":"x"}""")), HttpStatusCode.NotFound, ProblemTypes.PaymentNotFound),
            (await orchestrator.PostAsync(HttpPaymentWorkflows.Route + "/", Json($$"""{"order":{"paymentId":"{{payment}}","merchantId":"m","debtorAccountId":"{{account}}","creditorAccountId":"other","amountMinor":1,"currency":"CHF"},"approvalTimeout":"00:10:00","createdAt":"0001-01-01T00:00:00Z"}""")), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await risk.PostAsync(RiskRoutes.Assess, Json("{bad")), HttpStatusCode.BadRequest, ProblemTypes.MalformedRequest),
            (await risk.PostAsync(RiskRoutes.Assess, Json(RiskRequest().Replace("\"paymentId\":\"", "\"paymentId\":\"" + new string('p', 300), StringComparison.Ordinal))), HttpStatusCode.BadRequest, ProblemTypes.ValidationFailed),
            (await risk.GetAsync(RiskRoutes.Assess), HttpStatusCode.MethodNotAllowed, ProblemTypes.MethodNotAllowed),
            // A charset .NET does not know threw while binding the body: 500 internal-error, a stack trace in the log.
            (await ledgerAsApi.PostAsync(LedgerRoutes.Prefix + "accounts/" + account + "/overdraft", Charset("""{"overdraftLimitMinor":7}""", "x-foo")),
                HttpStatusCode.UnsupportedMediaType, ProblemTypes.UnsupportedMediaType),
            (await risk.PostAsync(RiskRoutes.Assess, Charset(RiskRequest(), "\"utf-16\"")), HttpStatusCode.UnsupportedMediaType, ProblemTypes.UnsupportedMediaType),
            // Kestrel's default admitted 30 MB; no internal body comes near a MiB.
            (await PostExpectingContinueAsync(ledgerAsSaga, LedgerRoutes.Prefix + "batches", Json("{\"transfers\":[" + new string(' ', (int)ServiceIdentityExtensions.MaxRequestBodyBytes) + "]}")),
                HttpStatusCode.RequestEntityTooLarge, ProblemTypes.PayloadTooLarge),
        ];

        foreach (var (answer, status, type) in cases)
        {
            var body = await answer.Content.ReadAsStringAsync();
            var what = $"{answer.RequestMessage!.Method} {answer.RequestMessage.RequestUri!.PathAndQuery}: {(int)answer.StatusCode} {body}";
            Assert.True(answer.StatusCode == status, what);
            Assert.False(answer.Headers.Contains("Server"), what); // "Kestrel" said what serves
            Assert.True(answer.Content.Headers.ContentType?.MediaType == "application/problem+json", what);
            Assert.True((await answer.JsonAsync()).GetProperty("type").GetString() == type, what);
            Assert.DoesNotContain("(Parameter '", body, StringComparison.Ordinal);
            Assert.DoesNotContain("Actual value was", body, StringComparison.Ordinal);
        }

        Assert.Equal(500, (await system.Ledger.GetAccountAsync(AccountId.Parse(account), CancellationToken.None))!.OverdraftLimitMinor);
        Assert.Null(await system.Ledger.GetTransferAsync(TransferId.Parse(transfer), CancellationToken.None));
    }

    private static StringContent Charset(string body, string charset)
    {
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("application/json; charset=" + charset);
        return content;
    }

    /// <summary>The token <paramref name="caller"/> holds for <paramref name="target"/>; for a caller that does not call
    /// that target, the target's app token (what its sidecar would present; no direct caller is known by it).</summary>
    private static string Token(string target, string caller) =>
        InProcessApp.Identity.CallTokens.FirstOrDefault(call => call.Caller == caller && call.Target == target).Token
        ?? InProcessApp.Identity.Settings(target)[ServiceIdentityOptions.Section + ":AppToken"];

    private static HttpClient Client(Uri baseAddress, string? token, string caller)
    {
        var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Add(ServiceIdentityExtensions.TokenHeader, token);
        }

        client.DefaultRequestHeaders.Add(ServiceIdentityExtensions.CallerHeader, caller);
        return client;
    }

    /// <summary>Without a sidecar a caller is known by its token, not by the name it gives: one caller's token with
    /// another's name is still that caller. With one token shared by all callers, the orchestrator could name itself
    /// the API and deposit (make money), and the API name itself the orchestrator and send batches.</summary>
    [Fact]
    public async Task ACallerNamingItselfAnother_IsStillItself()
    {
        var alice = await OpenAsync();
        using var sagaAsApi = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Orchestrator), ServiceRoles.Api);
        using var apiAsSaga = Client(system.LedgerServiceAddress, Token(ServiceRoles.Ledger, ServiceRoles.Api), ServiceRoles.Orchestrator);

        await AssertForbiddenAsync(await sagaAsApi.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(alice, 1_000))));
        await AssertForbiddenAsync(await apiAsSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json($$"""{"transfers":[{{Deposit(alice, 1_000)}}]}""")));
        await AssertForbiddenAsync(await apiAsSaga.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Hold(alice, InTransit, 100))));
        Assert.Equal(0, await BalanceAsync(AccountId.Parse(alice)));
        // The refusal names who the token proves, not the name given: it blamed the orchestrator (a live probe).
        using var batches = await apiAsSaga.PostAsync(LedgerRoutes.Prefix + "batches", Json("""{"transfers":[]}"""));
        var detail = (await batches.JsonAsync()).GetProperty("detail").GetString();
        Assert.StartsWith($"The {ServiceRoles.Api} role may not call", detail, StringComparison.Ordinal);
    }

    /// <summary>A body the service refuses unread (its length is over the bound): with Expect: 100-continue the client
    /// sends it only if asked, so it reads the 413 instead of writing into a connection the server closed (a broken
    /// pipe, some runs, when the body went out at once).</summary>
    private static async Task<HttpResponseMessage> PostExpectingContinueAsync(HttpClient client, string path, HttpContent content)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.ExpectContinue = true;
        return await client.SendAsync(request);
    }

    private static async Task AssertUnauthorizedAsync(HttpResponseMessage answer)
    {
        Assert.Equal(HttpStatusCode.Unauthorized, answer.StatusCode);
        Assert.Equal(ProblemTypes.Unauthorized, (await answer.JsonAsync()).GetProperty("type").GetString());
    }

    private static async Task AssertForbiddenAsync(HttpResponseMessage answer)
    {
        Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
        Assert.Equal(ProblemTypes.Forbidden, (await answer.JsonAsync()).GetProperty("type").GetString());
    }

    private async Task<string> OpenAsync()
    {
        var id = AccountId.Parse($"si-{Guid.NewGuid():N}");
        Assert.IsType<OpenAccountOutcome.Opened>(await system.Ledger.OpenAccountAsync(id, Chf, 0, CancellationToken.None));
        return id.Value;
    }

    private async Task<long> BalanceAsync(AccountId account) =>
        (await system.Ledger.GetAccountAsync(account, CancellationToken.None))?.BalanceMinor ?? 0;

    private static string Deposit(string account, long amount) => Single(Funding, account, amount);

    private static string Single(string debit, string credit, long amount) =>
        $$"""{"kind":"single","id":"t-{{Guid.NewGuid():N}}","debitAccountId":"{{debit}}","creditAccountId":"{{credit}}","amountMinor":{{amount}},"currency":"CHF","issuedAtUnixMs":{{Now}}}""";

    private static string Credit(string id, string credit, long amount) =>
        $$"""{"kind":"single","id":"{{id}}","debitAccountId":"{{InTransit}}","creditAccountId":"{{credit}}","amountMinor":{{amount}},"currency":"CHF","issuedAtUnixMs":{{Now}}}""";

    private static string Post(string id, string hold) =>
        $$"""{"kind":"post","id":"{{id}}","pendingId":"{{hold}}","issuedAtUnixMs":{{Now}}}""";

    private static string Void(string id, string hold) =>
        $$"""{"kind":"void","id":"{{id}}","pendingId":"{{hold}}","issuedAtUnixMs":{{Now}}}""";

    private static string Hold(string debit, string credit, long amount, string? id = null) =>
        $$"""{"kind":"pending","id":"{{id ?? $"t-{Guid.NewGuid():N}"}}","debitAccountId":"{{debit}}","creditAccountId":"{{credit}}","amountMinor":{{amount}},"currency":"CHF","timeoutMs":60000,"issuedAtUnixMs":{{Now}}}""";

    private static StringContent Gzipped(string json)
    {
        var content = new StringContent(json, Encoding.UTF8, "application/json");
        content.Headers.ContentEncoding.Add("gzip");
        return content;
    }

    private static string RiskRequest() =>
        """{"paymentId":"p-1","debtorAccountId":"a1","creditorAccountId":"b1","amountMinor":100,"currency":"CHF"}""";

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
    /// <summary>A fault probe: with the workflow engine's sidecar gone, a start was an unhandled exception with its stack
    /// trace and a 500 (34 in a three-minute outage). It is a 503 problem the API retries or leaves to the sweeper.</summary>
    [Fact]
    public async Task AStart_WithTheWorkflowEngineAway_Is503Problem()
    {
        var sidecar = new SidecarProcess();
        await sidecar.InitializeAsync();
        var worker = await SagaWorker.StartAsync(sidecar, system.EtcdCluster, ApiSystemFixture.KeyPrefix, system.LedgerServiceAddress.ToString(), 1_000_000);
        try
        {
            await sidecar.DisposeAsync(); // the engine away
            using var client = Client(new Uri(InProcessApp.BaseUrl(worker)), Token(ServiceRoles.Orchestrator, ServiceRoles.Api), ServiceRoles.Api);
            var input = new Payments.Orchestrator.Client.Models.PaymentInput(
                new Payments.Orchestrator.Client.Models.PaymentOrder($"pay_{Guid.NewGuid():N}"[..28], "merchant-away", "acct-d", "acct-c", 100, "USD", null),
                TimeSpan.FromMinutes(5), CreatedAt: DateTimeOffset.UtcNow);

            using var response = await client.PostAsync(HttpPaymentWorkflows.Route, Json(System.Text.Json.JsonSerializer.Serialize(input, System.Text.Json.JsonSerializerOptions.Web)));

            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal(ProblemTypes.ServiceUnavailable, (await response.JsonAsync()).GetProperty("type").GetString());
        }
        finally
        {
            await SagaWorker.StopAsync(worker);
        }
    }

}
