using System.Net;
using System.Net.Http.Json;
using Payments.Domain;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>The finding: account ids were one namespace for all merchants, first come first served. A merchant could
/// take the ids another would use (its opening then failed with 409) and learn from that 409 which ids others used.
/// Now each merchant's ids are its own: the first to open an id keeps it as its ledger id (as before), any other's
/// lives at <c>{merchant}~{id}</c>, and every answer shows the merchant's own id.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class AccountNamespaceTests(ApiSystemFixture system)
{
    [Fact]
    public async Task TwoMerchants_UseTheSameAccountIds_EachSeesOnlyItsOwn_AndTheirMoneyNeverMixes()
    {
        var firstMerchant = MerchantKeysTests.NewMerchantId();
        var secondMerchant = MerchantKeysTests.NewMerchantId();
        var first = await system.ClientForAsync(firstMerchant, [.. ApiScopes.Default]);
        var second = await system.ClientForAsync(secondMerchant, [.. ApiScopes.Default]);
        var debtor = $"shared-{Guid.NewGuid():N}"[..24];
        var creditor = debtor + "-c";

        await first.OpenAccountAsync(debtor, "USD", fundsMinor: 1_000);
        await first.OpenAccountAsync(creditor, "USD");
        // The same ids, taken already: opened all the same, in another currency too, so nothing shows they were taken.
        var opened = await second.PostAsJsonAsync("/v1/accounts", new { accountId = debtor, currency = "EUR" });
        Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
        Assert.Equal(debtor, (await opened.JsonAsync()).GetProperty("accountId").GetString());
        await second.SendJsonAsync("/v1/accounts/" + debtor + "/deposits", "{\"amountMinor\":700,\"currency\":\"EUR\"}", "fund-1");
        await second.OpenAccountAsync(creditor, "EUR");

        // Its own account again with the same fields is the same account; with other fields a 409, as before.
        Assert.Equal(HttpStatusCode.Created, (await second.PostAsJsonAsync("/v1/accounts", new { accountId = debtor, currency = "EUR" })).StatusCode);
        var conflict = await second.PostAsJsonAsync("/v1/accounts", new { accountId = debtor, currency = "USD" });
        Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
        Assert.EndsWith("/account-exists", (await conflict.JsonAsync()).GetProperty("type").GetString());

        var firstPayment = (await (await first.PayAsync(debtor, creditor, 300)).JsonAsync()).GetProperty("paymentId").GetString()!;
        var secondPayment = (await (await second.PayAsync(debtor, creditor, 200, currency: "EUR")).JsonAsync()).GetProperty("paymentId").GetString()!;
        var firstDone = await first.WaitForStatusAsync(firstPayment);
        var secondDone = await second.WaitForStatusAsync(secondPayment);

        Assert.Equal("completed", firstDone.GetProperty("status").GetString());
        Assert.Equal("completed", secondDone.GetProperty("status").GetString());
        Assert.Equal((debtor, creditor), (secondDone.GetProperty("debtorAccountId").GetString(), secondDone.GetProperty("creditorAccountId").GetString()));
        var firstDebtor = await (await first.GetAsync("/v1/accounts/" + debtor)).JsonAsync();
        var secondDebtor = await (await second.GetAsync("/v1/accounts/" + debtor)).JsonAsync();
        Assert.Equal(("USD", 700L, debtor), (firstDebtor.GetProperty("currency").GetString(), firstDebtor.GetProperty("balanceMinor").GetInt64(), firstDebtor.GetProperty("accountId").GetString()));
        Assert.Equal(("EUR", 500L, debtor), (secondDebtor.GetProperty("currency").GetString(), secondDebtor.GetProperty("balanceMinor").GetInt64(), secondDebtor.GetProperty("accountId").GetString()));
        Assert.Equal(300, await first.BalanceAsync(creditor));
        Assert.Equal(200, await second.BalanceAsync(creditor));

        // In the ledger: the first merchant holds the plain ids, the second its namespaced ones.
        Assert.Equal(700, (await system.Ledger.GetAccountAsync(AccountId.Parse(debtor), CancellationToken.None))!.BalanceMinor);
        var namespaced = AccountId.OfMerchant(secondMerchant, AccountId.Parse(debtor));
        Assert.Equal(500, (await system.Ledger.GetAccountAsync(namespaced, CancellationToken.None))!.BalanceMinor);

        // The webhook event shows the merchant's own ids too.
        var events = await (await second.GetAsync("/v1/events?limit=100")).JsonAsync();
        var completed = events.GetProperty("data").EnumerateArray().Single(e => e.GetProperty("data").GetProperty("paymentId").GetString() == secondPayment);
        Assert.Equal(debtor, completed.GetProperty("data").GetProperty("debtorAccountId").GetString());
    }

    /// <summary>Keys issued before merchant ids were checked name their merchant as written then (say with a '.'),
    /// which cannot name a namespace: such a merchant keeps first come, first served (409 for an id another holds),
    /// and everything else works as for any merchant.</summary>
    [Fact]
    public async Task AMerchantIdFromBeforeIdsWereChecked_KeepsFirstComeFirstServed()
    {
        var (_, key) = await LegacyKeyAsync();
        using var legacy = system.AnonymousClient();
        legacy.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        var other = await system.NewMerchantClientAsync();
        var debtor = $"l-{Guid.NewGuid():N}"[..24];
        var taken = $"t-{Guid.NewGuid():N}"[..24];
        await other.OpenAccountAsync(taken);

        await legacy.OpenAccountAsync(debtor, fundsMinor: 500);
        await legacy.OpenAccountAsync(debtor + "-c");
        using var refused = await legacy.PostAsJsonAsync("/v1/accounts", new { accountId = taken, currency = "USD" });
        var paymentId = (await (await legacy.PayAsync(debtor, debtor + "-c", 200)).JsonAsync()).GetProperty("paymentId").GetString()!;

        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("completed", (await legacy.WaitForStatusAsync(paymentId)).GetProperty("status").GetString());
        Assert.Equal(200, await legacy.BalanceAsync(debtor + "-c"));
    }

    /// <summary>Such a key is in no merchant's index (the rewrite of legacy keys cannot index its merchant's id): the
    /// operator's routes, which name a key by merchant and id, could neither list, rotate nor revoke it, and a leaked
    /// one stayed valid for ever. The operator revokes it by the key itself, and the replica stops taking it.</summary>
    [Fact]
    public async Task AKeyInNoMerchantsIndex_IsRevokedByTheKeyItself_AndStopsWorking()
    {
        var (legacyMerchant, key) = await LegacyKeyAsync();
        using var legacy = system.AnonymousClient();
        legacy.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        using var admin = MerchantKeysTests.Admin(system.BaseAddress);
        Assert.Equal(HttpStatusCode.NotFound, (await legacy.GetAsync("/v1/accounts/any")).StatusCode); // the key works
        var byMerchant = $"/admin/v1/merchants/{legacyMerchant}/keys/{MerchantStore.LegacyKeyId(MerchantStore.Hash(key))}";
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync(byMerchant)).StatusCode);

        using var revoked = await admin.PostAsJsonAsync("/admin/v1/keys/revoke", new { apiKey = key + "\n" }); // as pasted: read as a request's key is

        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while ((await legacy.GetAsync("/v1/accounts/any")).StatusCode != HttpStatusCode.Unauthorized)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(20), "the revoked key still works");
            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }

        using var again = await admin.PostAsJsonAsync("/admin/v1/keys/revoke", new { apiKey = key });
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal(Payments.Domain.ProblemTypes.ApiKeyNotFound, (await again.JsonAsync()).GetProperty("type").GetString());
        using var none = await admin.PostAsJsonAsync("/admin/v1/keys/revoke", new { });
        Assert.Equal(HttpStatusCode.BadRequest, none.StatusCode);
    }

    /// <summary>A key as versions before key records stored it (the merchant id alone under its hash), for a merchant
    /// whose id predates the id check.</summary>
    private async Task<(string Merchant, string Key)> LegacyKeyAsync()
    {
        var merchant = $"legacy.{Guid.NewGuid():N}";
        var key = $"dp_{Guid.NewGuid():N}{Guid.NewGuid():N}";
        await system.Etcd.Client.PutAsync(ApiSystemFixture.KeyPrefix + "api/merchant-keys/" + MerchantStore.Hash(key), merchant);
        return (merchant, key);
    }

    [Fact]
    public async Task TheOperator_SetsAnOverdraft_ByMerchantAndItsOwnAccountId()
    {
        var firstMerchant = MerchantKeysTests.NewMerchantId();
        var secondMerchant = MerchantKeysTests.NewMerchantId();
        var first = await system.ClientForAsync(firstMerchant, [.. ApiScopes.Default]);
        var second = await system.ClientForAsync(secondMerchant, [.. ApiScopes.Default]);
        var id = $"od-{Guid.NewGuid():N}"[..24];
        await first.OpenAccountAsync(id);
        await second.OpenAccountAsync(id);
        using var admin = MerchantKeysTests.Admin(system.BaseAddress);

        using var set = await admin.PutAsJsonAsync($"/admin/v1/merchants/{secondMerchant}/accounts/{id}/overdraft", new { overdraftLimitMinor = 250 });
        using var missing = await admin.PutAsJsonAsync($"/admin/v1/merchants/{secondMerchant}/accounts/{id}-x/overdraft", new { overdraftLimitMinor = 250 });

        // A bad body is 400 whichever account it names, on both routes: the body is checked before the account.
        using var negativeOnMissing = await admin.PutAsJsonAsync($"/admin/v1/merchants/{secondMerchant}/accounts/{id}-x/overdraft", new { overdraftLimitMinor = -1 });
        using var absentOnMissing = await admin.PutAsJsonAsync("/admin/v1/accounts/no-such-account/overdraft", new { });

        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, negativeOnMissing.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, absentOnMissing.StatusCode);
        Assert.Equal(0, (await system.Ledger.GetAccountAsync(AccountId.Parse(id), CancellationToken.None))!.OverdraftLimitMinor);
        var namespaced = AccountId.OfMerchant(secondMerchant, AccountId.Parse(id));
        Assert.Equal(250, (await system.Ledger.GetAccountAsync(namespaced, CancellationToken.None))!.OverdraftLimitMinor);
        // The ledger id works on the operator's other route.
        using var byLedgerId = await admin.PutAsJsonAsync($"/admin/v1/accounts/{namespaced.Value}/overdraft", new { overdraftLimitMinor = 300 });
        Assert.Equal(HttpStatusCode.OK, byLedgerId.StatusCode);
        Assert.Equal(300, (await system.Ledger.GetAccountAsync(namespaced, CancellationToken.None))!.OverdraftLimitMinor);

        // What is missing is named: a merchant that does not exist, or an account the ledger does not have (this route
        // names no merchant, so "for this merchant" sent operators looking in the wrong place).
        using var noMerchant = await admin.PutAsJsonAsync($"/admin/v1/merchants/nobody-{Guid.NewGuid():N}"[..40] + $"/accounts/{id}/overdraft", new { overdraftLimitMinor = 250 });
        Assert.Equal(HttpStatusCode.NotFound, noMerchant.StatusCode);
        Assert.Equal(ProblemTypes.MerchantNotFound, (await noMerchant.JsonAsync()).GetProperty("type").GetString());
        using var noAccount = await admin.PutAsJsonAsync("/admin/v1/accounts/no-such-account/overdraft", new { overdraftLimitMinor = 250 });
        Assert.Equal(HttpStatusCode.NotFound, noAccount.StatusCode);
        Assert.Equal("The ledger has no account 'no-such-account'.", (await noAccount.JsonAsync()).GetProperty("detail").GetString());
    }
}
