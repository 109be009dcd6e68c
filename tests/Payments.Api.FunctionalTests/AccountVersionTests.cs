using System.Net;
using System.Net.Http.Json;
using Payments.Merchants;

namespace Payments.Api.FunctionalTests;

/// <summary>An account's <c>version</c> counts that account's changes and nothing else. It was the record's etcd mod
/// revision, the cluster's count of all writes: a merchant polling its own account read every other tenant's write
/// rate off the difference between two versions.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class AccountVersionTests(ApiSystemFixture system)
{
    [Fact]
    public async Task AnAccountsVersion_CountsItsOwnChanges_WhateverOthersWrite()
    {
        using var watcher = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        using var other = await system.NewMerchantClientAsync([.. ApiScopes.Default]);
        var account = $"acct-{Guid.NewGuid():N}"[..20];
        var opened = await watcher.PostAsJsonAsync("/v1/accounts", new { accountId = account, currency = "EUR" });
        Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
        Assert.Equal(1, (await opened.JsonAsync()).GetProperty("version").GetInt64());

        for (var change = 2; change <= 4; change++)
        {
            // Another merchant writes in between: it must not show in this account's version.
            await other.OpenAccountAsync($"acct-{Guid.NewGuid():N}"[..20], "EUR", fundsMinor: 100);
            var deposit = await watcher.SendJsonAsync($"/v1/accounts/{account}/deposits", "{\"amountMinor\":100,\"currency\":\"EUR\"}", Guid.NewGuid().ToString());
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
            var read = await (await watcher.GetAsync("/v1/accounts/" + account)).JsonAsync();
            Assert.Equal(change, read.GetProperty("version").GetInt64());
        }
    }
}
