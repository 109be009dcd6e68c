using System.Net;

namespace Payments.Api.FunctionalTests;

[Collection(ApiSystemCollection.Name)]
public sealed class ConcurrencyTests(ApiSystemFixture system)
{
    public const int Payments = 200;
    public const int Accounts = 20;
    public const long FundsMinor = 20_000;

    /// <summary>The finding: a merchant's concurrent deposits meet on its daily-volume counter, and a deposit that
    /// lost its compare-and-swap rounds answered 500. Rounds are now spread out, and one that still loses them is a
    /// 503 to retry (same key) — never a 500, and never money without its answer.</summary>
    [Fact]
    public async Task ConcurrentDepositsOfOneMerchant_LandOrAsk503ForARetry_NeverA500()
    {
        const int Deposits = 24;
        var client = await system.NewMerchantClientAsync();
        var account = $"dep-{Guid.NewGuid():N}"[..24];
        await client.OpenAccountAsync(account);
        var keys = Enumerable.Range(0, Deposits).Select(_ => Guid.NewGuid().ToString()).ToArray();

        var answers = await Task.WhenAll(keys.Select(key => client.SendJsonAsync($"/v1/accounts/{account}/deposits", "{\"amountMinor\":10,\"currency\":\"USD\"}", key)));
        Assert.All(answers, answer => Assert.True(answer.StatusCode is HttpStatusCode.Created or HttpStatusCode.ServiceUnavailable, $"{(int)answer.StatusCode}"));
        for (var index = 0; index < Deposits; index++)
        {
            // The client's retry with the same key, as a 503 asks (bounded: a few rounds at most).
            for (var round = 0; round < 5 && answers[index].StatusCode == HttpStatusCode.ServiceUnavailable; round++)
            {
                answers[index] = await client.SendJsonAsync($"/v1/accounts/{account}/deposits", "{\"amountMinor\":10,\"currency\":\"USD\"}", keys[index]);
            }
        }

        Assert.All(answers, answer => Assert.Equal(HttpStatusCode.Created, answer.StatusCode));
        Assert.Equal(10 * Deposits, await client.BalanceAsync(account));
    }

    [Fact]
    public async Task TwoHundredConcurrentPayments_AmongTwentyAccounts_AllEndTerminal_AndConserveMoney()
    {
        var client = await system.NewMerchantClientAsync();
        var accounts = new List<string>();
        for (var index = 0; index < Accounts; index++)
        {
            var id = $"a{index}-{Guid.NewGuid():N}"[..24];
            await client.OpenAccountAsync(id, fundsMinor: FundsMinor);
            accounts.Add(id);
        }

        var random = new Random(7);
        var plan = Enumerable.Range(0, Payments).Select(_ =>
        {
            var debtor = accounts[random.Next(Accounts)];
            var creditor = accounts.Where(account => account != debtor).ElementAt(random.Next(Accounts - 1));
            return (debtor, creditor, amount: (long)random.Next(1, 5_000));
        }).ToArray();

        var accepted = await Task.WhenAll(plan.Select(async payment =>
        {
            var response = await client.PayAsync(payment.debtor, payment.creditor, payment.amount);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            return (await response.JsonAsync()).GetProperty("paymentId").GetString()!;
        }));
        var finals = await Task.WhenAll(accepted.Select(id => client.WaitForStatusAsync(id)));

        var statuses = finals.Select(payment => payment.GetProperty("status").GetString()).ToArray();
        Assert.All(statuses, status => Assert.Contains(status, new[] { "completed", "failed" }));
        Assert.Contains("completed", statuses);
        var balances = await Task.WhenAll(accounts.Select(client.BalanceAsync));
        Assert.Equal(Accounts * FundsMinor, balances.Sum()); // money only moved between these accounts
        Assert.All(balances, balance => Assert.True(balance >= 0, "an account went into overdraft"));
        var completedSum = finals.Zip(plan).Where(pair => pair.First.GetProperty("status").GetString() == "completed").Sum(pair => pair.Second.amount);
        Assert.True(completedSum > 0);
    }
}
