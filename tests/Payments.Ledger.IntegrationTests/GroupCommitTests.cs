using Payments.Domain;
using Payments.Ledger.Contracts;
using Payments.Ledger.IntegrationTests.Infrastructure;
using Payments.Testing;

namespace Payments.Ledger.IntegrationTests;

/// <summary>Issue 14 item 4, group commit: single transfers arriving together are written in shared etcd transactions,
/// and each keeps its own outcome. Sent all at once, many share a group; the assertions hold whatever the grouping.</summary>
[Collection(EtcdCollection.Name)]
public sealed class GroupCommitTests(EtcdClusterFixture etcd)
{
    private const int Debtors = 48;
    private const long FundsMinor = 100;
    private static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task ConcurrentTransfers_EachKeepItsOwnOutcome_AndARefusedOneFailsNoOther()
    {
        using var timeout = new CancellationTokenSource(TestTimeout);
        var ledger = etcd.NewLedger();
        var run = Guid.NewGuid().ToString("N")[..8];
        var creditor = AccountId.Parse($"gc-{run}-creditor");
        Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(creditor, Currency.Usd, 0, timeout.Token));
        var debtors = Enumerable.Range(0, Debtors).Select(index => AccountId.Parse($"gc-{run}-d{index}")).ToArray();
        foreach (var debtor in debtors)
        {
            Assert.IsType<OpenAccountOutcome.Opened>(await ledger.OpenAccountAsync(debtor, Currency.Usd, 0, timeout.Token));
            Assert.True((await ledger.TransferAsync(new TransferRequest.Single(
                TransferId.Parse($"gc-{run}-fund-{debtor.Value}"), AccountId.ExternalFunding(Currency.Usd), debtor, new Money(FundsMinor, Currency.Usd)), timeout.Token)).IsApplied);
        }

        // Every third debtor asks for one more than it has; each transfer is sent twice at once (a client's retry
        // racing its first attempt), so groups also meet the same id twice.
        var transfers = debtors.Select((debtor, index) => new TransferRequest.Single(
            TransferId.Parse($"gc-{run}-pay-{index}"), debtor, creditor, new Money(index % 3 == 0 ? FundsMinor + 1 : FundsMinor, Currency.Usd))).ToArray();
        var outcomes = await Task.WhenAll(transfers.Concat(transfers).Select(transfer => ledger.TransferAsync(transfer, timeout.Token)));

        for (var index = 0; index < Debtors; index++)
        {
            var pair = new[] { outcomes[index], outcomes[index + Debtors] };
            Assert.All(pair, outcome => Assert.Equal(transfers[index].Id, outcome.Id));
            if (index % 3 == 0)
            {
                Assert.All(pair, outcome => Assert.Equal(LedgerError.InsufficientFunds, Assert.IsType<TransferOutcome.Failed>(outcome).Error.Code));
                Assert.Equal(FundsMinor, await LedgerAssert.BalanceAsync(ledger, debtors[index]));
            }
            else
            {
                // Applied once: one of the two wrote it, the other found it written.
                Assert.All(pair, outcome => Assert.True(outcome.IsApplied, $"{outcome.Id}: {(outcome as TransferOutcome.Failed)?.Error}"));
                Assert.Equal([false, true], pair.Select(outcome => Assert.IsType<TransferOutcome.Applied>(outcome).Replayed).Order());
                Assert.Equal(0, await LedgerAssert.BalanceAsync(ledger, debtors[index]));
            }
        }

        var paid = Enumerable.Range(0, Debtors).Count(index => index % 3 != 0);
        Assert.Equal(paid * FundsMinor, await LedgerAssert.BalanceAsync(ledger, creditor));
        await LedgerAssert.InvariantsHoldAsync(ledger, timeout.Token);
    }
}
