using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.ServiceDefaults.Security;
using Payments.Testing;

namespace Payments.Api.FunctionalTests;

/// <summary>The ledger service's internal API over real HTTP: a transfer must name when it was issued (the ledger
/// forgets transfer ids after its replay window, ADR 0004), and one issued before the window is refused, not applied.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class LedgerServiceTests(ApiSystemFixture system)
{
    /// <summary>The finding: any 404 to GET accounts/{id} read as "no such account", so a route or a sidecar that is
    /// not the ledger's (a rollout, a misrouted invocation) made the saga fail a valid payment as account-not-found.
    /// Only the ledger's own typed answer means missing; a bare 404 is a fault, retried.</summary>
    [Fact]
    public async Task ABare404_IsNoAnswer_OnlyTheLedgersOwnNotFoundMeansMissing()
    {
        var notTheLedger = await StartBare404ServerAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(notTheLedger.Urls.First() + "/") };
            var ledger = new Payments.Ledger.Client.HttpLedger(http);

            await Assert.ThrowsAsync<LedgerUnavailableException>(() => ledger.GetAccountAsync(AccountId.Parse("someone"), CancellationToken.None));
            await Assert.ThrowsAsync<LedgerUnavailableException>(() => ledger.GetTransferAsync(TransferId.Parse("t-someone"), CancellationToken.None));

            // The ledger service's own answer for an account it does not have is still "none".
            using var toLedger = new HttpClient { BaseAddress = new Uri(system.LedgerServiceAddress, "/") };
            InProcessApp.Identity.Present(toLedger, ServiceRoles.Api, ServiceRoles.Ledger);
            Assert.Null(await new Payments.Ledger.Client.HttpLedger(toLedger).GetAccountAsync(AccountId.Parse($"missing-{Guid.NewGuid():N}"), CancellationToken.None));
        }
        finally
        {
            await InProcessApp.StopAsync(notTheLedger);
        }
    }

    /// <summary>The orchestrator client likewise: only the orchestrator's own "no saga" (payment-not-found) means none.
    /// A decision for a payment without a saga (lost in a takeover, purged) is then no fault: the API recorded it on the
    /// payment first, and the sweeper's resumed run follows it (the orchestrator used to answer 202 and raise it nowhere).</summary>
    [Fact]
    public async Task ABare404_IsNoAnswerFromTheOrchestratorEither_ItsOwnNoSagaIsNone()
    {
        var notTheOrchestrator = await StartBare404ServerAsync();
        var nobody = "pay_" + Guid.NewGuid().ToString("N")[..24];
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(notTheOrchestrator.Urls.First() + "/") };
            var stranger = new Payments.Orchestrator.Client.Gateway.HttpPaymentWorkflows(http);
            await Assert.ThrowsAsync<HttpRequestException>(() => stranger.GetAsync(nobody, CancellationToken.None));
            await Assert.ThrowsAsync<HttpRequestException>(() =>
                stranger.RaiseApprovalAsync(nobody, new Payments.Orchestrator.Client.Models.ApprovalDecision(true, "k"), CancellationToken.None));

            using var toOrchestrator = new HttpClient { BaseAddress = new Uri(system.OrchestratorAddress, "/") };
            InProcessApp.Identity.Present(toOrchestrator, ServiceRoles.Api, ServiceRoles.Orchestrator);
            var orchestrator = new Payments.Orchestrator.Client.Gateway.HttpPaymentWorkflows(toOrchestrator);
            Assert.Null(await orchestrator.GetAsync(nobody, CancellationToken.None));
            await orchestrator.RaiseApprovalAsync(nobody, new Payments.Orchestrator.Client.Models.ApprovalDecision(true, "k"), CancellationToken.None);
        }
        finally
        {
            await InProcessApp.StopAsync(notTheOrchestrator);
        }
    }

    [Fact]
    public async Task ATransferWithoutItsIssueTime_Is400ProblemJson_AndAStaleOne_IsRefused_WithNothingWritten()
    {
        var (client, account) = await LedgerClientWithAccountAsync(ServiceRoles.Api, "ls");
        using var _ = client;
        var funding = AccountId.ExternalFunding(Currency.Eur).Value;

        var missing = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(
            $$"""{"kind":"single","id":"t-{{Guid.NewGuid():N}}","debitAccountId":"{{funding}}","creditAccountId":"{{account.Value}}","amountMinor":5,"currency":"EUR"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        var problem = await missing.JsonAsync();
        Assert.Equal(ProblemTypes.ValidationFailed, problem.GetProperty("type").GetString());
        Assert.Contains("issuedAtUnixMs is required", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var eightDaysAgo = DateTimeOffset.UtcNow.AddDays(-8).ToUnixTimeMilliseconds();
        var stale = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(
            $$"""{"kind":"single","id":"t-{{Guid.NewGuid():N}}","debitAccountId":"{{funding}}","creditAccountId":"{{account.Value}}","amountMinor":5,"currency":"EUR","issuedAtUnixMs":{{eightDaysAgo}}}"""));
        Assert.Equal(HttpStatusCode.OK, stale.StatusCode);
        var outcome = await stale.JsonAsync();
        Assert.False(outcome.GetProperty("applied").GetBoolean());
        Assert.Equal(LedgerError.TransferTooOld, outcome.GetProperty("errorCode").GetString());
        Assert.Equal(0, (await system.Ledger.GetAccountAsync(account, CancellationToken.None))!.BalanceMinor);
    }

    /// <summary>The API checks an overdraft limit against the currency's maximum; the ledger now does too, so a
    /// compromised API pod cannot give an account any overdraft it likes and pay from it (money out of nothing).</summary>
    [Fact]
    public async Task AnOverdraftAboveTheCurrencysMaximum_IsRefusedByTheLedgerItself_AndTheLimitStays()
    {
        var (client, account) = await LedgerClientWithAccountAsync(ServiceRoles.Api, "od");
        using var _ = client;
        var maximum = new MoneyLimits().For(Currency.Eur).MaxOverdraftMinor;

        var tooMuch = await client.PostAsync(LedgerRoutes.Prefix + $"accounts/{account.Value}/overdraft", Json($$"""{"overdraftLimitMinor":{{long.MaxValue}}}"""));
        Assert.Equal(HttpStatusCode.Forbidden, tooMuch.StatusCode);
        Assert.Equal("application/problem+json", tooMuch.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, (await system.Ledger.GetAccountAsync(account, CancellationToken.None))!.OverdraftLimitMinor);

        var allowed = await client.PostAsync(LedgerRoutes.Prefix + $"accounts/{account.Value}/overdraft", Json($$"""{"overdraftLimitMinor":{{maximum}}}"""));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(maximum, (await system.Ledger.GetAccountAsync(account, CancellationToken.None))!.OverdraftLimitMinor);
    }

    /// <summary>Found by a probe: a hold's timeout of long.MinValue answered 400 with .NET's own "TimeSpan overflowed"
    /// message. Any timeout of 0 or less is the ledger's invalid-timeout outcome, in its own words.</summary>
    [Fact]
    public async Task AHoldWithTheMostNegativeTimeout_IsTheLedgersInvalidTimeout_NotDotNetsOverflow()
    {
        var (client, account) = await LedgerClientWithAccountAsync(ServiceRoles.Orchestrator, "lt");
        using var _ = client;
        var inTransit = AccountId.InTransit(Currency.Eur).Value;

        var hold = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(
            $$"""{"kind":"pending","id":"t-{{Guid.NewGuid():N}}","debitAccountId":"{{account.Value}}","creditAccountId":"{{inTransit}}","amountMinor":5,"currency":"EUR","timeoutMs":{{long.MinValue}},"issuedAtUnixMs":{{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}}}"""));
        var body = await hold.Content.ReadAsStringAsync();
        Assert.True(hold.StatusCode == HttpStatusCode.OK, body);
        Assert.DoesNotContain("overflow", body, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(LedgerError.InvalidTimeout, (await hold.JsonAsync()).GetProperty("errorCode").GetString());
    }

    /// <summary>Found by a probe: the route checked the maximum on a read before its write, and skipped it when the
    /// account did not exist yet; an open racing the set (the API's token does both) gave a new account 2^63 − 1 in
    /// 1–7 of 30 tries. The maximum is judged on the record the write compares: an account that exists by the write is
    /// checked, and one that does not is not found.</summary>
    [Fact]
    public async Task AnOverdraftRacingTheAccountsOpening_NeverPassesTheMaximum()
    {
        const int Rounds = 10;
        const int SetsPerRound = 8;
        using var client = new HttpClient { BaseAddress = system.LedgerServiceAddress };
        InProcessApp.Identity.Present(client, ServiceRoles.Api, ServiceRoles.Ledger);
        var maximum = new MoneyLimits().For(Currency.Eur).MaxOverdraftMinor;
        for (var round = 0; round < Rounds; round++)
        {
            var account = AccountId.Parse($"odr-{Guid.NewGuid():N}");
            var sets = Enumerable.Range(0, SetsPerRound).Select(_ =>
                client.PostAsync(LedgerRoutes.Prefix + $"accounts/{account.Value}/overdraft", Json($$"""{"overdraftLimitMinor":{{long.MaxValue}}}"""))).ToList();
            var open = client.PostAsync(LedgerRoutes.Prefix + "accounts", Json($$"""{"id":"{{account.Value}}","currency":"EUR"}"""));
            foreach (var response in await Task.WhenAll([.. sets, open]))
            {
                Assert.NotEqual(HttpStatusCode.InternalServerError, response.StatusCode);
                response.Dispose();
            }

            Assert.InRange((await system.Ledger.GetAccountAsync(account, CancellationToken.None))!.OverdraftLimitMinor, 0, maximum);
        }

        // The check itself, on an account that exists: refused with nothing changed.
        var existing = AccountId.Parse($"odr-{Guid.NewGuid():N}");
        Assert.IsType<OpenAccountOutcome.Opened>(await system.Ledger.OpenAccountAsync(existing, Currency.Eur, 0, CancellationToken.None));
        var refused = Assert.IsType<SetOverdraftOutcome.Failed>(
            await system.Ledger.SetOverdraftLimitAsync(existing, maximum + 1, _ => maximum, CancellationToken.None));
        Assert.Equal(LedgerError.OverdraftAboveMaximum, refused.Error.Code);
        Assert.Equal(0, (await system.Ledger.GetAccountAsync(existing, CancellationToken.None))!.OverdraftLimitMinor);
    }

    /// <summary>The findings (a live probe with the API's token): a deposit above the currency's maximum — which only
    /// the API checked — was applied (a handful exhaust a currency's external funding bound), and a reference of a
    /// megabyte was stored (a few thousand fill etcd's quota). The ledger refuses both itself, writing nothing.</summary>
    [Fact]
    public async Task ADepositAboveTheMaximum_AndAnOversizedReference_AreRefusedByTheLedgerItself_WithNothingWritten()
    {
        var (client, account) = await LedgerClientWithAccountAsync(ServiceRoles.Api, "dl");
        using var _ = client;
        var funding = AccountId.ExternalFunding(Currency.Eur).Value;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var maximum = new MoneyLimits().For(Currency.Eur).MaxDepositMinor;
        string Deposit(long amount, string reference) =>
            $$"""{"kind":"single","id":"dep-{{Guid.NewGuid():N}}","debitAccountId":"{{funding}}","creditAccountId":"{{account.Value}}","amountMinor":{{amount}},"currency":"EUR","reference":"{{reference}}","issuedAtUnixMs":{{now}}}""";

        using var tooMuch = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(maximum + 1, "d")));
        Assert.Equal(HttpStatusCode.Forbidden, tooMuch.StatusCode);
        Assert.Equal(ProblemTypes.Forbidden, (await tooMuch.JsonAsync()).GetProperty("type").GetString());
        using var tooLong = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(1, new string('r', LedgerWire.MaxReferenceLength + 1))));
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal(ProblemTypes.ValidationFailed, (await tooLong.JsonAsync()).GetProperty("type").GetString());
        Assert.Equal(0, (await system.Ledger.GetAccountAsync(account, CancellationToken.None))!.BalanceMinor);

        using var allowed = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(maximum, new string('r', LedgerWire.MaxReferenceLength))));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(maximum, (await system.Ledger.GetAccountAsync(account, CancellationToken.None))!.BalanceMinor);
    }

    /// <summary>A review's finding: the API replays a deposit the ledger applied "whatever the limits say now", but
    /// the ledger refused one above today's maximum (a limit lowered since) before it looked for the deposit, so
    /// every retry of it was a 5xx. The ledger replays it; a new deposit above the maximum is still refused.</summary>
    [Fact]
    public async Task ADepositAppliedBeforeItsMaximumWasLowered_IsReplayed_ButANewOneAboveItIsRefused()
    {
        var (client, account) = await LedgerClientWithAccountAsync(ServiceRoles.Api, "dr");
        using var _ = client;
        var funding = AccountId.ExternalFunding(Currency.Eur);
        var now = DateTimeOffset.UtcNow;
        var above = new MoneyLimits().For(Currency.Eur).MaxDepositMinor + 1;
        var applied = TransferId.Parse($"dep-{Guid.NewGuid():N}");
        // Applied when the maximum was higher (the ledger library itself has no caller policy).
        Assert.IsType<TransferOutcome.Applied>(await system.Ledger.TransferAsync(
            new TransferRequest.Single(applied, funding, account, new Money(above, Currency.Eur), "deposit") { IssuedAt = now }, CancellationToken.None));
        string Deposit(TransferId id) =>
            $$"""{"kind":"single","id":"{{id.Value}}","debitAccountId":"{{funding.Value}}","creditAccountId":"{{account.Value}}","amountMinor":{{above}},"currency":"EUR","reference":"deposit","issuedAtUnixMs":{{now.ToUnixTimeMilliseconds()}}}""";

        using var retried = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(applied)));
        using var another = await client.PostAsync(LedgerRoutes.Prefix + "transfers", Json(Deposit(TransferId.Parse($"dep-{Guid.NewGuid():N}"))));

        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, another.StatusCode);
        Assert.Equal(above, (await system.Ledger.GetAccountAsync(account, CancellationToken.None))!.BalanceMinor);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>A server on a free loopback port with no routes: every request is a bodiless 404, as from a route or a
    /// sidecar that is not the service asked.</summary>
    private static async Task<WebApplication> StartBare404ServerAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var server = builder.Build();
        await server.StartAsync();
        return server;
    }

    /// <summary>A client of the ledger service presenting <paramref name="caller"/>'s identity, and a new EUR account.</summary>
    private async Task<(HttpClient Client, AccountId Account)> LedgerClientWithAccountAsync(string caller, string prefix)
    {
        var client = new HttpClient { BaseAddress = system.LedgerServiceAddress };
        InProcessApp.Identity.Present(client, caller, ServiceRoles.Ledger);
        var account = AccountId.Parse($"{prefix}-{Guid.NewGuid():N}");
        Assert.IsType<OpenAccountOutcome.Opened>(await system.Ledger.OpenAccountAsync(account, Currency.Eur, 0, CancellationToken.None));
        return (client, account);
    }
}
