using System.Net;

namespace Payments.Api.FunctionalTests;

[Collection(ApiSystemCollection.Name)]
public sealed class ConcurrencyTests(ApiSystemFixture system)
{
    public const int Payments = 200;
    public const int Accounts = 20;
    public const long FundsMinor = 20_000;

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
