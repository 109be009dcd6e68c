using System.Net;
using Payments.Domain;
using Payments.Ledger.Contracts;

namespace Payments.Api.FunctionalTests;

/// <summary>Issue 14 item 3: a payment's account checks read owner and currency from the API's own records in one
/// etcd read, instead of asking the ledger service about each account. Accounts opened before the currency was
/// recorded still work: the ledger is asked once, and the answer recorded.</summary>
[Collection(ApiSystemCollection.Name)]
public sealed class AccountFactsTests(ApiSystemFixture system)
{
    [Fact]
    public async Task AnAccountOpenedBeforeCurrenciesWereRecorded_IsAskedOfTheLedgerOnce_ThenReadFromTheRecord()
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        using var client = await system.ClientForAsync(merchant);
        await client.OpenAccountAsync($"{merchant}-d", "EUR", fundsMinor: 10_000);
        // As an earlier version left it: claimed and opened, no currency recorded.
        var older = AccountId.Parse($"{merchant}-old");
        await system.Store.ClaimAccountAsync(older.Value, merchant, null, long.MaxValue, CancellationToken.None);
        Assert.IsType<OpenAccountOutcome.Opened>(await system.Ledger.OpenAccountAsync(older, Currency.Eur, 0, CancellationToken.None));
        Assert.Null((await system.Store.AccountFactsAsync([older.Value], CancellationToken.None))[0].Currency);

        using var paid = await client.PayAsync($"{merchant}-d", older.Value, 100, currency: "EUR");
        Assert.Equal(HttpStatusCode.Accepted, paid.StatusCode);
        Assert.Equal("EUR", (await system.Store.AccountFactsAsync([older.Value], CancellationToken.None))[0].Currency);
        Assert.Equal("completed", (await client.WaitForStatusAsync((await paid.JsonAsync()).GetProperty("paymentId").GetString()!)).GetProperty("status").GetString());

        using var wrongCurrency = await client.PayAsync($"{merchant}-d", older.Value, 100, currency: "USD");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, wrongCurrency.StatusCode);
        Assert.EndsWith("/currency-mismatch", (await wrongCurrency.JsonAsync()).GetProperty("type").GetString());
    }

    [Fact]
    public async Task AnAccountClaimedButNeverOpenedInTheLedger_IsNotFound_AsBefore()
    {
        var merchant = MerchantKeysTests.NewMerchantId();
        using var client = await system.ClientForAsync(merchant);
        await client.OpenAccountAsync($"{merchant}-d", "EUR", fundsMinor: 10_000);
        // A crash between the claim and the ledger's open leaves this.
        await system.Store.ClaimAccountAsync($"{merchant}-half", merchant, null, long.MaxValue, CancellationToken.None);
        using var paid = await client.PayAsync($"{merchant}-d", $"{merchant}-half", 100, currency: "EUR");
        Assert.Equal(HttpStatusCode.NotFound, paid.StatusCode);
        Assert.EndsWith("/account-not-found", (await paid.JsonAsync()).GetProperty("type").GetString());
    }
}
